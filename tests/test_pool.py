"""max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d and their
layers: direct loop references over random configurations (stride, padding,
dilation, ceil_mode, rectangular windows, batch 1), finite differences in
float64, compiled kernels against the reference ones through the ops,
PyTorch when installed, and error messages."""
import itertools
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.layers.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from minigrad.ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d

from compiled_kernels import require_compiled_cpu_kernels


def _np(t):
    return np.asarray(t.detach())


# ---------------------------------------------------------------- direct references

def out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's documented pooling output size."""
    span = n + 2 * p - d * (k - 1) - 1
    out = math.ceil(span / s) + 1 if ceil_mode else math.floor(span / s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def naive_max_pool(x, k, s, p, d, ceil_mode):
    """(values, flat indices h*W + w, and a routing function for gradients)."""
    n, c, h, w = x.shape
    oh, ow = (out_size(x.shape[2 + a], k[a], s[a], p[a], d[a], ceil_mode) for a in (0, 1))
    y, idx = np.empty((n, c, oh, ow)), np.empty((n, c, oh, ow), dtype=np.int64)
    for b, ch, oy, ox in itertools.product(range(n), range(c), range(oh), range(ow)):
        best, at = -math.inf, None
        for i, j in itertools.product(range(k[0]), range(k[1])):
            r, q = oy * s[0] - p[0] + i * d[0], ox * s[1] - p[1] + j * d[1]
            if 0 <= r < h and 0 <= q < w and (x[b, ch, r, q] > best or math.isnan(x[b, ch, r, q])):
                best, at = x[b, ch, r, q], r * w + q
        y[b, ch, oy, ox], idx[b, ch, oy, ox] = best, at
    return y, idx


def route(dy, idx, h, w):
    dx = np.zeros(dy.shape[:2] + (h * w,))
    for b, ch, oy, ox in np.ndindex(dy.shape):
        dx[b, ch, idx[b, ch, oy, ox]] += dy[b, ch, oy, ox]
    return dx.reshape(dy.shape[:2] + (h, w))


def naive_avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor_override=None):
    """Window sums over the zero-padded input; the divisor as PyTorch documents:
    the window clipped to the padded input, or to the input, or the override."""
    n, c, h, w = x.shape
    oh, ow = (out_size(x.shape[2 + a], k[a], s[a], p[a], 1, ceil_mode) for a in (0, 1))
    y = np.empty((n, c, oh, ow))
    for oy, ox in itertools.product(range(oh), range(ow)):
        r0, q0 = oy * s[0] - p[0], ox * s[1] - p[1]
        r1, q1 = min(r0 + k[0], h + p[0]), min(q0 + k[1], w + p[1])
        padded_count = (r1 - r0) * (q1 - q0)
        r0, q0, r1, q1 = max(r0, 0), max(q0, 0), min(r1, h), min(q1, w)
        total = x[:, :, r0:r1, q0:q1].sum(axis=(2, 3))
        div = divisor_override or (padded_count if count_include_pad else (r1 - r0) * (q1 - q0))
        y[:, :, oy, ox] = total / div
    return y


