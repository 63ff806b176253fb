"""Tests of the conv/pool kernels: reference against naive per-pixel loops,
adjointness and finite differences; compiled against reference; both against
PyTorch when it is installed."""
import itertools
import math

import numpy as np
import pytest

from minigrad.backend.reference import conv as ref

core = pytest.importorskip("minigrad._core.conv")

# Compiled float32 kernels may sum in another order (or in float64, or scale
# by a reciprocal) than the reference: results then differ by a few ulps.
TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ---------------------------------------------------------------- geometry

def out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling/conv output size along one axis."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def random_geometry(seed, pool=False, dilation=True):
    """A random valid configuration as a dict: shape, kernel, stride, padding,
    dilation, output size (ceil_mode drawn at random). For pooling, padding is
    at most half the effective kernel, as PyTorch requires."""
    rng = np.random.default_rng(seed)
    while True:
        g = dict(N=int(rng.integers(1, 4)), C=int(rng.integers(1, 4)),
                 H=int(rng.integers(1, 10)), W=int(rng.integers(1, 10)),
                 kh=int(rng.integers(1, 5)), kw=int(rng.integers(1, 5)),
                 sh=int(rng.integers(1, 4)), sw=int(rng.integers(1, 4)),
                 dh=int(rng.integers(1, 3)) if dilation else 1,
                 dw=int(rng.integers(1, 3)) if dilation else 1,
                 ceil=bool(rng.integers(0, 2)))
        eh, ew = g["dh"] * (g["kh"] - 1) + 1, g["dw"] * (g["kw"] - 1) + 1
        if pool:
            g["ph"], g["pw"] = int(rng.integers(0, eh // 2 + 1)), int(rng.integers(0, ew // 2 + 1))
        else:
            g["ph"], g["pw"] = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        g["oh"] = out_size(g["H"], g["kh"], g["sh"], g["ph"], g["dh"], g["ceil"])
        g["ow"] = out_size(g["W"], g["kw"], g["sw"], g["pw"], g["dw"], g["ceil"])
        if g["oh"] >= 1 and g["ow"] >= 1:
            return g


def window_args(g):
    return tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "oh", "ow"))


def avg_args(g):
    return tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "oh", "ow"))


def layouts(x):
    """The same values as x in several memory layouts: C order, Fortran order,
    a strided view into a larger array, a view with batch and channel swapped,
    a read-only array."""
    big = np.zeros(x.shape[:2] + (2 * x.shape[2], 3 * x.shape[3]), dtype=x.dtype)
    big[:, :, ::2, ::3] = x
    swapped = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    frozen = x.copy()
    frozen.setflags(write=False)
    return [x, np.asfortranarray(x), big[:, :, ::2, ::3], swapped, frozen]


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- naive loops

def naive_im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    cols = np.zeros((n, c * kh * kw, oh * ow), dtype=x.dtype)
    for b, ch, i, j, oy, ox in itertools.product(
            range(n), range(c), range(kh), range(kw), range(oh), range(ow)):
        y, xx = oy * sh - ph + i * dh, ox * sw - pw + j * dw
        if 0 <= y < h and 0 <= xx < w:
            cols[b, ch * kh * kw + i * kw + j, oy * ow + ox] = x[b, ch, y, xx]
    return cols


