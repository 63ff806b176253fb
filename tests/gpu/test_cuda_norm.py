"""The fused CUDA batch norm (backend/cuda_norm.py) against the reference run
by numpy on the CPU (skipped, with the reason, where mg.cuda.is_available()
is False)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.backend.reference import norm as ref

pytestmark = pytest.mark.gpu

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
SHAPES = [(16, 5, 1), (512, 256, 1), (1, 3, 1),  # BatchNorm1d: the fused kernels
          (4, 3, 49), (64, 32, 196)]  # S > 1: the reference, through the same entry points


def _case(shape, dtype, affine, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype) if affine else None
    b = rng.standard_normal(shape[1]).astype(dtype) if affine else None
    return x, dy, w, b


def _dev(a):
    return None if a is None else mg.device("cuda").backend.from_host(a)


def _host(a):
    return None if a is None else mg.device("cuda").backend.to_host(a)


def _over_cases(test):
    """Every dtype, shape, and with and without the affine parameters."""
    for name, values in (("affine", [True, False]), ("shape", SHAPES),
                         ("dtype", [np.float32, np.float64])):
        test = pytest.mark.parametrize(name, values)(test)
    return test


def _fused(name):
    be = mg.device("cuda").backend
    assert name in be.compiled, f"{name} is not the fused kernel"
    return be


@_over_cases
@pytest.mark.parametrize("relu", [False, True])
def test_fused_batch_norm_forward_matches_reference(dtype, shape, affine, relu):
    be = _fused("batch_norm_forward")
    x, _, w, b = _case(shape, dtype, affine)
    got = be.batch_norm_forward(_dev(x), _dev(w), _dev(b), 1e-5, relu)
    want = ref.batch_norm_forward(np, x, w, b, 1e-5, relu)
    for g, r in zip(got, want):
        assert _host(g).dtype == r.dtype
        np.testing.assert_allclose(_host(g), r, **TOL[dtype])


@_over_cases
@pytest.mark.parametrize("batch_stats", [True, False])
def test_fused_batch_norm_backward_matches_reference(dtype, shape, affine, batch_stats):
    be = _fused("batch_norm_backward")
    x, dy, w, b = _case(shape, dtype, affine)
    _, mean, _, rstd = ref.batch_norm_forward(np, x, w, b, 1e-5)
    got = be.batch_norm_backward(_dev(dy), _dev(x), _dev(mean), _dev(rstd), _dev(w), batch_stats)
    want = ref.batch_norm_backward(np, dy, x, mean, rstd, w, batch_stats)
    for g, r in zip(got, want):
        if r is None:
            assert g is None
            continue
        np.testing.assert_allclose(_host(g), r, **TOL[dtype])
