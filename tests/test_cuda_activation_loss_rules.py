"""Which arrays the fused CUDA activation, softmax and cross-entropy kernels
take (backend/cuda_activation.py, backend/cuda_loss.py), and the Python side
of their entry points: checked here without a GPU, with numpy playing the
array module, so that a wrong rule cannot hide behind skipped GPU tests.
Only the paths that stop before a kernel launch run here."""
import types

import numpy as np
import pytest

from minigrad.backend import Backend, cuda_activation, cuda_loss
from minigrad.backend.reference import activation as ref_activation
from minigrad.backend.reference import loss as ref_loss


def _target_check_kernel(*signature, **options):
    """numpy playing the fused target check (valid rows, bad targets)."""
    def run(t, ignore, classes):
        valid = t != ignore
        return valid, valid & ((t < 0) | (t >= classes))
    return run


@pytest.fixture
def backend():
    """The reference backend on numpy with the fused entry points installed,
    numpy standing in for CuPy (and for the one kernel that checks targets)."""
    be = Backend("standin", np)
    numpy_as_cupy = types.ModuleType("numpy_as_cupy")
    numpy_as_cupy.__dict__.update(np.__dict__, ElementwiseKernel=_target_check_kernel)
    cuda_activation.install(be, np)
    cuda_loss.install(be, numpy_as_cupy)
    return be


def test_every_activation_kind_has_both_formulas():
    assert set(cuda_activation._FORMULAS) == set(ref_activation.KINDS)
    assert all(len(pair) == 2 and all(pair) for pair in cuda_activation._FORMULAS.values())


def test_parameters_are_rounded_to_the_array_dtype():
    a, b = cuda_activation.scalar_params(np.float32, 0.1, -1.3)
    assert type(a) is np.float64 and a == np.float32(0.1) and b == np.float32(-1.3)
    assert cuda_activation.scalar_params(np.float64, 0.1, 20) == (0.1, 20.0)


def test_installed_names_are_marked_compiled(backend):
    for name in ("activation_forward", "activation_backward", "softmax_forward",
                 "softmax_backward", "cross_entropy_forward", "cross_entropy_backward"):
        assert backend.compiled[name] is getattr(backend, name)


def test_unknown_activation_raises_the_reference_error(backend):
    x = np.zeros(3)
    with pytest.raises(ValueError) as want:
        ref_activation.check_kind("swish")
    for call in (lambda: backend.activation_forward("swish", x),
                 lambda: backend.activation_backward("swish", x, x, x)):
        with pytest.raises(ValueError) as got:
            call()
        assert str(got.value) == str(want.value)


def test_activations_outside_the_fast_path_run_the_reference(backend):
    x = np.linspace(-3, 3, 12, dtype=np.float16)  # not a fused dtype
    np.testing.assert_array_equal(backend.activation_forward("gelu", x),
                                  ref_activation.activation_forward(np, "gelu", x))
    x32, dy64 = np.ones(4, np.float32), np.ones(4)  # mixed dtypes
    np.testing.assert_array_equal(
        backend.activation_backward("silu", x32, x32, dy64),
        ref_activation.activation_backward(np, "silu", x32, x32, dy64))


@pytest.mark.parametrize("width,threads", [(1, 32), (32, 32), (33, 64), (200, 256),
                                           (1000, 256), (10 ** 6, 256)])
def test_block_threads_are_whole_warps(width, threads):
    assert cuda_loss.block_threads(width) == threads


