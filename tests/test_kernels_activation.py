"""Activation kernels: the reference against closed forms, finite differences
and PyTorch; the compiled kernels against the reference."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigrad.backend.reference import activation as ref

core = pytest.importorskip("minigrad._core.activation")

KINDS = ref.KINDS
# Parameters exactly representable in float32, so float32 and float64 runs
# see the same values.
PARAMS = {
    "leaky_relu": (0.125, 0.0),
    "elu": (1.5, 0.0),
    "softplus": (2.0, 20.0),
    "hardtanh": (-1.25, 0.75),
}


def params(kind):
    return PARAMS.get(kind, (0.0, 0.0))


# ------------------------------------------------- independent closed forms

def _sig(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _phi(x):  # standard normal CDF and density
    return 0.5 * math.erfc(-x / math.sqrt(2)), math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


_K0 = math.sqrt(2 / math.pi)


def naive_forward(kind, x, a, b):
    if kind == "relu":
        return max(x, 0.0)
    if kind == "leaky_relu":
        return x if x > 0 else a * x
    if kind == "elu":
        return x if x > 0 else a * math.expm1(x)
    if kind == "selu":
        return ref.SELU_SCALE * (x if x > 0 else ref.SELU_ALPHA * math.expm1(x))
    if kind == "gelu":
        return x * _phi(x)[0]
    if kind == "gelu_tanh":
        return 0.5 * x * (1 + math.tanh(_K0 * (x + 0.044715 * x ** 3)))
    if kind == "silu":
        return x * _sig(x)
    if kind == "sigmoid":
        return _sig(x)
    if kind == "tanh":
        return math.tanh(x)
    if kind == "softplus":
        return x if a * x > b else math.log1p(math.exp(a * x)) / a
    if kind == "hardtanh":
        return min(max(x, a), b)
    raise AssertionError(kind)


def naive_derivative(kind, x, a, b):
    if kind == "relu":
        return 1.0 if x > 0 else 0.0
    if kind == "leaky_relu":
        return 1.0 if x > 0 else a
    if kind == "elu":
        return 1.0 if x > 0 else a * math.exp(x)
    if kind == "selu":
        return ref.SELU_SCALE * (1.0 if x > 0 else ref.SELU_ALPHA * math.exp(x))
    if kind == "gelu":
        cdf, pdf = _phi(x)
        return cdf + x * pdf
    if kind == "gelu_tanh":
        t = math.tanh(_K0 * (x + 0.044715 * x ** 3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _K0 * (1 + 3 * 0.044715 * x * x)
    if kind == "silu":
        s = _sig(x)
        return s * (1 + x * (1 - s))
    if kind == "sigmoid":
        return _sig(x) * (1 - _sig(x))
    if kind == "tanh":
        return 1 - math.tanh(x) ** 2
    if kind == "softplus":
        return 1.0 if a * x > b else _sig(a * x)
    if kind == "hardtanh":
        return 1.0 if a < x < b else 0.0
    raise AssertionError(kind)


def sample(rng, n=400, scale=4.0):
    return np.concatenate([rng.standard_normal(n) * scale, rng.uniform(-12, 12, n // 4)])


@pytest.mark.parametrize("kind", KINDS)
def test_reference_matches_closed_form(kind):
    rng = np.random.default_rng(1)
    a, b = params(kind)
    x = sample(rng)
    y = ref.activation_forward(np, kind, x, a, b)
    dy = rng.standard_normal(x.shape)
    dx = ref.activation_backward(np, kind, x, y, dy, a, b)
    y_naive = np.array([naive_forward(kind, v, a, b) for v in x])
    dx_naive = dy * np.array([naive_derivative(kind, v, a, b) for v in x])
    # the closed forms of gelu/gelu_tanh lose relative accuracy to cancellation
    # in 1 + erf / 1 + tanh for negative x; the absolute term covers it
    np.testing.assert_allclose(y, y_naive, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx, dx_naive, rtol=1e-12, atol=1e-13)
    assert y.dtype == x.dtype and dx.dtype == x.dtype


def test_erfc_matches_math():
    z = np.concatenate([np.linspace(-8, 26, 3001), [0.0, -0.0, 1e-300, 3.0, -3.0]])
    expected = np.array([math.erfc(v) for v in z])
    np.testing.assert_allclose(ref.erfc(np, z), expected, rtol=1e-14, atol=0)
    got32 = ref.erfc(np, z.astype(np.float32))
    assert got32.dtype == np.float32
    expected32 = np.array([math.erfc(v) for v in z.astype(np.float32).astype(np.float64)])
    np.testing.assert_allclose(got32, expected32, rtol=2e-7, atol=1e-37)


def _smooth_points(kind, x, a, b):
    """Drop points within h-reach of a kink, where finite differences are
    not the derivative."""
    kinks = {"relu": [0.0], "leaky_relu": [0.0], "elu": [0.0], "selu": [0.0],
             "hardtanh": [a, b], "softplus": [b / a if a else 0.0]}.get(kind, [])
    keep = np.ones(x.shape, bool)
    for k in kinks:
        keep &= np.abs(x - k) > 1e-3
    return x[keep]


@pytest.mark.parametrize("kind", KINDS)
def test_reference_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(2)
    a, b = params(kind)
    x = _smooth_points(kind, sample(rng, 300, 3.0), a, b)
    h = 1e-6
    fwd = lambda v: ref.activation_forward(np, kind, v, a, b)
    numeric = (fwd(x + h) - fwd(x - h)) / (2 * h)
    dy = np.ones_like(x)
    analytic = ref.activation_backward(np, kind, x, fwd(x), dy, a, b)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_derivative_conventions_at_kinks():
    x = np.array([0.0, -1.25, 0.75, 10.0])  # 10 * 2 = 20 = softplus threshold
    dy = np.ones_like(x)

    def grad(kind):
        a, b = params(kind)
        return ref.activation_backward(np, kind, x, ref.activation_forward(np, kind, x, a, b), dy, a, b)

    assert grad("relu")[0] == 0.0
    assert grad("leaky_relu")[0] == 0.125
    assert grad("elu")[0] == 1.5
    assert grad("hardtanh")[1] == 0.0 and grad("hardtanh")[2] == 0.0
    # beta * x == threshold is not above it: the smooth branch still applies
    assert 0.99 < grad("softplus")[3] < 1.0
    sp = ref.activation_forward(np, "softplus", np.array([10.0, 10.5]), 2.0, 20.0)
    assert sp[0] > 10.0 and sp[1] == 10.5


EXTREMES = [-1e30, -1e4, -50.0, -20.0, -1e-8, 0.0, 1e-8, 20.0, 50.0, 1e4, 1e30]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["reference", "compiled"])
@pytest.mark.parametrize("kind", KINDS)
def test_extreme_inputs_are_finite_and_silent(kind, impl, dtype):
    a, b = params(kind)
    x = np.array(EXTREMES, dtype=dtype)
    dy = np.ones_like(x)
    # underflow to 0 is expected (and silent by default); nothing else may fire
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        if impl == "reference":
            y = ref.activation_forward(np, kind, x, a, b)
            dx = ref.activation_backward(np, kind, x, y, dy, a, b)
        else:
            y = core.activation_forward(kind, x, a, b)
            dx = core.activation_backward(kind, x, y, dy, a, b)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert y.dtype == dtype and dx.dtype == dtype


@pytest.mark.parametrize("impl", ["reference", "compiled"])
def test_sigmoid_and_softplus_tails(impl):
    x = np.array([-1e4, -50.0, 50.0, 1e4])
    fwd = (lambda k, v, a=0.0, b=0.0: ref.activation_forward(np, k, v, a, b)) if impl == "reference" \
        else core.activation_forward
    s = fwd("sigmoid", x)
    assert s[0] == 0.0 and s[3] == 1.0 and s[2] == 1.0
    np.testing.assert_allclose(s[1], math.exp(-50.0) / (1 + math.exp(-50.0)), rtol=1e-14)
    sp = fwd("softplus", x, 1.0, 20.0)
    assert sp[0] == 0.0 and sp[3] == 1e4 and sp[2] == 50.0
    np.testing.assert_allclose(sp[1], math.log1p(math.exp(-50.0)), rtol=1e-14)
    # a threshold that never switches to the identity: log1p(exp(x)) must not overflow
    sp_big = fwd("softplus", np.array([1e4, 700.0]), 1.0, 1e6)
    np.testing.assert_allclose(sp_big, [1e4, 700.0], rtol=1e-15)


@pytest.mark.parametrize("impl", ["reference", "compiled"])
@pytest.mark.parametrize("kind", KINDS)
def test_nan_propagates_forward(kind, impl):
    a, b = params(kind)
    x = np.array([np.nan, 1.0])
    y = ref.activation_forward(np, kind, x, a, b) if impl == "reference" \
        else core.activation_forward(kind, x, a, b)
    assert np.isnan(y[0]) and not np.isnan(y[1])


def test_unknown_kind_raises_naming_it():
    for fn in (lambda: ref.activation_forward(np, "swish2", np.ones(2)),
               lambda: core.activation_forward("swish2", np.ones(2)),
               lambda: ref.activation_backward(np, "swish2", np.ones(2), np.ones(2), np.ones(2)),
               lambda: core.activation_backward("swish2", np.ones(2), np.ones(2), np.ones(2))):
        with pytest.raises(ValueError, match="swish2") as info:
            fn()
        assert "gelu_tanh" in str(info.value) and "hardtanh" in str(info.value)


def test_compiled_module_exports_every_reference_kernel():
    for name in ref.__all__:
        assert callable(getattr(core, name))


# ------------------------------------------------- compiled vs reference

def _layouts(rng, dtype):
    """Arrays of several shapes and memory layouts (same shape triples)."""
    def make(shape):
        return np.asarray(rng.standard_normal(shape) * 3, dtype=dtype)

    from minigrad._core.threads import parallel_min
    big = make((8 * parallel_min() + 1,))     # above the threading thresholds (light kinds: 8x)
    yield "empty", make((0,))
    yield "0-d", make(())
    yield "scalar-like", make((1,))
    yield "odd", make((7,))
    yield "size-1 dims", make((3, 1, 5))
    yield "transposed", make((33, 17)).T
    yield "strided", make((40, 30))[::3, ::2]
    yield "big", big
    yield "big 2-d transposed", make((300, 257)).T


def _cases(dtype):
    rng = np.random.default_rng(3)
    for name, x in _layouts(rng, dtype):
        yield name, x, np.asarray(rng.standard_normal(x.shape), dtype=dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_matches_reference_float64(kind):
    a, b = params(kind)
    for name, x, dy in _cases(np.float64):
        y_ref = ref.activation_forward(np, kind, x, a, b)
        assert isinstance(y_ref, np.ndarray) and y_ref.shape == x.shape, name
        y = core.activation_forward(kind, x, a, b)
        assert isinstance(y, np.ndarray) and y.shape == x.shape and y.dtype == x.dtype, name
        np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-15, err_msg=name)
        dx_ref = ref.activation_backward(np, kind, x, y_ref, dy, a, b)
        dx = core.activation_backward(kind, x, y_ref, dy, a, b)
        assert dx.shape == x.shape and dx.dtype == x.dtype, name
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-14, err_msg=name)


# float32 kinds computed in float itself (see minigrad/_core/activation.pyx):
# forward error bounds in float32 ulps of the exact result. GELU backward is
# bounded in ulps of |dy| (Phi(x) + |x| phi(x)), the size of its two terms:
# they cancel near x = -0.75, where no float evaluation keeps relative accuracy.
SINGLE_FORWARD_ULP = {"gelu": 8.0, "tanh": 3.0}
SINGLE_BACKWARD_ULP = {"gelu": 4.0}


def float32_ulps(got, exact, scale=None):
    """|got - exact| in float32 ulps of |exact| (or of `scale`); subnormal
    ulps below the normal range."""
    scale = np.abs(exact) if scale is None else scale
    ulp = np.maximum(np.spacing(np.asarray(scale, np.float32)).astype(np.float64), 2.0 ** -149)
    return np.abs(got.astype(np.float64) - exact) / ulp


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_float32_is_correctly_rounded(kind):
    # The compiled float32 kernels compute in double and round once, so they
    # agree with the float64 reference on the same inputs to within an ulp;
    # the kinds computed in float keep their own bounds (tested below).
    a, b = params(kind)
    for name, x, dy in _cases(np.float32):
        y = core.activation_forward(kind, x, a, b)
        assert isinstance(y, np.ndarray) and y.shape == x.shape and y.dtype == np.float32, name
        x64 = x.astype(np.float64)
        y_ref = ref.activation_forward(np, kind, x64, a, b)
        if kind in SINGLE_FORWARD_ULP:
            assert float32_ulps(y, y_ref).max(initial=0) <= SINGLE_FORWARD_ULP[kind], name
        else:
            np.testing.assert_allclose(y, y_ref, rtol=1.2e-7, atol=1e-30, err_msg=name)
        dx = core.activation_backward(kind, x, y, dy, a, b)
        assert dx.shape == x.shape and dx.dtype == np.float32, name
        dx_ref = ref.activation_backward(np, kind, x64, y.astype(np.float64),
                                         dy.astype(np.float64), a, b)
        if kind in SINGLE_BACKWARD_ULP:
            scale = np.abs(dy.astype(np.float64)) * _gelu_terms(x64)
            assert float32_ulps(dx, dx_ref, scale).max(initial=0) <= SINGLE_BACKWARD_ULP[kind], name
        else:
            np.testing.assert_allclose(dx, dx_ref, rtol=1.2e-7, atol=1e-30, err_msg=name)


def _exact_phi(x64):
    """Phi(x) and phi(x) in double from math.erfc (relative error ~1e-16)."""
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x64.ravel()]).reshape(x64.shape)
    return cdf, np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)


def _gelu_terms(x64):
    cdf, pdf = _exact_phi(x64)
    return cdf + np.abs(x64) * pdf


def _dense_float32_sweep():
    """Every region of a float32 input: a dense grid over [-16, 16] (beyond
    which GELU saturates and tanh is +-1), both tails on a log scale down to
    subnormals, and the special values."""
    tail = np.logspace(-44, 1.3, 20001)
    special = [0.0, -0.0, 1e-45, -1e-45, 1.17e-38, -1.17e-38, 14.4, -14.4, 15.0, -15.0,
               0.75, -0.75, 1e4, -1e4, 1e30, -1e30, 3.4e38, -3.4e38]
    return np.concatenate([np.linspace(-16, 16, 320001), tail, -tail, special]).astype(np.float32)


def test_float32_gelu_and_tanh_within_their_bounds_on_a_dense_sweep():
    x = _dense_float32_sweep()
    x64 = x.astype(np.float64)
    cdf, pdf = _exact_phi(x64)
    exact = {"gelu": x64 * cdf, "tanh": np.tanh(x64)}
    for kind, bound in SINGLE_FORWARD_ULP.items():
        y = core.activation_forward(kind, x)
        err = float32_ulps(y, exact[kind])
        assert err.max() <= bound, (kind, float(x[err.argmax()]), float(err.max()))
    dy = np.linspace(-2, 2, x.size).astype(np.float32)
    dx = core.activation_backward("gelu", x, core.activation_forward("gelu", x), dy)
    dy64 = dy.astype(np.float64)
    err = float32_ulps(dx, dy64 * (cdf + x64 * pdf), np.abs(dy64) * (cdf + np.abs(x64) * pdf))
    assert err.max() <= SINGLE_BACKWARD_ULP["gelu"], (float(x[err.argmax()]), float(err.max()))


def test_float32_gelu_and_tanh_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-45, -1e-45], np.float32)
    gelu = core.activation_forward("gelu", x)
    # as x * Phi(x): NaN at -inf (-inf * 0), -0 where the negative tail underflows
    want = np.array([np.nan, np.inf, np.nan, 0.0, -0.0, 1e30, -0.0, 1e-45, -0.0], np.float32)
    np.testing.assert_array_equal(gelu, want)
    assert list(np.signbit(gelu[3:])) == [False, True, False, True, False, True]
    dgelu = core.activation_backward("gelu", x, gelu, np.ones_like(x))
    np.testing.assert_array_equal(dgelu, [np.nan, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.5, 0.5])
    tanh = core.activation_forward("tanh", x)
    np.testing.assert_array_equal(tanh, np.array([np.nan, 1, -1, 0.0, -0.0, 1, -1, 1e-45, -1e-45],
                                                 np.float32))
    assert list(np.signbit(tanh[3:5])) == [False, True]


@pytest.mark.parametrize("kind", KINDS)
def test_reference_float32_close_to_float64(kind):
    a, b = params(kind)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(2000) * 3).astype(np.float32)
    dy = rng.standard_normal(2000).astype(np.float32)
    y32 = ref.activation_forward(np, kind, x, a, b)
    y64 = ref.activation_forward(np, kind, x.astype(np.float64), a, b)
    dx32 = ref.activation_backward(np, kind, x, y32, dy, a, b)
    dx64 = ref.activation_backward(np, kind, x.astype(np.float64), y64, dy.astype(np.float64), a, b)
    assert y32.dtype == np.float32 and dx32.dtype == np.float32
    # float32 arithmetic in several steps: a few ulp, more near cancellation
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-5)


def test_compiled_leaves_inputs_alone_and_returns_new_arrays():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal((4, 6))
    x0, dy0 = x.copy(), dy.copy()
    for kind in KINDS:
        y = core.activation_forward(kind, x, *params(kind))
        dx = core.activation_backward(kind, x, y, dy, *params(kind))
        assert not np.shares_memory(y, x) and not np.shares_memory(dx, dy)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_compiled_accepts_read_only_and_broadcast_inputs():
    x = np.linspace(-3, 3, 12)
    x.flags.writeable = False
    dy = np.broadcast_to(np.float64(2.0), x.shape)
    y = core.activation_forward("silu", x)
    np.testing.assert_allclose(core.activation_backward("silu", x, y, dy),
                               ref.activation_backward(np, "silu", x, y, dy), rtol=1e-13)


@pytest.mark.parametrize("kind", ["relu", "gelu", "softplus"])
def test_compiled_falls_back_for_other_dtypes(kind):
    a, b = params(kind)
    x = np.linspace(-4, 4, 9).astype(np.float16)
    y = core.activation_forward(kind, x, a, b)
    y_ref = ref.activation_forward(np, kind, x, a, b)
    assert y.dtype == y_ref.dtype
    np.testing.assert_array_equal(y, y_ref)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(core.activation_backward(kind, x, y, dy, a, b),
                                  ref.activation_backward(np, kind, x, y_ref, dy, a, b))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6),
                  elements=st.floats(-1e6, 1e6, allow_nan=False)),
       st.sampled_from(KINDS))
def test_compiled_matches_reference_on_arbitrary_arrays(x, kind):
    a, b = params(kind)
    y_ref = ref.activation_forward(np, kind, x, a, b)
    np.testing.assert_allclose(core.activation_forward(kind, x, a, b), y_ref, rtol=1e-13, atol=1e-300)
    dy = np.ones_like(x)
    # derivatives with a zero inside (silu, gelu) cancel there: absolute tolerance
    np.testing.assert_allclose(core.activation_backward(kind, x, y_ref, dy, a, b),
                               ref.activation_backward(np, kind, x, y_ref, dy, a, b),
                               rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- PyTorch

def _torch_fn(kind, a, b):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return {
        "relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, a), "elu": lambda t: F.elu(t, a),
        "selu": F.selu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "softplus": lambda t: F.softplus(t, a, b), "hardtanh": lambda t: F.hardtanh(t, a, b),
    }[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_reference_and_compiled_match_torch(kind):
    torch = pytest.importorskip("torch")
    a, b = params(kind)
    rng = np.random.default_rng(6)
    # include the kinks and thresholds to check derivative conventions
    x = np.concatenate([sample(rng, 200, 4.0), [0.0, a, b, 10.0, -60.0, 60.0]])
    dy = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = _torch_fn(kind, a, b)(xt)
    (dxt,) = torch.autograd.grad(yt, xt, torch.tensor(dy))
    yt, dxt = yt.detach().numpy(), dxt.numpy()
    for fwd, bwd in ((lambda *args: ref.activation_forward(np, *args),
                      lambda *args: ref.activation_backward(np, *args)),
                     (core.activation_forward, core.activation_backward)):
        y = fwd(kind, x, a, b)
        # PyTorch's gelu forms 1 + erf/tanh and loses relative accuracy in the
        # negative tail; the absolute tolerance covers that
        np.testing.assert_allclose(y, yt, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(bwd(kind, x, y, dy, a, b), dxt, rtol=1e-11, atol=1e-12)