def naive_max_pool(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """First maximum in row-major window order; padding never wins. Until an
    element beats -inf, the index is that of the window's first position past
    the leading padding (PyTorch's rule; it may lie outside the plane when
    dilation makes the window miss the image)."""
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    idx = np.empty((n, c, oh, ow), dtype=np.int64)
    for b, ch, oy, ox in itertools.product(range(n), range(c), range(oh), range(ow)):
        rows = [oy * sh - ph + i * dh for i in range(kh)]
        cols = [ox * sw - pw + j * dw for j in range(kw)]
        best = -math.inf
        at = min(r for r in rows if r >= 0) * w + min(q for q in cols if q >= 0)
        for r, q in itertools.product(rows, cols):
            if 0 <= r < h and 0 <= q < w and x[b, ch, r, q] > best:
                best, at = x[b, ch, r, q], r * w + q
        y[b, ch, oy, ox], idx[b, ch, oy, ox] = best, at
    return y, idx


def naive_max_unpool(dy, idx, h, w):
    """Indices outside the plane (windows without any element) are dropped."""
    dx = np.zeros(dy.shape[:2] + (h * w,), dtype=dy.dtype)
    for b, ch, oy, ox in itertools.product(*map(range, dy.shape)):
        if 0 <= idx[b, ch, oy, ox] < h * w:
            dx[b, ch, idx[b, ch, oy, ox]] += dy[b, ch, oy, ox]
    return dx.reshape(dy.shape[:2] + (h, w))


def naive_avg_pool(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for oy, ox in itertools.product(range(oh), range(ow)):
        h0, w0 = oy * sh - ph, ox * sw - pw
        h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
        size = (h1 - h0) * (w1 - w0)
        h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
        div = size if count_include_pad else (h1 - h0) * (w1 - w0)
        y[:, :, oy, ox] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return y


def naive_adaptive(x, oh, ow):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for oy, ox in itertools.product(range(oh), range(ow)):
        h0, h1 = (oy * h) // oh, -((-(oy + 1) * h) // oh)
        w0, w1 = (ox * w) // ow, -((-(ox + 1) * w) // ow)
        y[:, :, oy, ox] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def numeric_grad(f, x, dy, eps=1e-6):
    """d/dx of sum(f(x) * dy) by central differences (float64)."""
    g = np.empty_like(x)
    for pos in np.ndindex(x.shape):
        old = x[pos]
        x[pos] = old + eps
        up = np.sum(f(x) * dy)
        x[pos] = old - eps
        down = np.sum(f(x) * dy)
        x[pos] = old
        g[pos] = (up - down) / (2 * eps)
    return g


# ---------------------------------------------------------------- reference vs naive

@pytest.mark.parametrize("seed", range(30))
def test_im2col_reference_matches_naive(seed):
    g = random_geometry(seed)
    x = rand(np.random.default_rng(seed), (g["N"], g["C"], g["H"], g["W"]))
    np.testing.assert_array_equal(ref.im2col(np, x, *window_args(g)),
                                  naive_im2col(x, *window_args(g)))


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("kernels", ["reference", "compiled"])
def test_col2im_is_adjoint_of_im2col(seed, kernels):
    im2col, col2im = ((lambda *a: ref.im2col(np, *a)), (lambda *a: ref.col2im(np, *a))) \
        if kernels == "reference" else (core.im2col, core.col2im)
    g = random_geometry(100 + seed)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]))
    cols = rand(rng, (g["N"], g["C"] * g["kh"] * g["kw"], g["oh"] * g["ow"]))
    lhs = np.vdot(im2col(x, *window_args(g)), cols)
    rhs = np.vdot(x, col2im(cols, g["H"], g["W"], *window_args(g)))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(30))
def test_max_pool_reference_matches_naive(seed):
    g = random_geometry(200 + seed, pool=True)
    rng = np.random.default_rng(seed)
    shape = (g["N"], g["C"], g["H"], g["W"])
    # Small integers make ties common, so the tie rule is exercised.
    x = rng.integers(-2, 3, shape).astype(np.float64) if seed % 2 else rand(rng, shape)
    y, idx = ref.max_pool2d_forward(np, x, *window_args(g))
    ny, nidx = naive_max_pool(x, *window_args(g))
    np.testing.assert_array_equal(y, ny)
    np.testing.assert_array_equal(idx, nidx)
    assert idx.dtype == np.int64
    dy = rand(rng, y.shape)
    np.testing.assert_allclose(ref.max_pool2d_backward(np, dy, idx, g["H"], g["W"]),
                               naive_max_unpool(dy, idx, g["H"], g["W"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(30))
def test_avg_pool_reference_matches_naive(seed):
    g = random_geometry(300 + seed, pool=True, dilation=False)
    x = rand(np.random.default_rng(seed), (g["N"], g["C"], g["H"], g["W"]))
    for include in (True, False):
        np.testing.assert_allclose(ref.avg_pool2d_forward(np, x, *avg_args(g), include),
                                   naive_avg_pool(x, *avg_args(g), include), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((1, 1, 5, 5), (5, 5)),
                                       ((2, 2, 4, 6), (1, 1)), ((1, 2, 3, 5), (7, 4)),
                                       ((3, 1, 10, 1), (4, 1))])
def test_adaptive_reference_matches_naive(shape, out):
    x = rand(np.random.default_rng(0), shape)
    np.testing.assert_allclose(ref.adaptive_avg_pool2d_forward(np, x, *out),
                               naive_adaptive(x, *out), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- backward vs finite differences

def small_geometry(seed, **kw):
    """A random geometry with a small input, for finite differences."""
    while True:
        g = random_geometry(seed, **kw)
        if g["N"] * g["C"] * g["H"] * g["W"] <= 80:
            return g
        seed += 1000


@pytest.mark.parametrize("seed", range(6))
def test_col2im_matches_finite_differences(seed):
    g = small_geometry(400 + seed)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]))
    dcols = rand(rng, (g["N"], g["C"] * g["kh"] * g["kw"], g["oh"] * g["ow"]))
    num = numeric_grad(lambda a: ref.im2col(np, a, *window_args(g)), x, dcols)
    np.testing.assert_allclose(ref.col2im(np, dcols, g["H"], g["W"], *window_args(g)), num,
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_max_pool_backward_matches_finite_differences(seed):
    g = small_geometry(500 + seed, pool=True)
    rng = np.random.default_rng(seed)
    shape = (g["N"], g["C"], g["H"], g["W"])
    # Distinct values far apart compared with eps: no argmax flips.
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    y, idx = ref.max_pool2d_forward(np, x, *window_args(g))
    dy = rand(rng, y.shape)
    # Windows that miss the image output a constant -inf: count them as 0.
    num = numeric_grad(lambda a: np.nan_to_num(
        ref.max_pool2d_forward(np, a, *window_args(g))[0], neginf=0.0), x, dy)
    np.testing.assert_allclose(ref.max_pool2d_backward(np, dy, idx, g["H"], g["W"]), num,
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("include", [True, False])
def test_avg_pool_backward_matches_finite_differences(seed, include):
    g = small_geometry(600 + seed, pool=True, dilation=False)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]))
    dy = rand(rng, (g["N"], g["C"], g["oh"], g["ow"]))
    num = numeric_grad(lambda a: ref.avg_pool2d_forward(np, a, *avg_args(g), include), x, dy)
    np.testing.assert_allclose(
        ref.avg_pool2d_backward(np, dy, g["H"], g["W"], *avg_args(g), include), num,
        rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape,out", [((2, 2, 5, 7), (3, 2)), ((1, 1, 3, 4), (5, 6)),
                                       ((1, 2, 6, 6), (1, 1))])