def test_softmax_rows_take_the_last_axis_of_contiguous_floats_only():
    x = np.zeros((2, 3, 7), np.float32)
    assert cuda_loss.softmax_rows(np, -1, x) == (6, 7)
    assert cuda_loss.softmax_rows(np, 2, x, x.copy()) == (6, 7)
    assert cuda_loss.softmax_rows(np, 1, x) is None                        # another axis
    assert cuda_loss.softmax_rows(np, -2, x) is None
    assert cuda_loss.softmax_rows(np, 0, np.zeros((4, 3)).T) is None       # a strided array
    assert cuda_loss.softmax_rows(np, -1, np.zeros((4, 3)).T) is None
    assert cuda_loss.softmax_rows(np, -1, x, x.astype(np.float64)) is None  # mixed dtypes
    assert cuda_loss.softmax_rows(np, -1, x, x[..., :6].copy()) is None     # mixed shapes
    assert cuda_loss.softmax_rows(np, -1, x.astype(np.float16)) is None
    assert cuda_loss.softmax_rows(np, 0, np.zeros((), np.float64)) is None  # 0-d
    assert cuda_loss.softmax_rows(np, -1, np.zeros((0, 4))) is None         # empty
    assert cuda_loss.softmax_rows(np, -1, np.zeros((4, 0))) is None
    assert cuda_loss.softmax_rows(np, True, np.zeros((3, 2))) is None       # not an axis number
    assert cuda_loss.softmax_rows(np, (1,), np.zeros((3, 2))) is None


def test_softmax_outside_the_fast_path_runs_the_reference(backend):
    x = np.random.default_rng(0).standard_normal((3, 4))
    for dim, log in ((0, False), (0, True)):
        np.testing.assert_array_equal(backend.softmax_forward(x, dim, log),
                                      ref_loss.softmax_forward(np, x, dim, log))
        np.testing.assert_array_equal(backend.softmax_backward(x, x, dim, log),
                                      ref_loss.softmax_backward(np, x, x, dim, log))


def test_cross_entropy_takes_float_logits_and_integer_targets():
    z = np.zeros((4, 3), np.float32)
    t = np.zeros(4, np.int64)
    fusable = cuda_loss.cross_entropy_fusable
    assert fusable(np, z, t, None)
    assert fusable(np, z, t.astype(np.uint8), np.ones(3, np.float32))
    assert fusable(np, np.zeros((3, 4)).T, t.astype(np.int32), None)  # any layout: copied
    assert not fusable(np, z, t.astype(np.float32), None)       # float targets
    assert not fusable(np, z, t, np.ones(3))                    # weight of another dtype
    assert not fusable(np, z, t, [1.0, 1.0, 1.0])               # not an array of the module
    assert not fusable(np, z.astype(np.float16), t, None)
    assert not fusable(np, z.astype(np.int64), t, None)
    assert not fusable(np, np.zeros(3, np.float32), t, None)    # not (N, C)
    assert not fusable(np, np.zeros((0, 3)), t[:0], None)       # no rows
    assert not fusable(np, np.zeros((4, 0)), t, None)           # no classes
    assert not fusable(np, z, list(t), None)


def _reference_message(call):
    with pytest.raises(ValueError) as e:
        call()
    return str(e.value)


@pytest.mark.parametrize("bad", [3, -1, 99])
def test_cross_entropy_target_errors_are_the_reference_errors(backend, bad):
    z = np.zeros((5, 3))
    t = np.array([0, 1, -100, bad, 2])
    want = _reference_message(
        lambda: ref_loss.cross_entropy_forward(np, z, t, None, -100, 0.0))
    assert want == f"Target {bad} is out of bounds for 3 classes"
    assert _reference_message(
        lambda: backend.cross_entropy_forward(z, t, None, -100, 0.0)) == want
    assert _reference_message(lambda: backend.cross_entropy_backward(
        z, t, None, -100, 0.0, np.zeros(5), np.ones(5))) == want


def test_cross_entropy_shape_errors_are_the_reference_errors(backend):
    z = np.zeros((5, 3))
    t = np.zeros(5, np.int64)
    for target, weight in ((t[:4], None), (t, np.ones(2)), (t.reshape(5, 1), None)):
        want = _reference_message(
            lambda: ref_loss.cross_entropy_forward(np, z, target, weight, -100, 0.1))
        assert _reference_message(
            lambda: backend.cross_entropy_forward(z, target, weight, -100, 0.1)) == want


def test_cross_entropy_outside_the_fast_path_runs_the_reference(backend):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.integers(0, 4, 6)
    w = rng.random(4)  # float64 weight with float32 logits: the reference's promotion
    got = backend.cross_entropy_forward(z, t, w, -100, 0.1)
    want = ref_loss.cross_entropy_forward(np, z, t, w, -100, 0.1)
    for g, r in zip(got, want):
        assert g.dtype == r.dtype
        np.testing.assert_array_equal(g, r)
