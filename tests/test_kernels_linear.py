"""Linear-layer epilogue kernels (bias + relu, and their gradient): the
reference against closed forms, the compiled kernels against the reference."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.backend.reference import activation as ref_act
from minigrad.backend.reference import linear as ref

from compiled_kernels import require_compiled_cpu_kernels

core = pytest.importorskip("minigrad._core.linear")

SHAPES = [(0, 3), (3, 0), (1, 1), (4, 7), (32, 64), (128, 513)]


def _arrays(shape, dtype, seed=0):
    r = np.random.default_rng(seed)
    z = r.standard_normal(shape).astype(dtype)
    z.flat[::5] = 0.0  # exact zeros: relu's tie
    return z, r.standard_normal(shape[1]).astype(dtype), r.standard_normal(shape).astype(dtype)


def _column_sums(dz):
    """Exact sums of each column (math.fsum), rounded once to dz's dtype."""
    return np.array([math.fsum(dz[:, j].astype(np.float64)) for j in range(dz.shape[1])],
                    dtype=dz.dtype)


def test_compiled_kernels_are_registered():
    backend = mg.device("cpu").backend
    for name in ("linear_epilogue", "linear_epilogue_backward"):
        require_compiled_cpu_kernels(name, area="linear")
        assert getattr(backend, name) is getattr(core, name)


# ------------------------------------------------------ reference, closed forms

@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(4, 7), (3, 1)])
def test_reference_epilogue_closed_form(shape, relu):
    z, b, _ = _arrays(shape, np.float64)
    out = ref.linear_epilogue(np, z.copy(), b, relu)
    expected = [[max(z[i, j] + b[j], 0.0) if relu else z[i, j] + b[j]
                 for j in range(shape[1])] for i in range(shape[0])]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("relu", [False, True])
def test_reference_epilogue_backward_closed_form(relu):
    z, b, g = _arrays((5, 6), np.float64)
    out = ref.linear_epilogue(np, z.copy(), b, relu)
    dz, db = ref.linear_epilogue_backward(np, out, g, relu, True)
    mask = (z + b > 0) if relu else np.ones_like(z, dtype=bool)
    np.testing.assert_array_equal(dz, np.where(mask, g, 0.0))
    np.testing.assert_allclose(db, _column_sums(np.where(mask, g, 0.0)), rtol=1e-15, atol=1e-15)


def test_reference_backward_without_bias_or_relu_passes_g_through():
    _, _, g = _arrays((3, 4), np.float32)
    dz, db = ref.linear_epilogue_backward(np, None, g, False, False)
    assert dz is g and db is None


# ------------------------------------------------------ compiled vs reference

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_compiled_epilogue_matches_reference(shape, dtype, relu, with_bias):
    z, b, _ = _arrays(shape, dtype)
    bias = b if with_bias else None
    expected = ref.linear_epilogue(np, z.copy(), bias, relu)
    work = z.copy()
    got = core.linear_epilogue(work, bias, relu)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got, expected)
    if relu:  # the activation kernel's relu, bit for bit (its zeros are +0)
        plain = z + bias if with_bias else z
        act = mg.device("cpu").backend.activation_forward("relu", plain, 0.0, 0.0)
        assert got.tobytes() == act.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu,need_bias", [(True, True), (True, False), (False, True)])
def test_compiled_epilogue_backward_matches_reference(shape, dtype, relu, need_bias):
    z, b, g = _arrays(shape, dtype, seed=1)
    out = ref.linear_epilogue(np, z, b, relu)
    ref_dz, ref_db = ref.linear_epilogue_backward(np, out, g, relu, need_bias)
    dz, db = core.linear_epilogue_backward(out, g, relu, need_bias)
    assert dz.tobytes() == ref_dz.tobytes()  # masking is exact
    if not relu:
        assert dz is g
    if not need_bias:
        assert db is None
        return
    assert db.dtype == dtype and db.shape == (shape[1],)
    # four rows summed in the data's type (two roundings of at most eps/2
    # each, relative to the magnitudes summed), then accumulated in double,
    # then one rounding to the data's type
    exact = _column_sums(dz).astype(np.float64)
    scale = np.abs(dz).astype(np.float64).sum(axis=0)
    eps = np.finfo(dtype).eps
    tol = eps * (np.abs(exact) + scale) + (shape[0] + 1) * np.finfo(np.float64).eps * scale
    assert np.all(np.abs(db.astype(np.float64) - exact) <= tol + 1e-300)


def test_compiled_relu_semantics_nan_and_signed_zero():
    z = np.array([[np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf]], np.float32)
    b = np.zeros(7, np.float32)
    out = core.linear_epilogue(z.copy(), b, True)
    act = mg.device("cpu").backend.activation_forward("relu", z + b, 0.0, 0.0)
    assert out.tobytes() == act.tobytes()
    g = np.full_like(z, 3.0)
    dz, db = core.linear_epilogue_backward(out, g, True, True)
    act_bw = mg.device("cpu").backend.activation_backward("relu", out, out, g, 0.0, 0.0)
    assert dz.tobytes() == act_bw.tobytes()
    np.testing.assert_array_equal(db, dz[0])


def test_compiled_falls_back_outside_the_fast_path():
    z, b, g = _arrays((6, 5), np.float32)
    # non-contiguous gradient, float16: the reference runs; a read-only
    # product is never written through
    frozen = z.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        core.linear_epilogue(frozen, b, True)
    np.testing.assert_array_equal(frozen, z)
    out = ref.linear_epilogue(np, z.copy(), b, True)
    gt = np.asfortranarray(g)
    for got, want in zip(core.linear_epilogue_backward(out, gt, True, True),
                         ref.linear_epilogue_backward(np, out, gt, True, True)):
        np.testing.assert_array_equal(got, want)
    swapped = z.astype(z.dtype.newbyteorder(">"))  # read through numpy, never as raw floats
    np.testing.assert_array_equal(core.linear_epilogue(swapped, b, True),
                                  ref.linear_epilogue(np, z.copy(), b, True))
    half = z.astype(np.float16)
    np.testing.assert_array_equal(core.linear_epilogue(half.copy(), b.astype(np.float16), False),
                                  half + b.astype(np.float16))


def test_linear_layer_bias_gradient_matches_finite_sum_3d_input():
    # (..., in) inputs: the bias gradient sums over every leading dim
    r = np.random.default_rng(3)
    layer = mg.nn.Linear(4, 3)
    x = mg.tensor(r.standard_normal((2, 5, 4)).astype(np.float32))
    g = r.standard_normal((2, 5, 3)).astype(np.float32)
    layer(x).backward(mg.tensor(g))
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.reshape(-1, 3).astype(np.float64).sum(0),
                               rtol=1e-6, atol=1e-6)
