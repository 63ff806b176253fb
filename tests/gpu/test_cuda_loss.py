"""The fused CUDA softmax and cross-entropy (backend/cuda_loss.py) against
the reference run by numpy on the CPU (skipped, with the reason, where
mg.cuda.is_available() is False).

The kernels reduce and compute in double and round once, so both dtypes are
held to the float64 reference evaluated on the same input values (rounded to
float32 for float32 arrays)."""
import re

import numpy as np
import pytest

from minigrad.backend.reference import loss as ref
from .cuda_arrays import backend, dev, fused, host

pytestmark = pytest.mark.gpu

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [np.float32, np.float64]
IGNORE = -100


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _assert_close(got, want, dtype):
    got = host(got)
    want = np.asarray(want).astype(dtype)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])


def _logits(shape, dtype, seed=0, extreme=False):
    """Normal logits; with `extreme`, the first rows hold +-1e4 (finite
    results only if the row maximum is subtracted first)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    if extreme:
        rows = x.reshape(-1, shape[-1])
        rows[0] = np.where(np.arange(shape[-1]) % 2 == 0, 1e4, -1e4)
        rows[-1, 0] = -1e4
        rows[-1, -1] = 1e4
    return x.astype(dtype)


def _assert_same_as_reference_on_cupy(got, reference, *args):
    """The reference path (softmax over another axis) gives the reference's
    own result, which in float32 is not correctly rounded."""
    np.testing.assert_array_equal(host(got), host(reference(backend().xp, *args)))


# ------------------------------------------------------------- softmax

SOFTMAX_SHAPES = [(1, 1), (5, 7), (3, 4, 1000), (2, 33), (6, 2049)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("dim", [-1, "last", 0], ids=["dim-1", "last", "dim0"])
def test_softmax_forward_matches_reference(dim, shape, log, dtype):
    """Over the last axis the fused kernel; over the first the reference."""
    be = fused("softmax_forward")
    dim = len(shape) - 1 if dim == "last" else dim
    x = _logits(shape, dtype, extreme=True)
    got = be.softmax_forward(dev(x), dim, log)
    if dim == 0:
        _assert_same_as_reference_on_cupy(got, ref.softmax_forward, dev(x), dim, log)
    else:
        _assert_close(got, ref.softmax_forward(np, _f64(x), dim, log), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("dim", [-1, 0], ids=["dim-1", "dim0"])
def test_softmax_backward_matches_reference(dim, shape, log, dtype):
    be = fused("softmax_backward")
    y = ref.softmax_forward(np, _f64(_logits(shape, dtype, extreme=True)), dim, log).astype(dtype)
    g = _logits(shape, dtype, seed=1)
    got = be.softmax_backward(dev(y), dev(g), dim, log)
    if dim == 0:
        _assert_same_as_reference_on_cupy(got, ref.softmax_backward, dev(y), dev(g), dim, log)
    else:
        _assert_close(got, ref.softmax_backward(np, _f64(y), _f64(g), dim, log), dtype)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_backward_takes_a_broadcast_gradient(log):
    """The gradient of a sum arrives broadcast (stride 0): copied, then fused."""
    be = fused("softmax_backward")
    y = ref.softmax_forward(np, _logits((4, 9), np.float64), -1, log)
    g_row = np.linspace(-1, 1, 9)
    g = backend().xp.broadcast_to(dev(g_row), (4, 9))
    got = be.softmax_backward(dev(y), g, -1, log)
    want = ref.softmax_backward(np, y, np.broadcast_to(g_row, (4, 9)), -1, log)
    _assert_close(got, want, np.float64)


@pytest.mark.parametrize("shape,dim", [((), 0), ((), -1), ((0, 5), -1), ((3, 0), -1)],
                         ids=str)
def test_softmax_of_empty_and_0d_arrays_behaves_as_the_reference_on_cupy(shape, dim):
    """Outside the fused path: the reference's result, or its error."""
    be = fused("softmax_forward")
    x = dev(np.ones(shape))
    try:
        want = ref.softmax_forward(be.xp, x, dim, False)
    except Exception as e:
        with pytest.raises(type(e)):
            be.softmax_forward(x, dim, False)
        return
    got = be.softmax_forward(x, dim, False)
    np.testing.assert_array_equal(host(got), host(want))


# -------------------------------------------------------- cross-entropy

CE_SHAPES = [(1, 5), (16, 1), (64, 10), (8, 1000), (3, 4099)]
CONFIGS = [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.1)]


def _ce_case(shape, dtype, weighted, seed=0, extreme=True):
    rng = np.random.default_rng(seed)
    n, c = shape
    logits = _logits(shape, dtype, seed, extreme=extreme)
    target = rng.integers(0, c, n)
    target[1::3] = IGNORE  # N = 1 keeps its only row
    weight = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    return logits, target, weight


