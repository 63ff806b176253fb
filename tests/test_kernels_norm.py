"""Normalization kernels: the reference (minigrad/backend/reference/norm.py)
against naive per-channel / per-group formulas written here, its backward
against finite differences of its forward, the compiled kernels
(minigrad/_core/norm.pyx) against the reference, and both against torch when
it is installed."""
import functools
import types
import zlib

import numpy as np
import pytest

from minigrad.backend.reference import norm as ref

EPS = 1e-5

REFERENCE = types.SimpleNamespace(
    **{name: functools.partial(getattr(ref, name), np) for name in ref.__all__})


def compiled():
    return pytest.importorskip("minigrad._core.norm")


@pytest.fixture(params=["reference", "compiled"])
def impl(request):
    """The kernels under test, called without xp."""
    return REFERENCE if request.param == "reference" else compiled()


def rng_for(*key):
    """A generator seeded by the test's own parameters (stable across runs)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randn(rng, shape, dtype=np.float64, loc=0.0, scale=1.0):
    return (loc + scale * rng.standard_normal(shape)).astype(dtype)


def params(rng, shape, dtype, weight, bias):
    """(weight, bias) of `shape`, each random or None."""
    w = randn(rng, shape, dtype, loc=1.0) if weight else None
    b = randn(rng, shape, dtype) if bias else None
    return w, b


AFFINE = [(True, True), (False, False), (True, False), (False, True)]


# ---------------------------------------------------------------- naive formulas

def naive_batch_norm(x, weight, bias, eps):
    """Channel by channel with numpy's mean/var (biased) in float64."""
    x = x.astype(np.float64)
    y = np.empty_like(x)
    C = x.shape[1]
    mean, var = np.empty(C), np.empty(C)
    for c in range(C):
        xs = x[:, c, :]
        mean[c], var[c] = xs.mean(), xs.var()
        y[:, c, :] = (xs - mean[c]) / np.sqrt(var[c] + eps)
        if weight is not None:
            y[:, c, :] *= weight[c]
        if bias is not None:
            y[:, c, :] += bias[c]
    return y, mean, var, 1.0 / np.sqrt(var + eps)


def naive_group_norm(x, weight, bias, eps, subtract_mean):
    """Row (n, g) by row; RMSNorm divides by the root mean square instead."""
    x = x.astype(np.float64)
    N, G, K, S = x.shape
    y = np.empty_like(x)
    mean, rstd = np.zeros((N, G)), np.empty((N, G))
    for n in range(N):
        for g in range(G):
            xs = x[n, g]
            if subtract_mean:
                mean[n, g] = xs.mean()
                rstd[n, g] = 1.0 / np.sqrt(xs.var() + eps)
            else:
                rstd[n, g] = 1.0 / np.sqrt(np.mean(xs ** 2) + eps)
            y[n, g] = (xs - mean[n, g]) * rstd[n, g]
            if weight is not None:
                y[n, g] *= weight[g][:, None]
            if bias is not None:
                y[n, g] += bias[g][:, None]
    return y, (mean if subtract_mean else None), rstd


def assert_close(actual, expected, rtol, atol=None):
    """Elementwise closeness, with atol scaled to the size of `expected`."""
    if expected is None:
        assert actual is None
        return
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * scale if atol is None else atol)


BN_SHAPES = [(4, 3, 5), (1, 6, 7), (5, 1, 9), (7, 4, 1), (1, 1, 1), (2, 3, 1)]
# (x shape, weight shape): GroupNorm, LayerNorm, InstanceNorm, G = K = 1, N = 1.
GN_SHAPES = [((3, 2, 4, 5), (2, 4)), ((4, 1, 9, 1), (1, 9)), ((2, 3, 1, 10), (3, 1)),
             ((2, 1, 1, 9), (1, 1)), ((1, 2, 3, 4), (2, 3)), ((3, 4, 2, 1), (4, 2))]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("weight,bias", AFFINE)
def test_batch_norm_forward_matches_naive(impl, shape, weight, bias):
    rng = rng_for("bn-naive", shape, weight, bias)
    x = randn(rng, shape, loc=0.5, scale=2.0)
    w, b = params(rng, shape[1], np.float64, weight, bias)
    got = impl.batch_norm_forward(x, w, b, EPS)
    for a, e in zip(got, naive_batch_norm(x, w, b, EPS)):
        assert a.dtype == np.float64
        assert_close(a, e, 1e-12)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("weight,bias", AFFINE)
