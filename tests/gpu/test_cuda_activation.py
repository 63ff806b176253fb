"""The fused CUDA activations (backend/cuda_activation.py) against the
reference run by numpy on the CPU (skipped, with the reason, where
mg.cuda.is_available() is False).

The kernels compute in double and round once, so both dtypes are held to the
float64 reference evaluated on the same input values (rounded to float32 for
float32 arrays)."""
import numpy as np
import pytest

from minigrad.backend.reference import activation as ref
from .cuda_arrays import dev, fused, host

pytestmark = pytest.mark.gpu

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
# as tests/test_kernels_activation.py: exact in float32, so both dtypes see the same values
PARAMS = {
    "leaky_relu": (0.125, 0.0),
    "elu": (1.5, 0.0),
    "softplus": (2.0, 20.0),
    "hardtanh": (-1.25, 0.75),
}
EXTREMES = [1e4, -1e4, 50.0, -50.0, 0.0, -0.0, np.nan, 41.0, -41.0, 10.0, 10.5, 9.5,
            -1.25, 0.75, 1e-30, -1e-30]
SHAPES = [(), (0,), (3, 0), (1,), (257,), (33, 65), (4, 5, 6)]
DTYPES = [np.float32, np.float64]


def _values(shape, dtype, seed=0):
    """Normal draws scaled to cover the curved part of every kind, with the
    extreme values in front where the shape has room."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    k = min(flat.size, len(EXTREMES))
    flat[:k] = np.asarray(EXTREMES[:k], dtype)
    return x


def _reference(kind, dtype, x, y=None, dy=None):
    """The float64 reference on these values, as `dtype`."""
    a, b = PARAMS.get(kind, (0.0, 0.0))
    f64 = [None if v is None else np.asarray(v, np.float64) for v in (x, y, dy)]
    if y is None:
        out = ref.activation_forward(np, kind, f64[0], a, b)
    else:
        out = ref.activation_backward(np, kind, *f64, a, b)
    return np.asarray(out).astype(dtype)


def _assert_close(got, want, dtype):
    got = host(got)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ref.KINDS)
def test_fused_forward_matches_reference(kind, shape, dtype):
    be = fused("activation_forward")
    x = _values(shape, dtype)
    a, b = PARAMS.get(kind, (0.0, 0.0))
    _assert_close(be.activation_forward(kind, dev(x), a, b), _reference(kind, dtype, x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ref.KINDS)
def test_fused_backward_matches_reference(kind, shape, dtype):
    be = fused("activation_backward")
    x = _values(shape, dtype)
    y = _reference(kind, dtype, x)
    dy = _values(shape, dtype, seed=1)
    dy.reshape(-1)[:len(EXTREMES)] = 1.5  # the extremes are x's, not dy's
    a, b = PARAMS.get(kind, (0.0, 0.0))
    got = be.activation_backward(kind, dev(x), dev(y), dev(dy), a, b)
    _assert_close(got, _reference(kind, dtype, x, y, dy), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ref.KINDS)
def test_fused_kernels_on_a_dense_sweep(kind, dtype):
    """Every region of each kind: the switch points (softplus's threshold,
    hardtanh's bounds, GELU's clip) and the saturated tails."""
    be = fused("activation_forward")
    x = np.linspace(-60, 60, 24001).astype(dtype)
    dy = np.ones_like(x)
    a, b = PARAMS.get(kind, (0.0, 0.0))
    y = _reference(kind, dtype, x)
    _assert_close(be.activation_forward(kind, dev(x), a, b), y, dtype)
    _assert_close(be.activation_backward(kind, dev(x), dev(y), dev(dy), a, b),
                  _reference(kind, dtype, x, y, dy), dtype)


@pytest.mark.parametrize("kind", ["leaky_relu", "elu", "softplus", "hardtanh"])
def test_parameters_round_to_float32_as_numpy_does(kind):
    """Parameters not exact in float32 are used as numpy uses them with
    float32 data: rounded to float32 first."""
    be = fused("activation_forward")
    a, b = {"leaky_relu": (0.1, 0.0), "elu": (0.3, 0.0), "softplus": (0.7, 3.3),
            "hardtanh": (-0.3, 0.7)}[kind]
    x = _values((501,), np.float32)
    got = host(be.activation_forward(kind, dev(x), a, b))
    want = ref.activation_forward(np, kind, x.astype(np.float64), float(np.float32(a)),
                                  float(np.float32(b))).astype(np.float32)
    np.testing.assert_allclose(got, want, **TOL[np.float32])


def test_strided_inputs_take_the_fused_kernels():
    be = fused("activation_backward")
    x = _values((40, 30), np.float64).T
    dy = _values((30, 40), np.float64, seed=2)
    y = _reference("gelu", np.float64, x)
    got = be.activation_backward("gelu", dev(x), dev(y), dev(dy))
    _assert_close(got, _reference("gelu", np.float64, x, y, dy), np.float64)


def test_mixed_dtypes_go_to_the_reference():
    be = fused("activation_backward")
    x = _values((7, 3), np.float32)
    y = _reference("silu", np.float32, x)
    dy = _values((7, 3), np.float64, seed=3)
    got = host(be.activation_backward("silu", dev(x), dev(y), dev(dy)))
    want = ref.activation_backward(np, "silu", x, y, dy)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **TOL[np.float32])


def test_unknown_kind_raises_the_reference_error():
    be = fused("activation_forward")
    x = dev(np.zeros(3))
    with pytest.raises(ValueError) as expected:
        ref.check_kind("swish")
    with pytest.raises(ValueError) as forward:
        be.activation_forward("swish", x)
    with pytest.raises(ValueError) as backward:
        be.activation_backward("swish", x, x, x)
    assert str(forward.value) == str(backward.value) == str(expected.value)