def adaptive_windows(size, n_out):
    return [(i * size // n_out, -(-(i + 1) * size // n_out)) for i in range(n_out)]


def naive_adaptive(x, oh, ow, reduce):
    n, c = x.shape[:2]
    y = np.empty((n, c, oh, ow))
    for (oy, (r0, r1)), (ox, (q0, q1)) in itertools.product(
            enumerate(adaptive_windows(x.shape[2], oh)), enumerate(adaptive_windows(x.shape[3], ow))):
        y[:, :, oy, ox] = reduce(x[:, :, r0:r1, q0:q1], axis=(2, 3))
    return y


def random_pool_config(seed, dilation=True):
    rng = np.random.default_rng(seed)
    while True:
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2)) if dilation else (1, 1)
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        ceil = bool(rng.integers(0, 2))
        shape = (1 if seed % 3 == 0 else int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                 int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        oh, ow = (out_size(shape[2 + a], k[a], s[a], p[a], d[a], ceil) for a in (0, 1))
        if oh < 1 or ow < 1:
            continue
        # every window must hold an image element (else its max is -inf)
        rows_ok = all(any(0 <= oy * s[0] - p[0] + i * d[0] < shape[2] for i in range(k[0])) for oy in range(oh))
        cols_ok = all(any(0 <= ox * s[1] - p[1] + j * d[1] < shape[3] for j in range(k[1])) for ox in range(ow))
        if rows_ok and cols_ok:
            return shape, dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


def pool_input(seed, shape, ties=False, dtype=np.float64):
    rng = np.random.default_rng(500 + seed)
    x = rng.integers(-2, 3, shape).astype(dtype) if ties else rng.standard_normal(shape)
    return x.astype(dtype)


CONFIGS = range(40)


# ---------------------------------------------------------------- max pooling

@pytest.mark.parametrize("seed", CONFIGS)
def test_max_pool_matches_direct_loops(seed):
    shape, kw = random_pool_config(seed)
    x = pool_input(seed, shape, ties=seed % 2 == 1)
    X = mg.tensor(x, requires_grad=True)
    y, idx = max_pool2d(X, **kw, return_indices=True)
    ny, nidx = naive_max_pool(x, kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"], kw["ceil_mode"])
    np.testing.assert_array_equal(_np(y), ny)
    np.testing.assert_array_equal(_np(idx), nidx)
    assert idx.dtype == mg.int64 and not idx.requires_grad
    dy = np.random.default_rng(seed).standard_normal(ny.shape)
    y.backward(mg.tensor(dy))
    np.testing.assert_allclose(_np(X.grad), route(dy, nidx, *shape[2:]), rtol=1e-12, atol=1e-12)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = mg.ones(1, 1, 4, 4, requires_grad=True)
    max_pool2d(x, 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(_np(x.grad)[0, 0], expected)


def test_max_pool_nan_propagates():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    y = max_pool2d(mg.tensor(x), 2)
    assert np.isnan(_np(y)[0, 0, 0, 0]) and _np(y)[0, 0, 1, 1] == 15


@pytest.mark.parametrize("seed", range(10))
def test_max_pool_gradcheck_and_gradgradcheck(seed):
    shape, kw = random_pool_config(seed)
    x = mg.tensor(pool_input(seed, shape), requires_grad=True)
    assert mg.gradcheck(lambda t: max_pool2d(t, **kw), [x])
    if seed < 3:
        assert mg.gradgradcheck(lambda t: max_pool2d(t, **kw), [x])


def test_max_pool_return_indices_backward_through_values():
    x = mg.randn(2, 3, 6, 6, requires_grad=True)
    y, idx = MaxPool2d(3, stride=2, return_indices=True)(x)
    (y * 2).sum().backward()
    assert _np(x.grad).sum() == pytest.approx(2 * y.numel())


def test_unbatched_pools_equal_batch_of_one(rng):
    x = rng.standard_normal((3, 7, 6))
    for fn in (lambda t: max_pool2d(t, 3, 2, 1), lambda t: avg_pool2d(t, (2, 3), ceil_mode=True),
               lambda t: adaptive_avg_pool2d(t, (3, 4)), lambda t: adaptive_max_pool2d(t, 4)):
        X = mg.tensor(x, requires_grad=True)
        y = fn(X)
        np.testing.assert_array_equal(_np(y), _np(fn(mg.tensor(x[None])))[0])
        y.sum().backward()
        assert X.grad.shape == x.shape
    y, idx = max_pool2d(mg.tensor(x), 2, return_indices=True)
    assert y.shape == idx.shape == (3, 3, 3)


# ---------------------------------------------------------------- average pooling

@pytest.mark.parametrize("seed", CONFIGS)
def test_avg_pool_matches_direct_loops(seed):
    shape, kw = random_pool_config(seed, dilation=False)
    del kw["dilation"]
    include = seed % 2 == 0
    override = 3 if seed % 5 == 0 else None
    x = pool_input(seed, shape)
    X = mg.tensor(x, requires_grad=True)
    y = avg_pool2d(X, **kw, count_include_pad=include, divisor_override=override)

    def ref(a):
        return naive_avg_pool(a, kw["kernel_size"], kw["stride"], kw["padding"], kw["ceil_mode"], include, override)
    np.testing.assert_allclose(_np(y), ref(x), rtol=1e-12, atol=1e-12)
    # the map is linear: its gradient is the matrix of ref, column by column
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(mg.tensor(dy))
    basis = np.eye(x.size).reshape((x.size,) + x.shape)
    expected = np.array([np.sum(ref(e) * dy) for e in basis]).reshape(x.shape)
    np.testing.assert_allclose(_np(X.grad), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_avg_pool_gradcheck_and_gradgradcheck(seed):
    shape, kw = random_pool_config(seed, dilation=False)
    del kw["dilation"]
    x = mg.tensor(pool_input(seed, shape), requires_grad=True)
    fn = lambda t: avg_pool2d(t, **kw, count_include_pad=seed % 2 == 0)  # noqa: E731
    assert mg.gradcheck(fn, [x])
    assert mg.gradgradcheck(fn, [x])


# ---------------------------------------------------------------- adaptive pooling

ADAPTIVE_CASES = [((1, 2, 7, 5), (3, 2)), ((2, 1, 4, 4), (2, 2)), ((1, 3, 5, 9), (4, 9)),
                  ((2, 2, 3, 2), (5, 4)), ((1, 1, 10, 6), (1, 1)), ((1, 2, 6, 5), (None, 3))]


@pytest.mark.parametrize("shape, size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_matches_direct_loops(shape, size):
    x = pool_input(1, shape)
    X = mg.tensor(x, requires_grad=True)
    y = adaptive_avg_pool2d(X, size)
    oh, ow = (shape[2] if size[0] is None else size[0]), size[1]
    np.testing.assert_allclose(_np(y), naive_adaptive(x, oh, ow, np.mean), rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda t: adaptive_avg_pool2d(t, size), [X])
    assert mg.gradgradcheck(lambda t: adaptive_avg_pool2d(t, size), [X])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape, size", ADAPTIVE_CASES)
def test_adaptive_max_pool_matches_direct_loops(shape, size, ties):
    x = pool_input(2, shape, ties=ties)
    X = mg.tensor(x, requires_grad=True)
    y, idx = adaptive_max_pool2d(X, size, return_indices=True)
    oh, ow = (shape[2] if size[0] is None else size[0]), size[1]
    np.testing.assert_array_equal(_np(y), naive_adaptive(x, oh, ow, np.max))
    # indices: the first maximum of each window, as flat plane positions
    flat = x.reshape(shape[:2] + (-1,))
    picked = np.take_along_axis(flat, _np(idx).reshape(shape[:2] + (-1,)), axis=2)
    np.testing.assert_array_equal(picked.reshape(y.shape), _np(y))
    rows, cols = adaptive_windows(shape[2], oh), adaptive_windows(shape[3], ow)
    for b, c, oy, ox in np.ndindex(y.shape):
        (r0, r1), (q0, q1) = rows[oy], cols[ox]
        win = x[b, c, r0:r1, q0:q1]
        i, j = np.unravel_index(np.argmax(win), win.shape)  # numpy's argmax: the first maximum
        assert _np(idx)[b, c, oy, ox] == (r0 + i) * shape[3] + q0 + j
    dy = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(dy))
    np.testing.assert_allclose(_np(X.grad), route(dy, _np(idx), *shape[2:]), rtol=1e-12)
    if not ties:
        assert mg.gradcheck(lambda t: adaptive_max_pool2d(t, size), [mg.tensor(x, requires_grad=True)])


# ---------------------------------------------------------------- compiled vs reference

def _run_all(x, dev, dtype):
    """Outputs and input gradients of every pooling op on one device."""
    results = []
    fns = [lambda t: max_pool2d(t, (3, 2), (2, 1), 1, (1, 2), ceil_mode=True),
           lambda t: avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
           lambda t: avg_pool2d(t, (2, 3), 1, (1, 0), divisor_override=4),
           lambda t: adaptive_avg_pool2d(t, (3, 5)),
           lambda t: adaptive_max_pool2d(t, (4, 3))]
    for fn in fns:
        X = mg.tensor(x, dtype=dtype, device=dev, requires_grad=True)
        y = fn(X)
        (y * y).sum().backward()
        results += [np.asarray(y.detach()), np.asarray(X.grad)]
    return results


@pytest.mark.parametrize("dtype", [mg.float32, mg.float64])
@pytest.mark.parametrize("device", ["standin", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_compiled_kernels_match_reference_through_the_ops(dtype, device):
    if device == "standin":
        require_compiled_cpu_kernels("max_pool2d_forward")
    x = np.random.default_rng(0).standard_normal((3, 4, 9, 8))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == mg.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, want in zip(_run_all(x, device, dtype), _run_all(x, "cpu", dtype)):
        assert got.dtype == want.dtype == dtype.np
        np.testing.assert_allclose(got, want, **tol)


# ---------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_matches_pytorch(seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    shape, kw = random_pool_config(seed)
    x = pool_input(seed, shape, ties=seed % 2 == 1, dtype=np.float32)
    avg_kw = {k: v for k, v in kw.items() if k != "dilation"}
    cases = [(lambda t: max_pool2d(t, **kw, return_indices=True)[0], lambda t: F.max_pool2d(t, **kw)),
             (lambda t: max_pool2d(t, **kw, return_indices=True)[1],
              lambda t: F.max_pool2d(t, **kw, return_indices=True)[1])]
    if kw["dilation"] == (1, 1):
        for include in (True, False):
            cases.append((lambda t, i=include: avg_pool2d(t, **avg_kw, count_include_pad=i),
                          lambda t, i=include: F.avg_pool2d(t, **avg_kw, count_include_pad=i)))
    size = (max(1, shape[2] - 1), shape[3] + 1)
    cases += [(lambda t: adaptive_avg_pool2d(t, size), lambda t: F.adaptive_avg_pool2d(t, size)),
              (lambda t: adaptive_max_pool2d(t, size), lambda t: F.adaptive_max_pool2d(t, size))]
    for ours, theirs in cases:
        X, Xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, yt = ours(X), theirs(Xt)
        np.testing.assert_allclose(_np(y), yt.detach().numpy(), rtol=1e-6, atol=1e-6)
        if y.requires_grad:
            dy = np.random.default_rng(seed).standard_normal(tuple(y.shape)).astype(np.float32)
            y.backward(mg.tensor(dy))
            yt.backward(torch.tensor(dy))
            np.testing.assert_allclose(_np(X.grad), Xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, args", [
    ("MaxPool2d", (2,)), ("MaxPool2d", ((3, 2), 1, 1, 2, False, True)),
    ("AvgPool2d", (3,)), ("AvgPool2d", ((2, 3), (1, 2), 1, True, False, 5)),
    ("AdaptiveAvgPool2d", ((4, None),)), ("AdaptiveMaxPool2d", (3,)),
])
def test_layer_reprs_and_outputs_match_pytorch(name, args):
    torch = pytest.importorskip("torch")
    ours = {"MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "AdaptiveAvgPool2d": AdaptiveAvgPool2d,
            "AdaptiveMaxPool2d": AdaptiveMaxPool2d}[name](*args)
    theirs = getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 8)).astype(np.float32)
    np.testing.assert_allclose(_np(ours(mg.tensor(x))), theirs(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- layers and errors

def test_layer_attributes_keep_the_given_values():
    layer = MaxPool2d(3)
    assert layer.kernel_size == 3 and layer.stride == 3 and layer.padding == 0 and layer.dilation == 1
    assert AvgPool2d((2, 3), stride=1).stride == 1
    assert list(layer.parameters()) == [] and layer.state_dict() == {}


@pytest.mark.parametrize("fn", [lambda x: max_pool2d(x, 2), lambda x: avg_pool2d(x, 2),
                                lambda x: adaptive_avg_pool2d(x, 2), lambda x: adaptive_max_pool2d(x, 2),
                                MaxPool2d(2), AvgPool2d(2), AdaptiveAvgPool2d(2)])
def test_error_on_input_rank(fn):
    with pytest.raises(ValueError, match=r"3-D \(unbatched.*4-D.*got input of shape \(4, 4\)"):
        fn(mg.randn(4, 4))


def test_error_on_padding_larger_than_half_the_kernel():
    with pytest.raises(ValueError, match=r"padding should be at most half of the kernel size, but got "
                                         r"padding=\(2, 2\) and kernel_size=\(3, 3\)"):
        MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match="padding should be at most half"):
        avg_pool2d(mg.randn(1, 1, 8, 8), 2, padding=(0, 2))
    with pytest.raises(ValueError, match="padding should be at most half"):  # dilation does not count
        max_pool2d(mg.randn(1, 1, 8, 8), 3, dilation=2, padding=2)
    assert max_pool2d(mg.randn(1, 1, 8, 8), 3, dilation=2, padding=1).shape == (1, 1, 2, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=2, stride=0), r"stride must be greater than zero, got stride=\(0, 0\)"),
    (dict(kernel_size=(2, 0)), r"kernel_size must be greater than zero"),
    (dict(kernel_size=2, dilation=0), r"dilation must be greater than zero"),
    (dict(kernel_size=2, padding=-1), r"padding must be non-negative"),
    (dict(kernel_size=(1, 2, 3)), r"kernel_size must be an int or a tuple of two ints"),
])
def test_error_on_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        max_pool2d(mg.randn(1, 1, 4, 4), **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        MaxPool2d(**kwargs)


def test_error_on_output_too_small():
    with pytest.raises(ValueError, match=r"input of shape \(1, 2, 2, 5\).*output size \(0 x 1\) is too small"):
        max_pool2d(mg.randn(1, 2, 2, 5), (3, 4))
    with pytest.raises(ValueError, match="too small"):
        AvgPool2d(4)(mg.randn(2, 3, 3))


def test_errors_of_avg_and_adaptive_pooling():
    with pytest.raises(ValueError, match="divisor_override must be a nonzero int"):
        avg_pool2d(mg.randn(1, 1, 4, 4), 2, divisor_override=0)
    with pytest.raises(ValueError, match="divisor_override must be a nonzero int"):
        AvgPool2d(2, divisor_override=0)
    with pytest.raises(TypeError, match="output_size must be an int or a pair"):
        adaptive_avg_pool2d(mg.randn(1, 1, 4, 4), (1, 2, 3))
    with pytest.raises(ValueError, match="output_size must be non-negative"):
        AdaptiveAvgPool2d(-1)
    with pytest.raises(ValueError, match=r"non-zero height and width, got shape \(1, 1, 0, 4\)"):
        adaptive_avg_pool2d(mg.randn(1, 1, 0, 4), 2)
    with pytest.raises(TypeError, match="expected a floating point input, got minigrad.int64"):
        max_pool2d(mg.zeros(1, 1, 4, 4, dtype=mg.int64), 2)
