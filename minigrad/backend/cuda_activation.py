"""Fused activations on CUDA: one CuPy elementwise kernel per kind and
direction, where the reference (reference/activation.py run on CuPy) makes
up to a few dozen array operations (GELU's erfc alone about sixty).

The formulas are the reference's, arranged the same way against overflow,
with NaN passing through as it does there; CUDA's own erfc, expm1 and tanh
replace the reference's constructions. As in the CPU's compiled kernels
(_core/activation.pyx), every kind computes in double and rounds once to the
array's dtype, and alpha and beta are first rounded to that dtype, as numpy
rounds a Python float used with float32 data. CuPy compiles every kernel
with -ftz=true, so float32 results (and inputs) below 2**-126 become zero
here, as in CuPy's own kernels and the reference run on CuPy. Inputs outside
the fast path (see backend/cuda.py fusable) go to the reference.
"""
import functools

import numpy as np

from .cuda import fusable
from .reference import activation as _ref

_OPTIONS = ("--fmad=false",)

# Helpers and constants for the kernel bodies below, all in double.
_PREAMBLE = f"""
#define MG_SELU_ALPHA {_ref.SELU_ALPHA!r}
#define MG_SELU_SCALE {_ref.SELU_SCALE!r}
#define MG_GELU_TANH_BETA {_ref.GELU_TANH_BETA!r}
#define MG_GELU_TANH_KAPPA {_ref.GELU_TANH_KAPPA!r}
#define MG_GELU_CLIP {_ref.GELU_CLIP!r}
#define MG_INV_SQRT_2PI {_ref.INV_SQRT_2PI!r}
#define MG_SQRT1_2 {_ref.SQRT1_2!r}

/* min(max(x, lo), hi) with NaN passing through */
__device__ __forceinline__ double mg_clip(double x, double lo, double hi) {{
    double t = x < lo ? lo : x;
    return t > hi ? hi : t;
}}

/* 1 / (1 + exp(-x)) forming only exp(-|x|) <= 1 */
__device__ __forceinline__ double mg_sigmoid(double x) {{
    double e = exp(-fabs(x));
    double r = 1.0 / (1.0 + e);
    return x >= 0.0 ? r : e * r;
}}

/* expm1 only sees x <= 0 (or NaN) */
__device__ __forceinline__ double mg_elu(double x, double alpha) {{
    return x > 0.0 ? x : alpha * expm1(x);
}}

/* the reference's where(x <= 0, ...): a NaN x passes g through */
__device__ __forceinline__ double mg_elu_grad(double x, double g, double alpha) {{
    return x <= 0.0 ? g * (alpha * exp(x)) : g;
}}

/* 2 sqrt(2/pi) (x + kappa x^3): 1 + tanh(u) = 2 sigmoid(2u) */
__device__ __forceinline__ double mg_gelu_tanh_arg(double xc) {{
    return (2.0 * MG_GELU_TANH_BETA) * (xc + MG_GELU_TANH_KAPPA * (xc * xc * xc));
}}

/* g (Phi(x) + x phi(x)), x clipped where phi(x) is 0 so x * x stays finite */
__device__ __forceinline__ double mg_gelu_grad(double x, double g) {{
    double xc = mg_clip(x, -MG_GELU_CLIP, MG_GELU_CLIP);
    return g * (0.5 * erfc(-MG_SQRT1_2 * x) + xc * (MG_INV_SQRT_2PI * exp(-0.5 * xc * xc)));
}}

/* g (s + x s (1 - s) u'), s = sigmoid(u), u = mg_gelu_tanh_arg */
__device__ __forceinline__ double mg_gelu_tanh_grad(double x, double g) {{
    double xc = mg_clip(x, -MG_GELU_CLIP, MG_GELU_CLIP);
    double s = mg_sigmoid(mg_gelu_tanh_arg(xc));
    double du = (2.0 * MG_GELU_TANH_BETA) * (1.0 + (3.0 * MG_GELU_TANH_KAPPA) * (xc * xc));
    return g * (s + xc * (s * (1.0 - s)) * du);
}}

__device__ __forceinline__ double mg_silu_grad(double x, double g) {{
    double s = mg_sigmoid(x);
    return g * (s * (1.0 + x * (1.0 - s)));
}}

/* (max(bx, 0) + log1p(exp(-|bx|))) / beta, or x where bx > threshold */
__device__ __forceinline__ double mg_softplus(double x, double beta, double threshold) {{
    double bx = beta * x;
    double smooth = ((bx > 0.0 ? bx : 0.0) + log1p(exp(-fabs(bx)))) / beta;
    return bx > threshold ? x : smooth;
}}
"""