def test_batch_norm_apply_matches_naive(impl, shape, weight, bias):
    rng = rng_for("bn-apply", shape, weight, bias)
    x = randn(rng, shape)
    mean, rstd = randn(rng, shape[1]), rng.uniform(0.5, 2.0, shape[1])
    w, b = params(rng, shape[1], np.float64, weight, bias)
    expected = (x - mean[:, None]) * rstd[:, None]
    expected = expected * (1.0 if w is None else w[:, None]) + (0.0 if b is None else b[:, None])
    assert_close(impl.batch_norm_apply(x, mean, rstd, w, b), expected, 1e-12)


@pytest.mark.parametrize("shape,wshape", GN_SHAPES)
@pytest.mark.parametrize("weight,bias", AFFINE)
@pytest.mark.parametrize("subtract_mean", [True, False])
def test_group_norm_forward_matches_naive(impl, shape, wshape, weight, bias, subtract_mean):
    rng = rng_for("gn-naive", shape, weight, bias, subtract_mean)
    x = randn(rng, shape, loc=0.5, scale=2.0)
    w, b = params(rng, wshape, np.float64, weight, bias)
    got = impl.group_norm_forward(x, w, b, EPS, subtract_mean)
    for a, e in zip(got, naive_group_norm(x, w, b, EPS, subtract_mean)):
        assert_close(a, e, 1e-12)


# ---------------------------------------------------------------- accuracy

def one_pass_float32_var(x, axes):
    """E[x^2] - E[x]^2 in float32: what a naive kernel computes."""
    x = x.astype(np.float32)
    return np.mean(x * x, axis=axes) - np.mean(x, axis=axes) ** 2


def test_large_offset_batch_norm_is_accurate(impl):
    rng = rng_for("bn-offset")
    x = randn(rng, (8, 3, 500), np.float32, loc=1e4)
    y, mean, var, rstd = impl.batch_norm_forward(x, None, None, EPS)
    y64, mean64, var64, _ = naive_batch_norm(x, None, None, EPS)
    # the data defeats a naive float32 one-pass variance ...
    assert np.max(np.abs(one_pass_float32_var(x, (0, 2)) / var64 - 1)) > 1e-2
    # ... but not these kernels
    assert np.max(np.abs(var / var64 - 1)) < 1e-4
    assert np.max(np.abs(mean / mean64 - 1)) < 1e-6
    assert np.max(np.abs(y - y64)) < 1e-4


@pytest.mark.parametrize("shape", [(6, 1, 300, 1), (2, 3, 4, 50)])
def test_large_offset_group_norm_is_accurate(impl, shape):
    rng = rng_for("gn-offset", shape)
    x = randn(rng, shape, np.float32, loc=1e4)
    y, mean, rstd = impl.group_norm_forward(x, None, None, EPS, True)
    y64, mean64, rstd64 = naive_group_norm(x, None, None, EPS, True)
    var64 = 1.0 / rstd64 ** 2 - EPS
    assert np.max(np.abs(one_pass_float32_var(x, (2, 3)) / var64 - 1)) > 1e-2
    assert np.max(np.abs(rstd / rstd64 - 1)) < 1e-4
    assert np.max(np.abs(mean / mean64 - 1)) < 1e-6
    assert np.max(np.abs(y - y64)) < 1e-4


def test_large_offset_backward_is_accurate(impl):
    """float32 data far from zero against the float64 computation on the same
    numbers. dx is accurate from the kernel's own float32 statistics;
    dweight = sum(dy * xhat) carries the rounding of a float32 mean
    (ulp(1e4) / 2 ~ 5e-4 std, times sum(dy)), so it is checked with float64
    statistics, which the kernels accept for float32 data."""
    rng = rng_for("offset-backward")
    x = randn(rng, (4, 3, 200), np.float32, loc=1e4)
    dy = randn(rng, x.shape, np.float32)
    w = randn(rng, 3, np.float32, loc=1.0)
    _, mean64, _, rstd64 = naive_batch_norm(x, None, None, EPS)
    expected = ref.batch_norm_backward(np, dy.astype(np.float64), x.astype(np.float64),
                                       mean64, rstd64, w, True)
    _, mean, _, rstd = impl.batch_norm_forward(x, w, None, EPS)
    dx = impl.batch_norm_backward(dy, x, mean, rstd, w, True)[0]
    assert dx.dtype == np.float32
    assert_close(dx, expected[0], 1e-4)
    for got, e in zip(impl.batch_norm_backward(dy, x, mean64, rstd64, w, True), expected):
        assert_close(got, e, 1e-4)
    xg, dyg = x.reshape(4, 3, 200, 1), dy.reshape(4, 3, 200, 1)
    _, mean, rstd = impl.group_norm_forward(xg, None, None, EPS, True)
    _, mean64, rstd64 = naive_group_norm(xg, None, None, EPS, True)
    expected = ref.group_norm_backward(np, dyg.astype(np.float64), xg.astype(np.float64),
                                       mean64, rstd64, None, True)[0]
    assert_close(impl.group_norm_backward(dyg, xg, mean, rstd, None, True)[0], expected, 1e-4)