def test_adaptive_backward_matches_finite_differences(shape, out):
    rng = np.random.default_rng(1)
    x = rand(rng, shape)
    dy = rand(rng, shape[:2] + out)
    num = numeric_grad(lambda a: ref.adaptive_avg_pool2d_forward(np, a, *out), x, dy)
    np.testing.assert_allclose(ref.adaptive_avg_pool2d_backward(np, dy, *shape[2:]), num,
                               rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- compiled vs reference

def merged(cols):
    """(N, R, L) columns in the merged layout (R, N*L) of im2col(..., merged=True)."""
    n, r, length = cols.shape
    return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(r, n * length)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("kernels", ["reference", "compiled"])
def test_merged_layout_joins_the_batch_into_the_columns(seed, kernels):
    im2col, col2im = ((lambda *a, **k: ref.im2col(np, *a, **k)), (lambda *a, **k: ref.col2im(np, *a, **k))) \
        if kernels == "reference" else (core.im2col, core.col2im)
    g = random_geometry(300 + seed)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]))
    want = naive_im2col(x, *window_args(g))
    np.testing.assert_array_equal(im2col(x, *window_args(g), merged=True), merged(want))
    cols = rand(rng, want.shape)
    np.testing.assert_allclose(col2im(merged(cols), g["H"], g["W"], *window_args(g), merged=True),
                               ref.col2im(np, cols, g["H"], g["W"], *window_args(g)), **TOL[np.float64])


DTYPES = [np.float32, np.float64]


def assert_same(fast, slow, dtype):
    assert fast.dtype == slow.dtype and fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_compiled_im2col_col2im(dtype, seed):
    g = random_geometry(700 + seed)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]), dtype)
    want = ref.im2col(np, x, *window_args(g))
    cols = rand(rng, want.shape, dtype)
    want_dx = ref.col2im(np, cols, g["H"], g["W"], *window_args(g))
    # cols is 3-d: give it a trailing axis to reuse the 4-d layouts.
    for xv, cv in zip(layouts(x), layouts(cols[..., None])):
        np.testing.assert_array_equal(core.im2col(xv, *window_args(g)), want)
        assert_same(core.col2im(cv[..., 0], g["H"], g["W"], *window_args(g)), want_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_compiled_merged_im2col_col2im(dtype, seed):
    g = random_geometry(750 + seed)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]), dtype)
    want = ref.im2col(np, x, *window_args(g), merged=True)
    cols = rand(rng, want.shape, dtype)
    want_dx = ref.col2im(np, cols, g["H"], g["W"], *window_args(g), merged=True)
    for xv in layouts(x):
        np.testing.assert_array_equal(core.im2col(xv, *window_args(g), merged=True), want)
    for cv in (cols, np.asfortranarray(cols), cols[:, ::-1][:, ::-1]):
        assert_same(core.col2im(cv, g["H"], g["W"], *window_args(g), merged=True), want_dx, dtype)


