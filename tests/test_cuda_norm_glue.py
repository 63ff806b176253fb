"""The fused CUDA normalization's host side (backend/cuda_norm.py: which sums
run over which axes, the reshapes, the two-stage reductions, what each
kernel is given) checked without a GPU: numpy plays CuPy, and each CUDA
kernel is played by the numpy formula its source states. The kernels
themselves are checked on a GPU by tests/gpu/test_cuda_norm.py."""
import types

import numpy as np
import pytest

from minigrad.backend import cuda_norm
from minigrad.backend.reference import norm as ref

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _names(params):
    return [p.split()[-1] for p in params.split(",")]


def _reduction(in_params, out_params, map_expr, *rest, **options):
    """Sum of map_expr (its C casts to double dropped) over `axis`; the
    inputs must have one shape, as CuPy's reduction kernels are given them."""
    names, expr = _names(in_params), map_expr.replace("(double)", "")

    def run(*args, axis):
        assert len({np.shape(a) for a in args}) == 1, "reduction inputs differ in shape"
        env = {n: np.asarray(a, dtype=np.float64) for n, a in zip(names, args)}
        return eval(expr, {}, env).sum(axis=axis)
    return run


def _elementwise_output(env):
    x = env["x"]
    xi = (x + env["pre_bias"]).astype(x.dtype) if env["has_pre_bias"] else x
    t = ((xi.astype(np.float64) - env["m"]) * env["r"] * env["w"] + env["b"]).astype(x.dtype)
    return [np.where(t <= 0, 0, t).astype(x.dtype) if env["relu"] else t]


def _elementwise_input_grad(env):
    x = env["x"]
    dyw = env["dy"].astype(np.float64) * env["w"]
    if not env["batch_stats"]:
        return [(dyw * env["r"]).astype(x.dtype)]
    xhat = (x.astype(np.float64) - env["m"]) * env["r"]
    return [(env["r"] * (dyw - (xhat * env["mean_dot"] + env["mean_dy"]))).astype(x.dtype)]


def _elementwise_stats(env):
    """r, then mean, var and rstd, rounded by the output arrays they go to."""
    var = env["sumsq"] / env["count"]
    r = 1.0 / np.sqrt(var + env["eps"])
    return [r, env["m"], var, r]


def _elementwise_grad_means(env):
    return [(env[s] * env["w"]) / env["count"] for s in ("sum_dot", "sum_dy")]


def _elementwise_running_update(env):
    return [(env["keep"] * env[r].astype(np.float64)
             + env["momentum"] * (scale * env[s].astype(np.float64))).astype(env[r].dtype)
            for r, s, scale in (("running_mean", "mean", 1.0),
                                ("running_var", "var", env["unbias"]))]


_ELEMENTWISE = {"minigrad_norm_output": _elementwise_output,
                "minigrad_norm_input_grad": _elementwise_input_grad,
                "minigrad_norm_stats": _elementwise_stats,
                "minigrad_norm_grad_means": _elementwise_grad_means,
                "minigrad_norm_running_update": _elementwise_running_update}


def _elementwise(in_params, out_params, operation, name, **options):
    """The kernel's numpy formula; output arrays, when given, are written
    (and read: the running statistics are updated in place)."""
    ins, outs = _names(in_params), _names(out_params)

    def run(*args):
        given = args[len(ins):]
        results = _ELEMENTWISE[name](dict(zip(ins + outs, args)))
        for out, value in zip(given, results):
            out[...] = value
        if given:
            return given[0] if len(given) == 1 else given
        return results[0] if len(results) == 1 else tuple(results)
    return run


@pytest.fixture(scope="module")
def fused():
    fake_cupy = types.ModuleType("numpy_as_cupy")
    fake_cupy.__dict__.update(ndarray=np.ndarray, float64=np.float64, ones=np.ones, empty=np.empty,
                              zeros=np.zeros, broadcast_to=np.broadcast_to,
                              ReductionKernel=_reduction, ElementwiseKernel=_elementwise)
    backend = types.SimpleNamespace(compiled={})
    cuda_norm.install(backend, fake_cupy)
    return backend


def _case(shape, params, dtype, affine, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w, b = ((rng.standard_normal(params).astype(dtype) for _ in range(2)) if affine
            else (None, None))
    return x, dy, w, b


def _assert_matches(got, want, dtype):
    for g, r in zip(got, want):
        if r is None:
            assert g is None
            continue
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_allclose(g, r, **TOL[dtype])


DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16, 5, 1), (4, 3, 49), (1, 3, 1), (2, 7, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_host_side_matches_reference(fused, dtype, shape, affine):
    x, dy, w, b = _case(shape, shape[1], dtype, affine)
    for relu in (False, True):
        _assert_matches(fused.batch_norm_forward(x, w, b, 1e-5, relu),
                        ref.batch_norm_forward(np, x, w, b, 1e-5, relu), dtype)
    _, mean, _, rstd = ref.batch_norm_forward(np, x, w, b, 1e-5)
    for batch_stats in (True, False):
        _assert_matches(fused.batch_norm_backward(dy, x, mean, rstd, w, batch_stats),
                        ref.batch_norm_backward(np, dy, x, mean, rstd, w, batch_stats), dtype)
    pre_bias = np.linspace(-1, 1, shape[1]).astype(dtype)
    for relu, pb in ((False, None), (True, pre_bias)):  # pre_bias: a linear layer's bias
        want = ref.batch_norm_apply(np, x, mean, rstd, w, b, relu, pb)
        _assert_matches([fused.batch_norm_apply(x, mean, rstd, w, b, relu, pb)], [want], dtype)
        out = x.copy()
        assert fused.batch_norm_apply(out, mean, rstd, w, b, relu, pb, out) is out
        _assert_matches([out], [want], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 2, 3, 5), (8, 1, 16, 1), (3, 6, 1, 10), (1, 1, 1, 1)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("subtract_mean", [True, False], ids=["centered", "rms"])
def test_group_norm_host_side_matches_reference(fused, dtype, shape, affine, subtract_mean):
    x, dy, w, b = _case(shape, shape[1:3], dtype, affine)
    _assert_matches(fused.group_norm_forward(x, w, b, 1e-5, subtract_mean),
                    ref.group_norm_forward(np, x, w, b, 1e-5, subtract_mean), dtype)
    _, mean, rstd = ref.group_norm_forward(np, x, w, b, 1e-5, subtract_mean)
    _assert_matches(fused.group_norm_backward(dy, x, mean, rstd, w, subtract_mean),
                    ref.group_norm_backward(np, dy, x, mean, rstd, w, subtract_mean), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_running_stats_update_host_side_matches_reference(fused, dtype):
    rng = np.random.default_rng(1)
    mean, var = rng.standard_normal(6).astype(dtype), rng.random(6).astype(dtype)
    got = [rng.standard_normal(6).astype(dtype), rng.random(6).astype(dtype)]
    want = [a.copy() for a in got]
    fused.running_stats_update(*got, mean, var, 10, 0.1)
    ref.running_stats_update(np, *want, mean, var, 10, 0.1)
    _assert_matches(got, want, dtype)
