"""Fused normalization on CUDA, for both layouts of reference/norm.py:
batch norm (N, C, S) training forward, evaluation apply and backward, and
group norm (N, G, K, S: GroupNorm, LayerNorm, InstanceNorm, RMSNorm) forward
and backward; and the update of both running statistics in one kernel.
CuPy reductions make the sums, one elementwise kernel the output or the
input gradient, where the reference run on CuPy makes a dozen or more array
operations, each a kernel launch.

Same arithmetic as the reference: float64 throughout, results rounded once
to x's dtype, relu applied to the rounded output. Sums run in CuPy's
reduction order, so float64 results can differ from the reference's in the
last bits, as the CPU's compiled kernels do. Other inputs (see _fast) go to
the reference.
"""
import functools

import numpy as np

from .cuda import fusable
from .reference import norm as _ref

_OPTIONS = ("--fmad=false",)


@functools.lru_cache(maxsize=None)
def _kernels(cupy):
    rk, ek = cupy.ReductionKernel, cupy.ElementwiseKernel
    return {
        "sum": rk("T x", "float64 s", "(double)x", "a + b", "s = a", "0", "minigrad_norm_sum",
                  reduce_type="double", options=_OPTIONS),
        "centered_square": rk(
            "T x, float64 m", "float64 s", "((double)x - m) * ((double)x - m)", "a + b",
            "s = a", "0", "minigrad_norm_centered_square", reduce_type="double",
            options=_OPTIONS),
        # sum of dy * w * xhat (w = 1 for the parameter gradients)
        "dot_xhat": rk(
            "T dy, T x, float64 m, float64 r, float64 w", "float64 s",
            "(double)dy * w * (((double)x - m) * r)", "a + b", "s = a", "0",
            "minigrad_norm_dot_xhat", reduce_type="double", options=_OPTIONS),
        "weighted_sum": rk(
            "T dy, float64 w", "float64 s", "(double)dy * w", "a + b", "s = a", "0",
            "minigrad_norm_weighted_sum", reduce_type="double", options=_OPTIONS),
        # the statistics in float64 for the output kernel, and rounded to
        # x's dtype for the caller, in one launch. T comes from the output
        # arrays the caller gives: CuPy types placeholders from arrays only
        "stats": ek(
            "float64 m, float64 sumsq, float64 count, float64 eps",
            "float64 r, T mean, T var, T rstd",
            "double v = sumsq / count; r = 1.0 / sqrt(v + eps);"
            "mean = (T)m; var = (T)v; rstd = (T)r;",
            "minigrad_norm_stats", options=_OPTIONS),
        # the means of dy' * xhat and dy', dy' = dy * w, from their sums over x
        "grad_means": ek(
            "float64 sum_dot, float64 sum_dy, float64 w, float64 count",
            "float64 mean_dot, float64 mean_dy",
            "mean_dot = (sum_dot * w) / count; mean_dy = (sum_dy * w) / count;",
            "minigrad_norm_grad_means", options=_OPTIONS),
        # r = (1 - momentum) r + momentum (scale s), as reference running_stats_update
        "running_update": ek(
            "S mean, S var, float64 keep, float64 momentum, float64 unbias",
            "T running_mean, T running_var",
            "running_mean = (T)(keep * (double)running_mean + momentum * (1.0 * (double)mean));"
            "running_var = (T)(keep * (double)running_var + momentum * (unbias * (double)var));",
            "minigrad_norm_running_update", options=_OPTIONS),
        # pre_bias is added in x's dtype first (a linear layer's bias, rounded
        # as its own pass would round it)
        "output": ek(
            "T x, T pre_bias, float64 m, float64 r, float64 w, float64 b, int32 has_pre_bias, "
            "int32 relu", "T y",
            "T xi = has_pre_bias ? (T)(x + pre_bias) : x;"
            "T t = (T)(((double)xi - m) * r * w + b); y = relu && t <= (T)0 ? (T)0 : t;",
            "minigrad_norm_output", options=_OPTIONS),
        # dx = r * (dy' - (xhat * mean(dy' xhat) + mean(dy'))), dy' = dy * w, or dy' * r
        "input_grad": ek(
            "T dy, T x, float64 m, float64 r, float64 w, float64 mean_dot, float64 mean_dy, "
            "int32 batch_stats", "T dx",
            "double dyw = (double)dy * w;"
            "if (batch_stats) { double xhat = ((double)x - m) * r;"
            " dx = (T)(r * (dyw - (xhat * mean_dot + mean_dy))); }"
            "else { dx = (T)(dyw * r); }",
            "minigrad_norm_input_grad", options=_OPTIONS),
    }