@pytest.mark.parametrize("merged", [False, True])
def test_compiled_im2col_col2im_read_only_inputs(merged):
    """A read-only input (a user's frozen array) is read in place, never written."""
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 3, 6, 5), np.float64)
    args = (3, 2, 2, 1, 1, 2, 1, 2, 3, 6)
    want = ref.im2col(np, x, *args, merged=merged)
    x.flags.writeable = False
    cols = core.im2col(x, *args, merged=merged)
    np.testing.assert_array_equal(cols, want)
    cols.flags.writeable = False
    np.testing.assert_allclose(core.col2im(cols, 6, 5, *args, merged=merged),
                               ref.col2im(np, want, 6, 5, *args, merged=merged), rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_compiled_max_pool(dtype, seed):
    g = random_geometry(800 + seed, pool=True)
    rng = np.random.default_rng(seed)
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = (rng.integers(-2, 3, shape) if seed % 2 else rand(rng, shape)).astype(dtype)
    want_y, want_idx = ref.max_pool2d_forward(np, x, *window_args(g))
    dy = rand(rng, want_y.shape, dtype)
    want_dx = ref.max_pool2d_backward(np, dy, want_idx, g["H"], g["W"])
    for xv, dyv in zip(layouts(x), layouts(dy)):
        y, idx = core.max_pool2d_forward(xv, *window_args(g))
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(idx, want_idx)
        assert y.dtype == dtype and idx.dtype == np.int64
        assert_same(core.max_pool2d_backward(dyv, want_idx, g["H"], g["W"]), want_dx, dtype)
    # Indices in another integer type and layout.
    idx32 = np.asfortranarray(want_idx.astype(np.int32))
    assert_same(core.max_pool2d_backward(dy, idx32, g["H"], g["W"]), want_dx, dtype)


def test_compiled_max_pool_nan_and_inf():
    x = np.array([[[[1.0, np.nan, 3.0], [-np.inf, -np.inf, 2.0], [np.nan, 0.0, np.inf]]]])
    for args in [(2, 2, 1, 1, 0, 0, 1, 1, 2, 2), (3, 3, 1, 1, 1, 1, 1, 1, 3, 3)]:
        y, idx = core.max_pool2d_forward(x, *args)
        ry, ridx = ref.max_pool2d_forward(np, x, *args)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(idx, ridx)
    assert np.isnan(y).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_window_missing_the_image(dtype):
    """Dilation can make a window skip the only image row: its output is -inf,
    its index (PyTorch's) lies outside the plane, and it gets no gradient."""
    x = np.arange(8, dtype=dtype).reshape(2, 1, 1, 4)
    args = (4, 1, 3, 2, 3, 0, 2, 1, 1, 2)   # rows -3, -1, 1, 3 miss row 0
    dy = np.ones((2, 1, 1, 2), dtype=dtype)
    for fwd, bwd in [(lambda *a: ref.max_pool2d_forward(np, *a),
                      lambda *a: ref.max_pool2d_backward(np, *a)),
                     (core.max_pool2d_forward, core.max_pool2d_backward)]:
        y, idx = fwd(x, *args)
        assert np.all(y == -np.inf)
        np.testing.assert_array_equal(idx, naive_max_pool(x, *args)[1])
        np.testing.assert_array_equal(bwd(dy, idx, 1, 4), np.zeros_like(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_compiled_avg_pool(dtype, seed):
    g = random_geometry(900 + seed, pool=True, dilation=False)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]), dtype)
    dy = rand(rng, (g["N"], g["C"], g["oh"], g["ow"]), dtype)
    for include in (True, False):
        want_y = ref.avg_pool2d_forward(np, x, *avg_args(g), include)
        want_dx = ref.avg_pool2d_backward(np, dy, g["H"], g["W"], *avg_args(g), include)
        for xv, dyv in zip(layouts(x), layouts(dy)):
            assert_same(core.avg_pool2d_forward(xv, *avg_args(g), include), want_y, dtype)
            assert_same(core.avg_pool2d_backward(dyv, g["H"], g["W"], *avg_args(g), include),
                        want_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw", [(4, 6), (5, 7), (2, 3), (28, 28), (9, 2)])
def test_avg_pool_2x2_kernel_is_the_box_kernel_bit_for_bit(dtype, hw):
    """AvgPool2d(2) (odd sizes leave a row or column uncovered) takes its own
    kernels; they give the general box kernel's bits, NaN, inf and
    subnormals included, forward and backward."""
    h, w = hw
    rng = np.random.default_rng(h * w)
    x = rand(rng, (3, 2, h, w), dtype)
    x.flat[rng.integers(0, x.size, 3)] = np.nan
    x.flat[rng.integers(0, x.size, 3)] = np.inf
    x.flat[rng.integers(0, x.size, 3)] = np.finfo(dtype).tiny * 3
    oh, ow = h // 2, w // 2
    dy = rand(rng, (3, 2, oh, ow), dtype)
    dy.flat[0] = np.finfo(dtype).tiny * 3  # a quotient that rounds in the subnormals
    rows, cols = core._avg_boxes(oh, h, 2, 2, 0, True), core._avg_boxes(ow, w, 2, 2, 0, True)
    args = (2, 2, 2, 2, 0, 0, oh, ow)
    for include in (True, False):
        got = core.avg_pool2d_forward(x, *args, include)
        np.testing.assert_array_equal(got, core._box_mean(x, rows, cols))
        got = core.avg_pool2d_backward(dy, h, w, *args, include)
        np.testing.assert_array_equal(got, core._box_mean_grad(dy, rows, cols, h, w))
        np.testing.assert_array_equal(got, ref.avg_pool2d_backward(np, dy, h, w, *args, include))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((1, 1, 5, 5), (5, 5)),
                                       ((3, 2, 4, 6), (1, 1)), ((1, 2, 3, 5), (7, 4)),
                                       ((2, 1, 10, 1), (4, 1)),
                                       ((32, 256, 8, 8), (1, 1))])  # global, threaded