# kind: (forward of v = x, backward of v = x, w = y, g = dy), in double;
# a and b are alpha and beta, already rounded to the array's dtype.
_FORMULAS = {
    "relu": ("v <= 0.0 ? 0.0 : v", "v > 0.0 ? g : 0.0"),
    "leaky_relu": ("v > 0.0 ? v : v * a", "v > 0.0 ? g : g * a"),
    "elu": ("mg_elu(v, a)", "mg_elu_grad(v, g, a)"),
    "selu": ("MG_SELU_SCALE * mg_elu(v, MG_SELU_ALPHA)",
             "MG_SELU_SCALE * mg_elu_grad(v, g, MG_SELU_ALPHA)"),
    "gelu": ("v * (0.5 * erfc(-MG_SQRT1_2 * v))", "mg_gelu_grad(v, g)"),
    "gelu_tanh": ("v * mg_sigmoid(mg_gelu_tanh_arg(mg_clip(v, -MG_GELU_CLIP, MG_GELU_CLIP)))",
                  "mg_gelu_tanh_grad(v, g)"),
    "silu": ("v * mg_sigmoid(v)", "mg_silu_grad(v, g)"),
    "sigmoid": ("mg_sigmoid(v)", "g * (w * (1.0 - w))"),
    "tanh": ("tanh(v)", "g * (1.0 - w * w)"),
    "softplus": ("mg_softplus(v, a, b)", "a * v > b ? g : g * mg_sigmoid(a * v)"),
    "hardtanh": ("mg_clip(v, a, b)", "v > a && v < b ? g : 0.0"),
}


@functools.lru_cache(maxsize=None)
def _kernels(cupy):
    """(kind, "forward" or "backward") -> kernel; CuPy compiles each on its first call."""
    kernels = {}
    for kind, (forward, backward) in _FORMULAS.items():
        kernels[kind, "forward"] = cupy.ElementwiseKernel(
            "T x, float64 a, float64 b", "T y",
            f"const double v = x; y = (T)({forward});",
            f"minigrad_{kind}_forward", options=_OPTIONS, preamble=_PREAMBLE)
        kernels[kind, "backward"] = cupy.ElementwiseKernel(
            "T x, T y, T dy, float64 a, float64 b", "T dx",
            f"const double v = x, w = y, g = dy; (void)v; (void)w; dx = (T)({backward});",
            f"minigrad_{kind}_backward", options=_OPTIONS, preamble=_PREAMBLE)
    return kernels


def scalar_params(dtype, alpha, beta):
    """alpha and beta as float64 scalars holding their values rounded to
    `dtype`, the values numpy computes with on arrays of that dtype."""
    t = np.dtype(dtype).type
    return np.float64(t(alpha)), np.float64(t(beta))


def install(backend, cupy):
    """Puts the fused activations in place of the reference ones on `backend`."""
    kernels = functools.partial(_kernels, cupy)

    def activation_forward(kind, x, alpha=0.0, beta=0.0):
        _ref.check_kind(kind)
        if not fusable(cupy, x):
            return _ref.activation_forward(cupy, kind, x, alpha, beta)
        return kernels()[kind, "forward"](x, *scalar_params(x.dtype, alpha, beta))

    def activation_backward(kind, x, y, dy, alpha=0.0, beta=0.0):
        _ref.check_kind(kind)
        if not fusable(cupy, x, y, dy):
            return _ref.activation_backward(cupy, kind, x, y, dy, alpha, beta)
        return kernels()[kind, "backward"](x, y, dy, *scalar_params(x.dtype, alpha, beta))

    for name, fused in (("activation_forward", activation_forward),
                        ("activation_backward", activation_backward)):
        setattr(backend, name, fused)
        backend.compiled[name] = fused
