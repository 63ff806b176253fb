"""Fused batch normalization on CUDA for BatchNorm1d's layout (training
forward and backward): CuPy reductions for the per-channel sums and one
elementwise kernel for the output or the input gradient, where the
reference (reference/norm.py run on CuPy) makes a dozen or more array
operations, each a kernel launch.

Same layout (N, C, S) and arithmetic as the reference: float64 throughout,
results rounded once to x's dtype, relu applied to the rounded output. Sums
run in CuPy's reduction order, so float64 results can differ from the
reference's in the last bits, as the CPU's compiled kernels do. Other inputs
(see _fast) go to the reference.
"""
import functools

import numpy as np

from .cuda import fusable
from .reference import norm as _ref

_OPTIONS = ("--fmad=false",)


@functools.lru_cache(maxsize=None)
def _kernels(cupy):
    return {
        "centered_square": cupy.ReductionKernel(
            "T x, float64 m", "float64 s", "((double)x - m) * ((double)x - m)", "a + b",
            "s = a", "0", "minigrad_bn_centered_square", reduce_type="double", options=_OPTIONS),
        "dot_xhat": cupy.ReductionKernel(
            "T dy, T x, float64 m, float64 r", "float64 s", "(double)dy * (((double)x - m) * r)",
            "a + b", "s = a", "0", "minigrad_bn_dot_xhat", reduce_type="double", options=_OPTIONS),
        "rstd": cupy.ElementwiseKernel(
            "float64 sumsq, float64 count, float64 eps", "float64 var, float64 r",
            "var = sumsq / count; r = 1.0 / sqrt(var + eps);", "minigrad_bn_rstd",
            options=_OPTIONS),
        "output": cupy.ElementwiseKernel(
            "T x, float64 m, float64 r, float64 w, float64 b, int32 relu", "T y",
            "T t = (T)(((double)x - m) * r * w + b); y = relu && t <= (T)0 ? (T)0 : t;",
            "minigrad_bn_output", options=_OPTIONS),
        # dx = r * (dy' - (xhat * mean(dy' xhat) + mean(dy'))), dy' = dy * w, or dy' * r
        "input_grad": cupy.ElementwiseKernel(
            "T dy, T x, float64 m, float64 r, float64 w, float64 mean_dot, float64 mean_dy, "
            "int32 batch_stats", "T dx",
            "double dyw = (double)dy * w;"
            "if (batch_stats) { double xhat = ((double)x - m) * r;"
            " dx = (T)(r * (dyw - (xhat * mean_dot + mean_dy))); }"
            "else { dx = (T)(dyw * r); }",
            "minigrad_bn_input_grad", options=_OPTIONS),
    }


def _fast(cupy, *arrays):
    """BatchNorm1d's layout (S == 1), CuPy arrays of one float dtype. With
    S > 1 (BatchNorm2d) the per-channel sums run over long strided spans, and
    CuPy's generic reduction kernel, one block per channel, took twice the
    reference's time on a 512x16x28x28 batch: those stay on the reference."""
    x = arrays[0]
    return fusable(cupy, *arrays) and x.ndim == 3 and x.size > 0 and x.shape[2] == 1


def install(backend, cupy):
    """Puts the fused batch-norm kernels in place of the reference ones."""
    kernels = functools.partial(_kernels, cupy)

    def channel(a, fill):
        """(C,) as float64 (1, C, 1), or the scalar `fill` for None."""
        return fill if a is None else a.astype(cupy.float64, copy=False).reshape(1, -1, 1)

    def batch_norm_forward(x, weight, bias, eps, relu=False):
        if not _fast(cupy, x):
            return _ref.batch_norm_forward(cupy, x, weight, bias, eps, relu)
        k = kernels()
        count = x.shape[0] * x.shape[2]
        mean = x.mean(axis=(0, 2), dtype=cupy.float64)
        sumsq = k["centered_square"](x, cupy.broadcast_to(mean.reshape(1, -1, 1), x.shape),
                                     axis=(0, 2))
        var, rstd = k["rstd"](sumsq, np.float64(count), np.float64(eps))
        y = k["output"](x, mean.reshape(1, -1, 1), rstd.reshape(1, -1, 1),
                        channel(weight, 1.0), channel(bias, 0.0), np.int32(bool(relu)))
        return y, mean.astype(x.dtype), var.astype(x.dtype), rstd.astype(x.dtype)

    def batch_norm_backward(dy, x, mean, rstd, weight, batch_stats):
        if not _fast(cupy, x, dy):
            return _ref.batch_norm_backward(cupy, dy, x, mean, rstd, weight, batch_stats)
        k = kernels()
        count = x.shape[0] * x.shape[2]
        m, r = channel(mean, None), channel(rstd, None)
        w = channel(weight, 1.0)
        need_sums = bool(batch_stats) or weight is not None
        sum_dy = dy.sum(axis=(0, 2), dtype=cupy.float64) if need_sums else None
        sum_dot = (k["dot_xhat"](dy, x, cupy.broadcast_to(m, x.shape),
                                 cupy.broadcast_to(r, x.shape), axis=(0, 2))
                   if need_sums else None)
        if batch_stats:  # the means of dy' and dy' * xhat, dy' = dy * weight
            mean_dot = (sum_dot.reshape(1, -1, 1) * w) / count
            mean_dy = (sum_dy.reshape(1, -1, 1) * w) / count
        else:
            mean_dot = mean_dy = 0.0
        dx = k["input_grad"](dy, x, m, r, w, mean_dot, mean_dy, np.int32(bool(batch_stats)))
        if weight is None:
            return dx, None, None
        return dx, sum_dot.astype(weight.dtype), sum_dy.astype(weight.dtype)

    for name, fused in (("batch_norm_forward", batch_norm_forward),
                        ("batch_norm_backward", batch_norm_backward)):
        setattr(backend, name, fused)
        backend.compiled[name] = fused