def _fast(cupy, ndim, *arrays):
    """Non-empty CuPy arrays of one float dtype and shape, of the layout's
    rank (3: batch norm, 4: group norm)."""
    x = arrays[0]
    return fusable(cupy, *arrays) and x.ndim == ndim and x.size > 0


def _over_batch_and_last(reduce, shape):
    """Sum over axis 0 and the last axis of `shape` by `reduce(axis)`. With a
    long last axis the sum runs in two stages, first along the contiguous
    last axis (many blocks), then over the batch: CuPy's reduction over
    both at once gives each output one block, which left BatchNorm2d's few
    channels on a few of the device's multiprocessors."""
    last = len(shape) - 1
    if shape[last] == 1:
        return reduce((0, last))
    return reduce(last).sum(axis=0)


def install(backend, cupy):
    """Puts the fused normalization kernels in place of the reference ones."""
    kernels = functools.partial(_kernels, cupy)

    def f64(a, shape, fill):
        """a as float64 reshaped to broadcast over the layout, or `fill` for None."""
        return fill if a is None else a.astype(cupy.float64, copy=False).reshape(shape)

    def spread(a, like):
        """a broadcast to like's shape (the reduction kernels take equal shapes)."""
        return cupy.broadcast_to(a, like.shape)

    def ones(shape):
        return cupy.ones(shape, dtype=cupy.float64)

    def statistics(x, reduce, shape, eps, subtract_mean):
        """(m, r, mean, var, rstd): the float64 mean (zeros without centering)
        and rstd shaped `shape` for the output kernel, and mean, var and rstd
        rounded to x's dtype. reduce(kernel, *operands) sums over the
        statistics' axes."""
        k = kernels()
        count = np.float64(x.size // int(np.prod(shape)))
        m = (reduce(k["sum"], x).reshape(shape) / count if subtract_mean
             else cupy.zeros(shape, dtype=cupy.float64))
        sumsq = reduce(k["centered_square"], x, spread(m, x))
        outs = [cupy.empty(sumsq.shape, dtype) for dtype in (cupy.float64,) + (x.dtype,) * 3]
        r, mean, var, rstd = k["stats"](m.reshape(sumsq.shape), sumsq, count, np.float64(eps),
                                        *outs)
        return m, r.reshape(shape), mean, var, rstd

    # ---------------------------------------------------------- batch norm

    def per_channel(x):
        return (1, x.shape[1], 1)

    def over_channels(x):
        """reduce(kernel, *operands) for statistics(): sums per channel."""
        return lambda kernel, *ops: _over_batch_and_last(lambda ax: kernel(*ops, axis=ax),
                                                         x.shape)

    def batch_norm_forward(x, weight, bias, eps, relu=False):
        if not _fast(cupy, 3, x):
            return _ref.batch_norm_forward(cupy, x, weight, bias, eps, relu)
        c = per_channel(x)
        m, r, mean, var, rstd = statistics(x, over_channels(x), c, eps, True)
        y = kernels()["output"](x, x.dtype.type(0), m, r, f64(weight, c, 1.0), f64(bias, c, 0.0),
                                np.int32(0), np.int32(bool(relu)))
        return y, mean, var, rstd

    def batch_norm_apply(x, mean, rstd, weight, bias, relu=False, pre_bias=None, out=None):
        arrays = (x,) if out is None else (x, out)
        if not (_fast(cupy, 3, *arrays)
                and (pre_bias is None or pre_bias.dtype == x.dtype)):
            return _ref.batch_norm_apply(cupy, x, mean, rstd, weight, bias, relu, pre_bias, out)
        k, c = kernels(), per_channel(x)
        pb = x.dtype.type(0) if pre_bias is None else pre_bias.reshape(c)
        args = (x, pb, f64(mean, c, None), f64(rstd, c, None), f64(weight, c, 1.0),
                f64(bias, c, 0.0), np.int32(pre_bias is not None), np.int32(bool(relu)))
        return k["output"](*args) if out is None else k["output"](*args, out)

    def channel_grads(dy, x, m, r, w, shape):
        """Sums over the batch and the last axis of dy * w * xhat and dy * w,
        each shaped `shape` (the parameter's broadcast shape)."""
        k = kernels()
        w = spread(ones(shape) if w is None else w, x)
        dot = _over_batch_and_last(
            lambda ax: k["dot_xhat"](dy, x, spread(m, x), spread(r, x), w, axis=ax), x.shape)
        total = _over_batch_and_last(lambda ax: k["weighted_sum"](dy, w, axis=ax), x.shape)
        return dot, total

    def batch_norm_backward(dy, x, mean, rstd, weight, batch_stats):
        if not _fast(cupy, 3, x, dy):
            return _ref.batch_norm_backward(cupy, dy, x, mean, rstd, weight, batch_stats)
        k, c = kernels(), per_channel(x)
        count = x.shape[0] * x.shape[2]
        m, r = f64(mean, c, None), f64(rstd, c, None)
        w = f64(weight, c, 1.0)
        if batch_stats or weight is not None:
            sum_dot, sum_dy = channel_grads(dy, x, m, r, None, c)
        if batch_stats:
            mean_dot, mean_dy = k["grad_means"](sum_dot.reshape(c), sum_dy.reshape(c), w,
                                                np.float64(count))
        else:
            mean_dot = mean_dy = 0.0
        dx = k["input_grad"](dy, x, m, r, w, mean_dot, mean_dy, np.int32(bool(batch_stats)))
        if weight is None:
            return dx, None, None
        return dx, sum_dot.astype(weight.dtype), sum_dy.astype(weight.dtype)

    # ---------------------------------------------------------- group norm

    def per_group(x):
        return x.shape[:2] + (1, 1)

    def per_member(x):
        return (1,) + x.shape[1:3] + (1,)

    def group_norm_forward(x, weight, bias, eps, subtract_mean):
        if not _fast(cupy, 4, x):
            return _ref.group_norm_forward(cupy, x, weight, bias, eps, subtract_mean)
        g, gk = per_group(x), per_member(x)
        m, r, mean, _, rstd = statistics(x, lambda kernel, *ops: kernel(*ops, axis=(2, 3)), g,
                                         eps, subtract_mean)
        y = kernels()["output"](x, x.dtype.type(0), m, r, f64(weight, gk, 1.0),
                                f64(bias, gk, 0.0), np.int32(0), np.int32(0))
        return y, mean if subtract_mean else None, rstd

    def group_norm_backward(dy, x, mean, rstd, weight, subtract_mean):
        if not _fast(cupy, 4, x, dy):
            return _ref.group_norm_backward(cupy, dy, x, mean, rstd, weight, subtract_mean)
        k, g, gk = kernels(), per_group(x), per_member(x)
        count = x.shape[2] * x.shape[3]
        m = f64(mean, g, None) if subtract_mean else cupy.zeros(g, dtype=cupy.float64)
        r = f64(rstd, g, None)
        w = ones(gk) if weight is None else f64(weight, gk, None)
        # the means over each group of dy' * xhat and dy', dy' = dy * weight
        sum_dot = k["dot_xhat"](dy, x, spread(m, x), spread(r, x), spread(w, x), axis=(2, 3))
        sum_dy = (k["weighted_sum"](dy, spread(w, x), axis=(2, 3)).reshape(g) if subtract_mean
                  else np.float64(0.0))
        mean_dot, mean_dy = k["grad_means"](sum_dot.reshape(g), sum_dy, 1.0, np.float64(count))
        dx = k["input_grad"](dy, x, m, r, w, mean_dot, mean_dy, np.int32(1))
        if weight is None:
            return dx, None, None
        dweight, dbias = channel_grads(dy, x, m, r, None, gk)
        return (dx, dweight.reshape(weight.shape).astype(weight.dtype),
                dbias.reshape(weight.shape).astype(weight.dtype))

    # ---------------------------------------------------------- running statistics

    def running_stats_update(running_mean, running_var, mean, var, count, momentum):
        if not (fusable(cupy, running_mean, running_var) and fusable(cupy, mean, var)
                and mean.shape == running_mean.shape):
            return _ref.running_stats_update(cupy, running_mean, running_var, mean, var, count,
                                             momentum)
        unbias = count / (count - 1)
        kernels()["running_update"](mean, var, np.float64(1.0 - momentum), np.float64(momentum),
                                    np.float64(unbias), running_mean, running_var)

    for fused in (batch_norm_forward, batch_norm_apply, batch_norm_backward,
                  group_norm_forward, group_norm_backward, running_stats_update):
        setattr(backend, fused.__name__, fused)
        backend.compiled[fused.__name__] = fused