# ---------------------------------------------------------------- finite differences

def numeric_grad(f, a, h=1e-6):
    """Central differences of the scalar f() with respect to array a (in place)."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + h
        up = f()
        flat[i] = keep - h
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * h)
    return grad


def check_grads(loss, analytic, arrays):
    """Each analytic gradient (None where the kernel gives none) against the
    numeric gradient of loss() with respect to the matching array."""
    for got, a in zip(analytic, arrays):
        if a is None:
            continue
        np.testing.assert_allclose(got, numeric_grad(loss, a), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(3, 2, 4), (1, 3, 5), (4, 2, 1), (2, 1, 3)])
@pytest.mark.parametrize("weight", [True, False])
def test_batch_norm_backward_train_matches_finite_differences(impl, shape, weight):
    rng = rng_for("bn-fd", shape, weight)
    x = randn(rng, shape, loc=0.3, scale=1.5)
    w, b = params(rng, shape[1], np.float64, weight, weight)
    g = randn(rng, shape)

    def loss():
        return float(np.sum(impl.batch_norm_forward(x, w, b, EPS)[0] * g))

    _, mean, _, rstd = impl.batch_norm_forward(x, w, b, EPS)
    dx, dw, db = impl.batch_norm_backward(g, x, mean, rstd, w, True)
    assert (dw is None) == (db is None) == (w is None)
    check_grads(loss, (dx, dw, db), (x, w, b))


@pytest.mark.parametrize("shape", [(3, 2, 4), (4, 2, 1)])
@pytest.mark.parametrize("weight", [True, False])
def test_batch_norm_backward_eval_matches_finite_differences(impl, shape, weight):
    rng = rng_for("bn-fd-eval", shape, weight)
    x = randn(rng, shape)
    mean, rstd = randn(rng, shape[1]), rng.uniform(0.5, 2.0, shape[1])
    w, b = params(rng, shape[1], np.float64, weight, weight)
    g = randn(rng, shape)

    def loss():
        return float(np.sum(impl.batch_norm_apply(x, mean, rstd, w, b) * g))

    grads = impl.batch_norm_backward(g, x, mean, rstd, w, False)
    check_grads(loss, grads, (x, w, b))


@pytest.mark.parametrize("shape,wshape", [((2, 2, 3, 2), (2, 3)), ((3, 1, 5, 1), (1, 5)),
                                          ((2, 3, 1, 4), (3, 1))])
@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("subtract_mean", [True, False])
def test_group_norm_backward_matches_finite_differences(impl, shape, wshape, weight,
                                                        subtract_mean):
    rng = rng_for("gn-fd", shape, weight, subtract_mean)
    x = randn(rng, shape, loc=0.3, scale=1.5)
    w, b = params(rng, wshape, np.float64, weight, weight)
    g = randn(rng, shape)

    def loss():
        return float(np.sum(impl.group_norm_forward(x, w, b, EPS, subtract_mean)[0] * g))

    _, mean, rstd = impl.group_norm_forward(x, w, b, EPS, subtract_mean)
    grads = impl.group_norm_backward(g, x, mean, rstd, w, subtract_mean)
    assert (grads[1] is None) == (w is None)
    check_grads(loss, grads, (x, w, b))


# ---------------------------------------------------------------- compiled vs reference

def tolerance(dtype):
    # Both sides compute in float64 and round once; float32 results may still
    # differ by an ulp where the float64 sums (taken in another order) fall
    # either side of a float32 rounding boundary.
    return 1e-6 if dtype == np.float32 else 1e-11


def assert_same(got, expected, dtype):
    for a, e in zip(got, expected):
        if e is None:
            assert a is None
            continue
        assert a.dtype == e.dtype and a.shape == e.shape
        assert_close(a, e, tolerance(dtype))


def layouts(rng, shape, dtype):
    """An array of `shape` three ways: contiguous, transposed view, strided view."""
    yield randn(rng, shape, dtype, loc=0.5)
    yield randn(rng, shape[::-1], dtype, loc=0.5).transpose(tuple(range(len(shape)))[::-1])
    wide = randn(rng, shape[:-1] + (2 * shape[-1],), dtype, loc=0.5)
    yield wide[..., ::2]


def cases(rng, shape, dtype):
    """(x, dy, (weight?, bias?)): every affine combination, x and dy in
    differing layouts."""
    xs, dys = list(layouts(rng, shape, dtype)), list(layouts(rng, shape, dtype))
    for i, affine in enumerate(AFFINE):
        yield xs[i % len(xs)], dys[(i + 1) % len(dys)], affine


def _threaded(count):
    """A size just above the compiled kernels' threading threshold, over `count`."""
    try:
        from minigrad._core.threads import parallel_min
    except ImportError:  # no compiled core: the reference runs these sizes too
        return 40000 // count
    return parallel_min() // count + 16


