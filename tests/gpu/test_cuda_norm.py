"""The fused CUDA normalization (backend/cuda_norm.py: batch norm and group
norm layouts) against the reference run by numpy on the CPU (skipped, with
the reason, where mg.cuda.is_available() is False)."""
import numpy as np
import pytest

from minigrad.backend.reference import norm as ref
from .cuda_arrays import dev, fused, host

pytestmark = pytest.mark.gpu

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
SHAPES = [(16, 5, 1), (512, 256, 1), (1, 3, 1),  # BatchNorm1d
          (4, 3, 49), (64, 32, 196), (1, 2, 3)]  # BatchNorm2d: the sums run in two stages
# (N, G, K, S): LayerNorm (M, 1, D, 1), GroupNorm, InstanceNorm (N, C, 1, HW)
GROUP_SHAPES = [(128, 1, 512, 1), (3, 1, 7, 1), (8, 4, 4, 49), (2, 1, 6, 5), (4, 16, 1, 196),
                (1, 1, 1, 1)]


def _case(shape, dtype, affine, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    params = shape[1:-1]  # (C,) for batch norm, (G, K) for group norm
    w = rng.standard_normal(params).astype(dtype) if affine else None
    b = rng.standard_normal(params).astype(dtype) if affine else None
    return x, dy, w, b


def _over_cases(shapes):
    """Every dtype, shape, and with and without the affine parameters."""
    def parametrize(test):
        for name, values in (("affine", [True, False]), ("shape", shapes),
                             ("dtype", [np.float32, np.float64])):
            test = pytest.mark.parametrize(name, values)(test)
        return test
    return parametrize


def _assert_matches(got, want, dtype):
    for g, r in zip(got, want):
        if r is None:
            assert g is None
            continue
        assert host(g).dtype == r.dtype and host(g).shape == r.shape
        np.testing.assert_allclose(host(g), r, **TOL[dtype])


@_over_cases(SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_fused_batch_norm_forward_matches_reference(dtype, shape, affine, relu):
    be = fused("batch_norm_forward")
    x, _, w, b = _case(shape, dtype, affine)
    got = be.batch_norm_forward(dev(x), dev(w), dev(b), 1e-5, relu)
    _assert_matches(got, ref.batch_norm_forward(np, x, w, b, 1e-5, relu), dtype)


@_over_cases(SHAPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_pre_bias", [False, True])
@pytest.mark.parametrize("in_place", [False, True])
def test_fused_batch_norm_apply_matches_reference(dtype, shape, affine, relu, with_pre_bias,
                                                  in_place):
    be = fused("batch_norm_apply")
    x, _, w, b = _case(shape, dtype, affine)
    _, mean, _, rstd = ref.batch_norm_forward(np, x + 0.5, None, None, 1e-5)
    pre_bias = np.linspace(-1, 1, shape[1]).astype(dtype) if with_pre_bias else None
    want = ref.batch_norm_apply(np, x, mean, rstd, w, b, relu, pre_bias)
    xd = dev(x)
    out = xd if in_place else None
    got = be.batch_norm_apply(xd, dev(mean), dev(rstd), dev(w), dev(b), relu,
                              dev(pre_bias), out)
    assert got is xd if in_place else got is not xd
    _assert_matches([got], [want], dtype)


@_over_cases(SHAPES)
@pytest.mark.parametrize("batch_stats", [True, False])
def test_fused_batch_norm_backward_matches_reference(dtype, shape, affine, batch_stats):
    be = fused("batch_norm_backward")
    x, dy, w, b = _case(shape, dtype, affine)
    _, mean, _, rstd = ref.batch_norm_forward(np, x, w, b, 1e-5)
    got = be.batch_norm_backward(dev(dy), dev(x), dev(mean), dev(rstd), dev(w), batch_stats)
    _assert_matches(got, ref.batch_norm_backward(np, dy, x, mean, rstd, w, batch_stats), dtype)


@_over_cases(GROUP_SHAPES)
@pytest.mark.parametrize("subtract_mean", [True, False], ids=["centered", "rms"])
def test_fused_group_norm_forward_matches_reference(dtype, shape, affine, subtract_mean):
    be = fused("group_norm_forward")
    x, _, w, b = _case(shape, dtype, affine)
    got = be.group_norm_forward(dev(x), dev(w), dev(b), 1e-5, subtract_mean)
    _assert_matches(got, ref.group_norm_forward(np, x, w, b, 1e-5, subtract_mean), dtype)


@_over_cases(GROUP_SHAPES)
@pytest.mark.parametrize("subtract_mean", [True, False], ids=["centered", "rms"])
def test_fused_group_norm_backward_matches_reference(dtype, shape, affine, subtract_mean):
    be = fused("group_norm_backward")
    x, dy, w, b = _case(shape, dtype, affine)
    _, mean, rstd = ref.group_norm_forward(np, x, w, b, 1e-5, subtract_mean)
    got = be.group_norm_backward(dev(dy), dev(x), dev(mean), dev(rstd), dev(w),
                                 subtract_mean)
    want = ref.group_norm_backward(np, dy, x, mean, rstd, w, subtract_mean)
    _assert_matches(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count, momentum", [(2, 0.1), (1000, 0.01), (7, 1.0)])
def test_fused_running_stats_update_matches_reference(dtype, count, momentum):
    be = fused("running_stats_update")
    rng = np.random.default_rng(count)
    mean, var = rng.standard_normal(33).astype(dtype), rng.random(33).astype(dtype)
    running = [rng.standard_normal(33).astype(dtype), rng.random(33).astype(dtype)]
    on_device = [dev(a) for a in running]
    be.running_stats_update(*on_device, dev(mean), dev(var), count, momentum)
    ref.running_stats_update(np, *running, mean, var, count, momentum)
    _assert_matches([host(a) for a in on_device], running, dtype)