def test_compiled_adaptive(dtype, shape, out):
    rng = np.random.default_rng(3)
    x = rand(rng, shape, dtype)
    dy = rand(rng, shape[:2] + out, dtype)
    want_y = ref.adaptive_avg_pool2d_forward(np, x, *out)
    want_dx = ref.adaptive_avg_pool2d_backward(np, dy, *shape[2:])
    for xv, dyv in zip(layouts(x), layouts(dy)):
        assert_same(core.adaptive_avg_pool2d_forward(xv, *out), want_y, dtype)
        assert_same(core.adaptive_avg_pool2d_backward(dyv, *shape[2:]), want_dx, dtype)


def test_compiled_large_batch_uses_threads_consistently():
    """Large enough to take the parallel path; must equal the reference."""
    from minigrad._core.threads import parallel_min
    rng = np.random.default_rng(5)
    # every kernel's work measure above 4x the minimum (the threshold of these light kernels)
    s = int(np.ceil(np.sqrt(4 * parallel_min() / 128))) + 1
    x = rand(rng, (8, 16, s, s), np.float32)
    args = (3, 3, 1, 1, 1, 1, 1, 1, s, s)
    np.testing.assert_array_equal(core.im2col(x, *args), ref.im2col(np, x, *args))
    cols = rand(rng, (8, 16 * 9, s * s), np.float32)
    assert_same(core.col2im(cols, s, s, *args), ref.col2im(np, cols, s, s, *args), np.float32)
    np.testing.assert_array_equal(core.im2col(x, *args, merged=True), ref.im2col(np, x, *args, merged=True))
    cols = cols.reshape(16 * 9, 8 * s * s)
    assert_same(core.col2im(cols, s, s, *args, merged=True),
                ref.col2im(np, cols, s, s, *args, merged=True), np.float32)
    for pool_args in (args, (2, 2, 2, 2, 0, 0, 1, 1, s // 2, s // 2)):
        y, idx = core.max_pool2d_forward(x, *pool_args)
        ry, ridx = ref.max_pool2d_forward(np, x, *pool_args)
        np.testing.assert_array_equal(idx, ridx)
        assert_same(core.max_pool2d_backward(y, idx, s, s),
                    ref.max_pool2d_backward(np, y, ridx, s, s), np.float32)
    h = (s + 1) // 2
    assert_same(core.avg_pool2d_forward(x, 3, 3, 2, 2, 1, 1, h, h, False),
                ref.avg_pool2d_forward(np, x, 3, 3, 2, 2, 1, 1, h, h, False), np.float32)
    half = (2, 2, 2, 2, 0, 0, s // 2, s // 2)  # the 2x2 kernels
    y = core.avg_pool2d_forward(x, *half, True)
    assert_same(y, ref.avg_pool2d_forward(np, x, *half, True), np.float32)
    np.testing.assert_array_equal(core.avg_pool2d_backward(y, s, s, *half, True),
                                  ref.avg_pool2d_backward(np, y, s, s, *half, True))


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_compiled_falls_back_for_other_dtypes(dtype):
    x = (np.random.default_rng(0).standard_normal((2, 3, 5, 4)) * 4).astype(dtype)
    args = (2, 2, 1, 2, 1, 0, 1, 1, 6, 2)
    np.testing.assert_array_equal(core.im2col(x, *args), ref.im2col(np, x, *args))
    for got, want in zip(core.max_pool2d_forward(x, *args), ref.max_pool2d_forward(np, x, *args)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(core.adaptive_avg_pool2d_forward(x, 2, 3),
                                  ref.adaptive_avg_pool2d_forward(np, x, 2, 3))


def test_backend_uses_compiled_kernels():
    from minigrad.backend import core_disabled
    from minigrad.backend.cpu import backend
    if core_disabled():
        pytest.skip("compiled kernels disabled")
    for name in ref.__all__:
        assert getattr(backend, name) is getattr(core, name)


# ---------------------------------------------------------------- PyTorch

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("seed", range(10))
def test_unfold_fold_match_torch(torch, seed):
    F = torch.nn.functional
    g = random_geometry(1000 + seed)
    g["oh"] = out_size(g["H"], g["kh"], g["sh"], g["ph"], g["dh"], False)
    g["ow"] = out_size(g["W"], g["kw"], g["sw"], g["pw"], g["dw"], False)
    if g["oh"] < 1 or g["ow"] < 1:
        pytest.skip("no floor-mode output for this geometry")
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]))
    kw = dict(kernel_size=(g["kh"], g["kw"]), dilation=(g["dh"], g["dw"]),
              padding=(g["ph"], g["pw"]), stride=(g["sh"], g["sw"]))
    want = F.unfold(torch.from_numpy(x), **kw).numpy()
    cols = rand(rng, want.shape)
    want_dx = F.fold(torch.from_numpy(cols), output_size=(g["H"], g["W"]), **kw).numpy()
    for im2col, col2im in [(lambda *a: ref.im2col(np, *a), lambda *a: ref.col2im(np, *a)),
                           (core.im2col, core.col2im)]:
        np.testing.assert_array_equal(im2col(x, *window_args(g)), want)
        np.testing.assert_allclose(col2im(cols, g["H"], g["W"], *window_args(g)), want_dx,
                                   rtol=1e-12, atol=1e-12)


def torch_grad(torch, fn, x, dy):
    xt = torch.from_numpy(x).requires_grad_(True)
    out = fn(xt)
    y = out[0] if isinstance(out, tuple) else out
    y.backward(torch.from_numpy(dy))
    return out, xt.grad.numpy()


@pytest.mark.parametrize("seed", range(12))
def test_max_pool_matches_torch(torch, seed):
    g = random_geometry(1100 + seed, pool=True)
    rng = np.random.default_rng(seed)
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = rng.integers(-2, 3, shape).astype(np.float64) if seed % 2 else rand(rng, shape)
    if seed % 3 == 0:
        x.flat[rng.integers(0, x.size, 2)] = np.nan
    dy = rand(rng, (g["N"], g["C"], g["oh"], g["ow"]))
    (ty, tidx), tdx = torch_grad(torch, lambda t: torch.nn.functional.max_pool2d(
        t, (g["kh"], g["kw"]), (g["sh"], g["sw"]), (g["ph"], g["pw"]), (g["dh"], g["dw"]),
        ceil_mode=g["ceil"], return_indices=True), x, dy)
    for fwd, bwd in [(lambda *a: ref.max_pool2d_forward(np, *a),
                      lambda *a: ref.max_pool2d_backward(np, *a)),
                     (core.max_pool2d_forward, core.max_pool2d_backward)]:
        y, idx = fwd(x, *window_args(g))
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        np.testing.assert_allclose(bwd(dy, idx, g["H"], g["W"]), tdx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("include", [True, False])
def test_avg_pool_matches_torch(torch, seed, include):
    g = random_geometry(1200 + seed, pool=True, dilation=False)
    rng = np.random.default_rng(seed)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]))
    dy = rand(rng, (g["N"], g["C"], g["oh"], g["ow"]))
    ty, tdx = torch_grad(torch, lambda t: torch.nn.functional.avg_pool2d(
        t, (g["kh"], g["kw"]), (g["sh"], g["sw"]), (g["ph"], g["pw"]),
        ceil_mode=g["ceil"], count_include_pad=include), x, dy)
    for fwd, bwd in [(lambda *a: ref.avg_pool2d_forward(np, *a),
                      lambda *a: ref.avg_pool2d_backward(np, *a)),
                     (core.avg_pool2d_forward, core.avg_pool2d_backward)]:
        np.testing.assert_allclose(fwd(x, *avg_args(g), include), ty.detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bwd(dy, g["H"], g["W"], *avg_args(g), include), tdx,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((1, 2, 3, 5), (7, 4)),
                                       ((2, 2, 6, 6), (1, 1)), ((1, 1, 13, 11), (5, 3))])