BN_COMPARE = BN_SHAPES + [(16, 300, 1), (8, 5, _threaded(40)), (3, 40, 300), (_threaded(64), 64, 1),
                          (_threaded(63) + 1, 63, 1)]  # rows that do not split evenly
GN_COMPARE = GN_SHAPES + [((64, 1, 512, 1), (1, 512)), ((4, 8, 8, 300), (8, 8)),
                          ((2, 64, 1, _threaded(128)), (64, 1)), ((1, 1, 40000, 1), (1, 40000)),
                          ((2, 8, 4, _threaded(64)), (8, 4))]


def _relu_of(core):
    """The relu kernel of the compiled module set `core` belongs to (None: the reference)."""
    if core is None:
        from minigrad.backend.reference import activation
        return lambda a: activation.activation_forward(np, "relu", a)
    from minigrad._core import activation
    return lambda a: activation.activation_forward("relu", a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", BN_COMPARE)
def test_compiled_batch_norm_matches_reference(dtype, shape):
    core = compiled()
    rng = rng_for("bn-core", shape, dtype)
    for x, dy, (weight, bias) in cases(rng, shape, dtype):
        w, b = params(rng, shape[1], dtype, weight, bias)
        fwd = core.batch_norm_forward(x, w, b, EPS)
        assert_same(fwd, ref.batch_norm_forward(np, x, w, b, EPS), dtype)
        mean, rstd = fwd[1], fwd[3]
        assert_same([core.batch_norm_apply(x, mean, rstd, w, b)],
                    [ref.batch_norm_apply(np, x, mean, rstd, w, b)], dtype)
        # the fused ReLU: exactly the relu kernel on each implementation's own output
        for impl, relu in ((core, _relu_of(core)), (None, _relu_of(None))):
            apply = impl.batch_norm_apply if impl else functools.partial(ref.batch_norm_apply, np)
            np.testing.assert_array_equal(apply(x, mean, rstd, w, b, True),
                                          relu(apply(x, mean, rstd, w, b)))
        for batch_stats in (True, False):
            assert_same(core.batch_norm_backward(dy, x, mean, rstd, w, batch_stats),
                        ref.batch_norm_backward(np, dy, x, mean, rstd, w, batch_stats), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.1, 1.0, 0.0, 1.0 / 3.0])
def test_running_stats_update_is_one_rounding_of_the_float64_formula(impl, dtype, momentum):
    rng = rng_for("running", dtype, momentum)
    rm, rv = randn(rng, 7, dtype), np.abs(randn(rng, 7, dtype)) + 0.1
    mean, var = randn(rng, 7, dtype), np.abs(randn(rng, 7, dtype))
    want_m = ((1 - momentum) * rm.astype(np.float64) + momentum * mean.astype(np.float64)).astype(dtype)
    want_v = ((1 - momentum) * rv.astype(np.float64)
              + momentum * (10 / 9 * var.astype(np.float64))).astype(dtype)
    impl.running_stats_update(rm, rv, mean, var, 10, momentum)
    # float32: the double results round to the same float32 (a fused
    # multiply-add in the compiled loop moves the double by at most an ulp)
    tol = 0 if dtype == np.float32 else 4e-16
    np.testing.assert_allclose(rm, want_m, rtol=tol, atol=0)
    np.testing.assert_allclose(rv, want_v, rtol=tol, atol=0)