def _ce_reference(logits, target, weight, eps):
    return ref.cross_entropy_forward(np, _f64(logits), target, _f64(weight), IGNORE, eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted,eps", CONFIGS)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_cross_entropy_forward_matches_reference(shape, weighted, eps, dtype):
    be = fused("cross_entropy_forward")
    logits, target, weight = _ce_case(shape, dtype, weighted)
    losses, lse = be.cross_entropy_forward(dev(logits), dev(target), dev(weight), IGNORE, eps)
    want_losses, want_lse = _ce_reference(logits, target, weight, eps)
    _assert_close(losses, want_losses, dtype)
    _assert_close(lse, want_lse, dtype)
    assert np.all(host(losses)[target == IGNORE] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted,eps", CONFIGS)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_cross_entropy_backward_matches_reference(shape, weighted, eps, dtype):
    be = fused("cross_entropy_backward")
    logits, target, weight = _ce_case(shape, dtype, weighted)
    _, lse = _ce_reference(logits, target, weight, eps)
    lse = lse.astype(dtype)  # as the forward pass hands it over
    dlosses = np.random.default_rng(5).standard_normal(shape[0]).astype(dtype)
    got = be.cross_entropy_backward(dev(logits), dev(target), dev(weight), IGNORE, eps,
                                    dev(lse), dev(dlosses))
    want = ref.cross_entropy_backward(np, _f64(logits), target, _f64(weight), IGNORE, eps,
                                      _f64(lse), _f64(dlosses))
    _assert_close(got, want, dtype)
    assert np.all(host(got)[target == IGNORE] == 0)


@pytest.mark.parametrize("target_dtype", [np.int32, np.int64, np.uint8])
def test_cross_entropy_takes_any_integer_targets_and_strided_logits(target_dtype):
    be = fused("cross_entropy_forward")
    logits = _logits((7, 12), np.float64)
    strided = dev(logits.T.copy()).T  # not C-contiguous: copied, then fused
    target = (np.arange(7) * 5 % 12).astype(target_dtype)
    target[2] = 255  # ignored
    t_dev = dev(target)
    losses, lse = be.cross_entropy_forward(strided, t_dev, None, 255, 0.1)
    want_losses, want_lse = ref.cross_entropy_forward(np, logits, target, None, 255, 0.1)
    _assert_close(losses, want_losses, np.float64)
    _assert_close(lse, want_lse, np.float64)
    dlosses = np.linspace(0.5, 1.5, 7)
    got = be.cross_entropy_backward(strided, t_dev, None, 255, 0.1, lse, dev(dlosses))
    want = ref.cross_entropy_backward(np, logits, target, None, 255, 0.1, want_lse, dlosses)
    _assert_close(got, want, np.float64)


def test_cross_entropy_weight_of_another_dtype_goes_to_the_reference():
    be = fused("cross_entropy_forward")
    logits, target, weight = _ce_case((9, 6), np.float32, True)
    weight = weight.astype(np.float64)
    losses, lse = be.cross_entropy_forward(dev(logits), dev(target), dev(weight), IGNORE, 0.1)
    want_losses, want_lse = ref.cross_entropy_forward(np, logits, target, weight, IGNORE, 0.1)
    assert host(losses).dtype == want_losses.dtype
    np.testing.assert_allclose(host(losses), want_losses, **TOL[np.float32])
    np.testing.assert_allclose(host(lse), want_lse, **TOL[np.float32])


def _reference_error(*args):
    with pytest.raises(ValueError) as e:
        ref.cross_entropy_forward(np, *args)
    return re.escape(str(e.value))


@pytest.mark.parametrize("bad", [5, -3, 7])
def test_out_of_bounds_target_raises_the_reference_error(bad):
    be = fused("cross_entropy_backward")
    logits, target, _ = _ce_case((6, 5), np.float64, False, extreme=False)
    target[4] = bad
    message = _reference_error(logits, target, None, IGNORE, 0.0)
    assert f"Target {bad} is out of bounds for 5 classes" in str(message).replace("\\", "")
    with pytest.raises(ValueError, match=message):
        be.cross_entropy_forward(dev(logits), dev(target), None, IGNORE, 0.0)
    lse, dl = dev(np.zeros(6)), dev(np.ones(6))
    with pytest.raises(ValueError, match=message):
        be.cross_entropy_backward(dev(logits), dev(target), None, IGNORE, 0.0, lse, dl)


def test_shape_errors_are_the_reference_errors():
    be = fused("cross_entropy_forward")
    logits, target, weight = _ce_case((6, 5), np.float64, True, extreme=False)
    for args in ((logits, target[:4], None), (logits, target, weight[:3])):
        message = _reference_error(*args, IGNORE, 0.0)
        with pytest.raises(ValueError, match=message):
            be.cross_entropy_forward(*map(dev, args), IGNORE, 0.0)