def test_adaptive_matches_torch(torch, shape, out):
    rng = np.random.default_rng(4)
    x = rand(rng, shape)
    dy = rand(rng, shape[:2] + out)
    ty, tdx = torch_grad(torch, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, out), x, dy)
    for fwd, bwd in [(lambda *a: ref.adaptive_avg_pool2d_forward(np, *a),
                      lambda *a: ref.adaptive_avg_pool2d_backward(np, *a)),
                     (core.adaptive_avg_pool2d_forward, core.adaptive_avg_pool2d_backward)]:
        np.testing.assert_allclose(fwd(x, *out), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bwd(dy, *shape[2:]), tdx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw", [(4, 6), (5, 7), (2, 2), (14, 15), (28, 28)])
def test_compiled_max_pool_2x2_fast_path(dtype, hw):
    """MaxPool2d(2) has its own compiled kernel: ties (first wins), NaN (last
    NaN wins), -inf-only windows and odd sizes (last row/column dropped)."""
    rng = np.random.default_rng(hw[0])
    x = rng.integers(-2, 3, (3, 5) + hw).astype(dtype)
    x.flat[rng.integers(0, x.size, 6)] = np.nan
    x.flat[rng.integers(0, x.size, 6)] = -np.inf
    x[0, 0, :2, :2] = -np.inf
    args = (2, 2, 2, 2, 0, 0, 1, 1, hw[0] // 2, hw[1] // 2)
    y, idx = core.max_pool2d_forward(x, *args)
    # the reference (checked against the naive loops and PyTorch, NaN included above)
    ry, ridx = ref.max_pool2d_forward(np, x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert y.dtype == dtype and idx.dtype == np.int64
    finite = np.nan_to_num(x, nan=0.0)
    np.testing.assert_array_equal(core.max_pool2d_forward(finite, *args)[1],
                                  naive_max_pool(finite, *args)[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 16, 784), (64, 32, 196), (3, 5, 31), (2, 3, 1),
                                   (1, 2, 1500), (4, 1, 64), (0, 3, 5), (3, 4, 0)])
def test_compiled_conv_bias_grad_is_the_exact_sum(dtype, shape):
    """dy summed over samples and positions, per channel: runs shorter than
    the lanes (tail only), several blocks (1500), empty sums. Within a few
    roundings of the exact sum of a large offset plus noise, where a plain
    float32 running sum loses digits."""
    rng = np.random.default_rng(sum(shape))
    dy = (1000.0 + rng.standard_normal(shape)).astype(dtype)
    exact = np.array([math.fsum(dy[:, c].astype(np.float64).ravel()) for c in range(shape[1])])
    bound = 8 * np.finfo(dtype).eps * np.abs(dy).sum(axis=(0, 2), dtype=np.float64) + 1e-300
    for got in (core.conv_bias_grad(dy), ref.conv_bias_grad(np, dy),
                core.conv_bias_grad(np.asfortranarray(dy))):
        assert got.dtype == dtype and got.shape == (shape[1],)
        assert np.all(np.abs(got - exact) <= bound), (got - exact, bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n,length", [(32, 144, 8, 196), (5, 7, 3, 11), (9, 3, 2, 1),
                                          (16, 9, 2, 16), (1, 1, 1, 40), (17, 33, 5, 37),
                                          (20, 600, 2, 72), (24, 40, 4, 4096)])
def test_compiled_panel_matmul_matches_reference(dtype, m, k, n, length):
    """Every layout pair; blocks crossing samples (length not a multiple of the
    block), rows past the last full panel, a transposed (strided) A; the first
    shape is large enough for the threaded path. k=600 runs in chunks of B's
    rows (three, the last partial); length 4096 puts B's rows 16 KB or more
    apart, in few cache sets, so its blocks are copied before use."""
    rng = np.random.default_rng(m * k + length)
    a = rand(rng, (k, m), dtype).T
    bias = rand(rng, (m,), dtype)
    for b_per_sample in (False, True):
        b = rand(rng, (n, k, length) if b_per_sample else (k, n * length), dtype)
        for out_per_sample in (False, True):
            for bb in (None, bias):
                got = core.panel_matmul(a, b, n, length, b_per_sample, out_per_sample, bb,
                                         always=True)
                assert got.shape == (n, m, length) if out_per_sample else (m, n * length)
                assert got.dtype == dtype
                assert_product_close(got, lambda a_, b_, bias_: ref.panel_matmul(
                    np, a_, b_, n, length, b_per_sample, out_per_sample, bias_), a, b, bb, k)


def conv_case(seed, named, random_base):
    """A convolution's geometry and output channels: a named 3x3, padding 1
    case (N, C, H = W, O), or a random geometry with 1-39 output channels."""
    if seed in named:
        n, c, hw, o = named[seed]
        return dict(N=n, C=c, H=hw, W=hw, kh=3, kw=3, sh=1, sw=1, ph=1, pw=1, dh=1, dw=1,
                    oh=hw, ow=hw), o
    return random_geometry(random_base + seed), int(np.random.default_rng(seed).integers(1, 40))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", list(range(10)) + ["cnn", "channel_groups"])
def test_conv_input_grad_is_col2im_of_each_samples_product(dtype, seed):
    """Compiled (per sample, folded from cache, threaded for the cnn layer's
    shape; 20 channels of 32x32 make and fold their columns 8, 8, then 4
    channels at a time) and reference (one merged product) within the
    rounding bound of the exact col2im(a @ dy[s]): each pixel sums o
    products per column entry, then up to kh*kw entries."""
    g, o = conv_case(seed, {"cnn": (64, 16, 14, 32), "channel_groups": (2, 20, 32, 8)}, 900)
    rng = np.random.default_rng(17)
    m = g["C"] * g["kh"] * g["kw"]
    a = rand(rng, (o, m), dtype).T  # the transposed weight, a strided view as the op passes it
    dy = rand(rng, (g["N"], o, g["oh"] * g["ow"]), dtype)
    wide = np.float64 if dtype == np.float32 else np.longdouble
    geometry = (g["H"], g["W"]) + window_args(g)
    exact = ref.col2im(np, np.matmul(a.astype(wide), dy.astype(wide)), *geometry)
    scale = ref.col2im(np, np.matmul(np.abs(a.astype(wide)), np.abs(dy.astype(wide))), *geometry)
    bound = (o + g["kh"] * g["kw"] + 1) * np.finfo(dtype).eps * scale + np.finfo(dtype).tiny
    for conv_input_grad in (core.conv_input_grad, lambda *args: ref.conv_input_grad(np, *args)):
        got = conv_input_grad(a, dy, *geometry)
        assert got.shape == (g["N"], g["C"], g["H"], g["W"]) and got.dtype == dtype
        err = np.abs(got.astype(wide) - exact)
        assert np.all(err <= bound), f"max error {err.max()} exceeds the rounding bound"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", list(range(10)) + ["cnn", "long_k"])
def test_conv_forward_is_each_samples_product_with_its_columns(dtype, seed):
    """Compiled (per sample: im2col into a thread's buffer, then the panel
    kernel; threaded for the cnn layer's shape, K = 576 in chunks for
    long_k) against the exact w @ columns + bias, and bit for bit against
    the panel kernel on the whole batch's merged columns (the same sums in
    the same order); the reference within the bound too."""
    g, o = conv_case(seed, {"cnn": (64, 16, 14, 32), "long_k": (3, 64, 9, 24)}, 950)
    rng = np.random.default_rng(23)
    k = g["C"] * g["kh"] * g["kw"]
    w = rand(rng, (o, k), dtype)
    x = rand(rng, (g["N"], g["C"], g["H"], g["W"]), dtype)
    bias = rand(rng, (o,), dtype)
    cols = ref.im2col(np, x, *window_args(g), merged=True)
    n, length = g["N"], g["oh"] * g["ow"]
    for conv_forward in (core.conv_forward, lambda *args: ref.conv_forward(np, *args)):
        got = conv_forward(w, x, bias, *window_args(g))
        assert got.shape == (n, o, length) and got.dtype == dtype
        assert_product_close(got, lambda a_, b_, bias_: ref.panel_matmul(
            np, a_, b_, n, length, False, True, bias_), w, cols, bias, k)
    if core.PANEL_KERNEL_FAST:
        np.testing.assert_array_equal(core.conv_forward(w, x, bias, *window_args(g)),
                                      core.panel_matmul(w, cols, n, length, False, True, bias))


def assert_product_close(got, product, a, b, bias, k):
    """got == product(a, b, bias) up to rounding in any summation order: the
    exact value (float64, or longdouble for float64) within k+1 roundings of
    |a| @ |b| + |bias| (the classic bound for a length-k dot product)."""
    wide = np.float64 if got.dtype == np.float32 else np.longdouble
    as_wide = lambda t: None if t is None else t.astype(wide)
    exact = product(as_wide(a), as_wide(b), as_wide(bias))
    scale = product(np.abs(as_wide(a)), np.abs(as_wide(b)),
                    None if bias is None else np.abs(as_wide(bias)))
    bound = (k + 1) * np.finfo(got.dtype).eps * scale + np.finfo(got.dtype).tiny
    err = np.abs(got.astype(wide) - exact)
    assert np.all(err <= bound), f"max error {err.max()} exceeds the rounding bound"


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_panel_kernel_runs_only_on_avx512():
    """Its 8 x 16-float register tile needs AVX-512's 32 vector registers; with
    AVX2 the sums spill to the stack and BLAS is 3-6x faster, so conv must
    keep to BLAS there."""
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to read the CPU's features from")
    avx512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    assert core.PANEL_KERNEL_FAST in (False, avx512)


def test_panel_matmul_reference_is_the_plain_product():
    rng = np.random.default_rng(0)
    a, b, bias = rng.standard_normal((4, 6)), rng.standard_normal((3, 6, 5)), rng.standard_normal(4)
    want = np.stack([a @ b[i] + bias[:, None] for i in range(3)])
    np.testing.assert_allclose(ref.panel_matmul(np, a, b, 3, 5, True, True, bias), want, rtol=1e-14)
    merged = np.concatenate(list(b), axis=1)
    np.testing.assert_allclose(ref.panel_matmul(np, a, merged, 3, 5, False, False),
                               a @ merged, rtol=1e-14)


def test_panel_matmul_takes_blas_for_a_large_a():
    """Every block of B runs over all of A: past PANEL_A_BYTES (an A that no
    longer stays in cache) BLAS is faster, and the reference runs."""
    rng = np.random.default_rng(4)
    m = 64
    k = core.PANEL_A_BYTES // (4 * m) + 1
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, 2 * 48)).astype(np.float32)
    want = ref.panel_matmul(np, a, b, 2, 48, False, True)
    np.testing.assert_array_equal(core.panel_matmul(a, b, 2, 48, False, True), want)
    assert_product_close(core.panel_matmul(a, b, 2, 48, False, True, always=True),
                         lambda a_, b_, bias_: ref.panel_matmul(np, a_, b_, 2, 48, False, True),
                         a, b, None, k)


@pytest.mark.parametrize("case", ["float16", "empty"])
def test_compiled_panel_matmul_falls_back(case):
    rng = np.random.default_rng(1)
    if case == "float16":
        a, b = rng.standard_normal((3, 4)).astype(np.float16), rng.standard_normal((4, 10)).astype(np.float16)
        n, length = 2, 5
    else:
        a, b, n, length = rng.standard_normal((3, 4)), np.zeros((4, 0)), 0, 5
    got = core.panel_matmul(a, b, n, length, False, True, always=True)
    want = ref.panel_matmul(np, a, b, n, length, False, True)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