@pytest.mark.parametrize("var_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_std_is_one_rounding_of_the_float64_value(impl, var_dtype, dtype):
    var = np.abs(randn(rng_for("istd", var_dtype, dtype), 33, var_dtype))
    var[:3] = (0.0, 1e-30, 1e30)
    got = impl.inverse_std(var, EPS, dtype)
    want = (1.0 / np.sqrt(var.astype(np.float64) + EPS)).astype(dtype)  # IEEE sqrt and divide
    assert got.dtype == dtype and got.tobytes() == want.tobytes()


def test_running_stats_update_other_layouts_take_the_reference():
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    mean64, var64 = np.arange(4.0), np.full(4, 2.0)  # float64 statistics for float32 buffers
    compiled().running_stats_update(rm, rv, mean64, var64, 3, 0.5)
    np.testing.assert_array_equal(rm, np.float32(0.5) * np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(rv, np.full(4, 0.5 + 0.5 * 3.0, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 9, 1), (64, 300, 1), (3, 4, 5),
                                   (_threaded(64), 64, 1), (_threaded(63) + 1, 63, 1)])
@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_apply_pre_bias_is_the_separate_add(impl, dtype, shape, relu):
    """pre_bias gives exactly the values of adding it in x's dtype first, with
    out= x (in place, one pass for BatchNorm1d's layout) or a new array."""
    rng = rng_for("bn-pre", shape, dtype, relu)
    x = randn(rng, shape, dtype)
    x.flat[::4] = 0.0
    pre = randn(rng, shape[1], dtype)
    mean, rstd = randn(rng, shape[1], dtype), np.abs(randn(rng, shape[1], dtype)) + 0.5
    w, b = params(rng, shape[1], dtype, True, True)
    want = impl.batch_norm_apply(x + pre.reshape(1, -1, 1), mean, rstd, w, b, relu)
    got = impl.batch_norm_apply(x, mean, rstd, w, b, relu, pre)
    assert got.tobytes() == want.tobytes()
    work = x.copy()
    assert impl.batch_norm_apply(work, mean, rstd, w, b, relu, pre, work) is work
    assert work.tobytes() == want.tobytes()
    out = np.empty_like(x)
    assert impl.batch_norm_apply(x, mean, rstd, w, b, relu, None, out) is out
    assert out.tobytes() == impl.batch_norm_apply(x, mean, rstd, w, b, relu).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,wshape", GN_COMPARE)
@pytest.mark.parametrize("subtract_mean", [True, False])
def test_compiled_group_norm_matches_reference(dtype, shape, wshape, subtract_mean):
    core = compiled()
    rng = rng_for("gn-core", shape, dtype, subtract_mean)
    for x, dy, (weight, bias) in cases(rng, shape, dtype):
        w, b = params(rng, wshape, dtype, weight, bias)
        fwd = core.group_norm_forward(x, w, b, EPS, subtract_mean)
        assert_same(fwd, ref.group_norm_forward(np, x, w, b, EPS, subtract_mean), dtype)
        _, mean, rstd = fwd
        assert_same(core.group_norm_backward(dy, x, mean, rstd, w, subtract_mean),
                    ref.group_norm_backward(np, dy, x, mean, rstd, w, subtract_mean), dtype)


def test_compiled_accepts_strided_parameters():
    core = compiled()
    rng = rng_for("strided-params")
    x = randn(rng, (4, 3, 5))
    w, b = randn(rng, 6)[::2], randn(rng, 6)[1::2]
    assert_same(core.batch_norm_forward(x, w, b, EPS), ref.batch_norm_forward(np, x, w, b, EPS),
                np.float64)
    x = randn(rng, (2, 1, 6, 1))
    w, b = randn(rng, (6, 1)).T, randn(rng, (1, 12))[:, ::2]
    assert_same(core.group_norm_forward(x, w, b, EPS, True),
                ref.group_norm_forward(np, x, w, b, EPS, True), np.float64)


def test_compiled_falls_back_for_other_dtypes():
    core = compiled()
    rng = rng_for("fallback")
    x = randn(rng, (3, 2, 4), np.float16)
    got = core.batch_norm_forward(x, None, None, EPS)
    assert got[0].dtype == np.float16
    assert_same(got, ref.batch_norm_forward(np, x, None, None, EPS), np.float32)
    # dy in another dtype than x: the reference's promotion rules apply
    x32, dy64 = randn(rng, (2, 2, 3, 1), np.float32), randn(rng, (2, 2, 3, 1))
    _, mean, rstd = core.group_norm_forward(x32, None, None, EPS, True)
    assert_same(core.group_norm_backward(dy64, x32, mean, rstd, None, True),
                ref.group_norm_backward(np, dy64, x32, mean, rstd, None, True), np.float32)


def test_compiled_exports_every_reference_kernel():
    core = compiled()
    for name in ref.__all__:
        assert callable(getattr(core, name))


# ---------------------------------------------------------------- torch

def torch_grads(fn, x, *params_, dy):
    """fn(x, *params) in torch float64: (y, [dx, dparam...])."""
    torch = pytest.importorskip("torch")
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in (x,) + params_]
    y = fn(*ts)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]


