"""The fused CUDA im2col/col2im and pooling kernels (backend/cuda_conv.py)
against the reference run by numpy on the CPU (skipped, with the reason,
where mg.cuda.is_available() is False).

The kernels follow the reference's arithmetic order, so im2col and max
pooling (values, indices and gradients) are compared exactly, the others
within a tolerance."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.backend.reference import conv as ref
from minigrad.ops.pool import max_pool2d
from minigrad.ops.window import pool_out_size
from .cuda_arrays import backend, dev, fused, host

pytestmark = pytest.mark.gpu

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [np.float32, np.float64]

# (N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode)
GEOMETRIES = [
    (2, 3, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, False),   # 3x3 stride 1, padded, overlapping
    (1, 2, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, False),   # 2x2 stride 2, batch 1
    (3, 2, 9, 6, 3, 2, 2, 3, 1, 1, 1, 1, True),    # ceil_mode, rectangular kernel and stride
    (2, 1, 9, 7, 3, 3, 3, 2, 1, 0, 2, 2, False),   # dilation 2
    (2, 2, 10, 7, 3, 3, 2, 2, 1, 1, 2, 2, True),   # dilation 2 and ceil_mode
    (1, 1, 5, 11, 1, 1, 2, 3, 0, 0, 1, 1, True),   # 1x1 kernel, strides 2 and 3
    (4, 3, 6, 6, 3, 3, 3, 3, 1, 1, 1, 1, True),    # stride 3, ceil_mode
    (2, 2, 4, 9, 2, 3, 1, 2, 1, 1, 1, 2, False),   # mixed dilation
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, False),   # one pixel
    (3, 2, 1, 8, 2, 2, 1, 1, 1, 1, 2, 1, True),    # thin image: dilated windows miss it
    (2, 2, 2, 1, 1, 2, 1, 1, 0, 1, 1, 2, False),   # missed width: indices alias a pixel
]


def _out_hw(g):
    _, _, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil = g
    return pool_out_size(h, kh, sh, ph, dh, ceil), pool_out_size(w, kw, sw, pw, dw, ceil)


def _random_geometries(count, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        g = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 12)),
             int(rng.integers(1, 12)), kh, kw, int(rng.integers(1, 4)), int(rng.integers(1, 4)),
             int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)), dh, dw,
             bool(rng.integers(0, 2)))
        if min(_out_hw(g)) >= 1:
            out.append(g)
    return out


ALL_GEOMETRIES = GEOMETRIES + _random_geometries(30)
IDS = [f"g{i}" for i in range(len(ALL_GEOMETRIES))]


def _window(g):
    """(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)."""
    return tuple(g[4:12]) + _out_hw(g)


def _avg_window(g):
    """(kh, kw, sh, sw, ph, pw, oh, ow), dilation 1."""
    _, _, h, w, kh, kw, sh, sw, ph, pw, _, _, ceil = g
    return (kh, kw, sh, sw, ph, pw, pool_out_size(h, kh, sh, ph, 1, ceil),
            pool_out_size(w, kw, sw, pw, 1, ceil))


def _windows_miss_image(g):
    """Whether a max-pool window holds no image element (its index is then a
    convention, and the backward kernel leaves it to the reference)."""
    y, _ = ref.max_pool2d_forward(np, np.zeros((1, 1) + tuple(g[2:4])), *_window(g))
    return bool(np.isneginf(y).any())


def _image(g, dtype, seed=0, ties=False, nan=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g[:4])
    if ties:  # few distinct values: windows hold several maxima
        x = np.round(x)
    if nan:
        x.flat[rng.integers(0, x.size, max(1, x.size // 10))] = np.nan
    return x.astype(dtype)


def _assert_same(got, want):
    got = host(got)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("g", ALL_GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_im2col_matches_reference(g, merged, dtype):
    be = fused("im2col")
    x = _image(g, dtype)
    _assert_same(be.im2col(dev(x), *_window(g), merged=merged),
                 ref.im2col(np, x, *_window(g), merged))


@pytest.mark.parametrize("g", ALL_GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_col2im_matches_reference(g, merged, dtype):
    be = fused("col2im")
    shape = ref.im2col(np, _image(g, dtype), *_window(g), merged).shape
    cols = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    h, w = g[2:4]
    want = ref.col2im(np, cols, h, w, *_window(g), merged)
    got = host(be.col2im(dev(cols), h, w, *_window(g), merged=merged))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("g", ALL_GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("case", ["random", "ties", "nan", "-inf"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_max_pool_forward_and_backward_match_reference(g, case, dtype):
    be = fused("max_pool2d_forward")
    fused("max_pool2d_backward")
    x = _image(g, dtype, ties=case == "ties", nan=case == "nan")
    if case == "-inf":  # nothing beats the initial -inf: the index convention decides
        x[:] = -np.inf
    window = _window(g)
    want_y, want_idx = ref.max_pool2d_forward(np, x, *window)
    y, idx = be.max_pool2d_forward(dev(x), *window)
    _assert_same(y, want_y)
    _assert_same(idx, want_idx)
    dy = np.random.default_rng(2).standard_normal(want_y.shape).astype(dtype)
    want_dx = ref.max_pool2d_backward(np, dy, want_idx, *g[2:4])
    dx = be.max_pool2d_backward(dev(dy), idx, *g[2:4], window=window)
    if _windows_miss_image(g):  # the reference on CuPy, which scatters with atomics
        np.testing.assert_allclose(host(dx), want_dx, **TOL[dtype])
    else:
        _assert_same(dx, want_dx)
        again = be.max_pool2d_backward(dev(dy), idx, *g[2:4], window=window)
        assert host(again).tobytes() == host(dx).tobytes()
    # without the geometry: the reference on CuPy, same values
    np.testing.assert_allclose(host(be.max_pool2d_backward(dev(dy), idx, *g[2:4])), want_dx,
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_max_pool_backward_sums_the_windows_sharing_a_maximum(dtype):
    be = fused("max_pool2d_backward")
    g = (2, 3, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, False)
    x = np.zeros(g[:4], dtype=dtype)
    x[:, :, 4, 3] = 1  # one maximum, in up to nine windows
    window = _window(g)
    y, idx = be.max_pool2d_forward(dev(x), *window)
    dy = np.random.default_rng(3).standard_normal(host(y).shape).astype(dtype)
    dx = host(be.max_pool2d_backward(dev(dy), idx, 9, 8, window=window))
    want = ref.max_pool2d_backward(np, dy, host(idx), 9, 8)
    np.testing.assert_array_equal(dx, want)
    np.testing.assert_allclose(dx[:, :, 4, 3], dy[:, :, 3:6, 2:5].sum(axis=(2, 3)), **TOL[dtype])
    # the zeros tie: each other window routes to its first position
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), dy.sum(axis=(2, 3)), **TOL[dtype])


@pytest.mark.parametrize("g", ALL_GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_avg_pool_matches_reference(g, count_include_pad, dtype):
    be = fused("avg_pool2d_forward")
    fused("avg_pool2d_backward")
    x = _image(g, dtype)
    h, w = g[2:4]
    args = _avg_window(g)
    if min(args[6:]) < 1:
        pytest.skip("no output without dilation")
    want_y = ref.avg_pool2d_forward(np, x, *args, count_include_pad)
    got_y = host(be.avg_pool2d_forward(dev(x), *args, count_include_pad))
    assert got_y.dtype == want_y.dtype
    np.testing.assert_allclose(got_y, want_y, **TOL[dtype])
    dy = np.random.default_rng(4).standard_normal(want_y.shape).astype(dtype)
    want_dx = ref.avg_pool2d_backward(np, dy, h, w, *args, count_include_pad)
    got_dx = host(be.avg_pool2d_backward(dev(dy), h, w, *args, count_include_pad))
    assert got_dx.dtype == want_dx.dtype and got_dx.shape == want_dx.shape
    np.testing.assert_allclose(got_dx, want_dx, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch_and_integer_inputs_go_to_the_reference(dtype):
    be = backend()
    g = (0, 2, 6, 5, 3, 3, 2, 1, 1, 1, 1, 1, True)
    window = _window(g)
    x = np.zeros(g[:4], dtype=dtype)
    _assert_same(be.im2col(dev(x), *window, merged=True), ref.im2col(np, x, *window, True))
    y, idx = be.max_pool2d_forward(dev(x), *window)
    _assert_same(y, ref.max_pool2d_forward(np, x, *window)[0])
    _assert_same(be.max_pool2d_backward(y, idx, 6, 5, window=window),
                 ref.max_pool2d_backward(np, host(y), host(idx), 6, 5))
    xi = np.arange(2 * 3 * 6 * 5).reshape(2, 3, 6, 5).astype(np.int32)
    g = (2, 3, 6, 5, 3, 3, 2, 1, 1, 1, 1, 1, True)
    _assert_same(be.im2col(dev(xi), *_window(g)), ref.im2col(np, xi, *_window(g)))
    for got, want in zip(be.max_pool2d_forward(dev(xi), *_window(g)),
                         ref.max_pool2d_forward(np, xi, *_window(g))):
        _assert_same(got, want)


@pytest.mark.parametrize("dtype", [mg.float32, mg.float64])
def test_max_pool_op_on_cuda_matches_cpu(dtype):
    x = np.random.default_rng(5).standard_normal((3, 4, 9, 8))
    results = []
    for device in ("cuda", "cpu"):
        X = mg.tensor(x, dtype=dtype, device=device, requires_grad=True)
        y = max_pool2d(X, (3, 2), (2, 1), 1, (1, 2), ceil_mode=True)
        (y * y).sum().backward()
        results.append((y.detach().cpu().numpy(), X.grad.cpu().numpy()))
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