def test_torch_batch_norm(impl):
    F = pytest.importorskip("torch.nn.functional")
    rng = rng_for("torch-bn")
    x, dy = randn(rng, (4, 3, 5, 6), loc=2.0), randn(rng, (4, 3, 5, 6))
    w, b = params(rng, 3, np.float64, True, True)
    y_t, grads_t = torch_grads(
        lambda x_, w_, b_: F.batch_norm(x_, None, None, w_, b_, training=True, eps=EPS),
        x, w, b, dy=dy)
    x3, dy3 = x.reshape(4, 3, 30), dy.reshape(4, 3, 30)
    y, mean, _, rstd = impl.batch_norm_forward(x3, w, b, EPS)
    grads = impl.batch_norm_backward(dy3, x3, mean, rstd, w, True)
    assert_close(y.reshape(x.shape), y_t, 1e-10)
    for got, expected in zip(grads, grads_t):
        assert_close(got.reshape(expected.shape), expected, 1e-10)


def torch_group_cases():
    """kind -> (torch fn(x, w, b), x shape, channels, (N, G, K, S) layout of x,
    (G, K) layout of weight/bias, subtract_mean)."""
    F = pytest.importorskip("torch.nn.functional")
    return {
        "layer_norm": (lambda x, w, b: F.layer_norm(x, (10,), w, b, EPS),
                       (3, 4, 10), 10, (12, 1, 10, 1), (1, 10), True),
        "group_norm": (lambda x, w, b: F.group_norm(x, 3, w, b, EPS),
                       (2, 6, 3, 4), 6, (2, 3, 2, 12), (3, 2), True),
        "instance_norm": (lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=EPS),
                          (2, 5, 3, 4), 5, (2, 5, 1, 12), (5, 1), True),
        "rms_norm": (lambda x, w, b: F.rms_norm(x, (10,), w, EPS),
                     (3, 4, 10), 10, (12, 1, 10, 1), (1, 10), False),
    }


@pytest.mark.parametrize("kind", ["layer_norm", "group_norm", "instance_norm", "rms_norm"])
def test_torch_group_layouts(impl, kind):
    fn, shape, C, layout, wshape, subtract_mean = torch_group_cases()[kind]
    rng = rng_for("torch", kind)
    x, dy = randn(rng, shape, loc=1.0), randn(rng, shape)
    w = randn(rng, C, loc=1.0)
    b = randn(rng, C) if subtract_mean else None
    y_t, grads_t = torch_grads(fn, x, w, b, dy=dy)
    wk = w.reshape(wshape)
    bk = None if b is None else b.reshape(wshape)
    y, mean, rstd = impl.group_norm_forward(x.reshape(layout), wk, bk, EPS, subtract_mean)
    dx, dw, db = impl.group_norm_backward(dy.reshape(layout), x.reshape(layout), mean, rstd,
                                          wk, subtract_mean)
    assert_close(y.reshape(x.shape), y_t, 1e-10)
    assert_close(dx.reshape(x.shape), grads_t[0], 1e-10)
    assert_close(dw.reshape(-1), grads_t[1], 1e-10)
    if b is not None:
        assert_close(db.reshape(-1), grads_t[2], 1e-10)
