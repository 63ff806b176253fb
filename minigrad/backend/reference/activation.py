"""Elementwise activations: fused forward and backward, one function each.

Every kind follows PyTorch's definition and derivative convention:

  relu        max(x, 0); derivative 0 at x = 0
  leaky_relu  x if x > 0 else alpha * x           (alpha = negative_slope)
  elu         x if x > 0 else alpha * (exp(x) - 1)
  selu        SELU_SCALE * elu(x, SELU_ALPHA)     (alpha, beta unused)
  gelu        x * Phi(x), Phi the standard normal CDF (exact, via erfc)
  gelu_tanh   0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))
  silu        x * sigmoid(x)
  sigmoid     1 / (1 + exp(-x))
  tanh        tanh(x)
  softplus    log(1 + exp(alpha * x)) / alpha, or x where alpha * x > beta
              (alpha = beta, beta = threshold; derivative 1 above threshold)
  hardtanh    clip(x, alpha, beta)                (alpha = min_val, beta = max_val;
              derivative 0 where x <= min_val or x >= max_val)

The formulas are arranged so that no intermediate overflows: sigmoid and
softplus go through exp(-|x|), and cubes and squares are taken of x clipped to
a range beyond which the result is already saturated.
"""
import math

__all__ = ["activation_forward", "activation_backward"]

KINDS = ("relu", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh", "silu",
         "sigmoid", "tanh", "softplus", "hardtanh")

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
GELU_TANH_KAPPA = 0.044715
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT1_2 = math.sqrt(0.5)
# |x| beyond which gelu and gelu_tanh equal x (or 0) and their derivatives 1
# (or 0) exactly, in float32 and float64; clipping there keeps x**2 finite.
GELU_CLIP = 40.0
ERFC_MAX = 30.0  # erfc(30) underflows to 0 in float64


def check_kind(kind):
    """Raise ValueError for an activation name that is not one of KINDS."""
    if kind not in KINDS:
        raise ValueError(f"unknown activation {kind!r}; known kinds: {', '.join(KINDS)}")


def activation_forward(xp, kind, x, alpha=0.0, beta=0.0):
    """y = f(x) elementwise; a new array of x's shape and dtype."""
    check_kind(kind)
    return xp.asarray(_FORWARD[kind](xp, x, alpha, beta))  # ufuncs give 0-d input a scalar


def activation_backward(xp, kind, x, y, dy, alpha=0.0, beta=0.0):
    """dx = dy * f'(x); x is the forward input, y = f(x) the forward output."""
    check_kind(kind)
    return xp.asarray(_BACKWARD[kind](xp, x, y, dy, alpha, beta))


# ---------------------------------------------------------------- helpers

def sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: only exp(-|x|) <= 1 is formed."""
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


# Chebyshev coefficients of erfcx(a) = exp(a*a) * erfc(a), a >= 0, in the
# variable t = (a - 3) / (a + 3), which maps [0, inf) onto [-1, 1). Computed
# at 60 significant digits; the truncated series has relative error < 5e-15.
_ERFCX_K = 3.0
_ERFCX_CHEB = (
    0.32986277475303677, -0.45366152053780207, 0.16039834082156296,
    -0.044908121151122825, 0.009641428650695697, -0.0014425080777443955,
    0.00010099436735379916, 1.20850245344553e-05, -3.6254206027537556e-06,
    7.186810742476415e-08, 8.914235859898217e-08, -7.421566624959606e-09,
    -2.389336570265878e-09, 3.062235535489925e-10, 7.788945388151088e-11,
    -1.0973745829245584e-11, -3.0915207311917734e-12, 3.525433881723422e-13,
    1.3990452179771617e-13, -8.246037476838809e-15, -6.6399614269893215e-15,
    -7.978348824752611e-17, 3.0472412376040985e-16, 3.032131711022567e-17,
    -1.2182012212997152e-17, -2.804010100719011e-18,
)


def erfc(xp, z):
    """Complementary error function of z, accurate to a few ulp (z's dtype).

    Relative accuracy holds in the tail z > 0 too (erfc(z) is formed as
    exp(-z*z) * erfcx(z), never as 1 - erf(z)). Array modules do not all
    provide it, so it is built here from exp and a Chebyshev series.
    """
    # float64 throughout: the splitting of a*a below needs a wider type than
    # 24-bit a_hi
    a = xp.minimum(xp.abs(z.astype(xp.float64, copy=False)), ERFC_MAX)
    t = (a - _ERFCX_K) / (a + _ERFCX_K)
    # Clenshaw recurrence for sum_k c_k T_k(t)
    b1 = xp.zeros_like(t)
    b2 = xp.zeros_like(t)
    two_t = 2 * t
    for c in _ERFCX_CHEB[:0:-1]:
        b1, b2 = two_t * b1 - b2 + c, b1
    erfcx = t * b1 - b2 + _ERFCX_CHEB[0]
    # exp(-a*a) = exp(-a_hi**2) * exp(d): a_hi (a rounded to 24 bits) squares
    # exactly, and the small remainder d = a_hi**2 - a**2 (|d| < 2e-4) takes a
    # short series, so the rounding of a*a costs no accuracy in the tail
    a_hi = a.astype(xp.float32).astype(xp.float64)
    d = (a_hi - a) * (a_hi + a)
    tail = xp.exp(-a_hi * a_hi) * (1 + d * (1 + d * (0.5 + d / 6))) * erfcx
    return xp.where(z >= 0, tail, 2 - tail).astype(z.dtype, copy=False)


def _normal_cdf(xp, x):
    return 0.5 * erfc(xp, -SQRT1_2 * x)


def _normal_pdf(xp, x):
    return INV_SQRT_2PI * xp.exp(-0.5 * x * x)


def _gelu_tanh_arg(xp, xc):
    """2 * sqrt(2/pi) * (x + kappa x^3): 1 + tanh(u) = 2 sigmoid(2u) avoids
    the cancellation of 1 + tanh(u) for negative u."""
    return (2 * GELU_TANH_BETA) * (xc + GELU_TANH_KAPPA * (xc * xc * xc))


def _softplus_big(xp, x, alpha, beta):
    """Where softplus switches to the identity (PyTorch: beta*x > threshold)."""
    return alpha * x > beta


def _zero_where_not(xp, mask, dy):
    return xp.where(mask, dy, xp.zeros_like(dy))


# ------------------------------------------------------------- forwards

def _relu(xp, x, a, b):
    return xp.maximum(x, 0)


def _leaky_relu(xp, x, a, b):
    return xp.where(x > 0, x, x * a)


def _elu(xp, x, a, b):
    return xp.where(x > 0, x, a * xp.expm1(xp.minimum(x, 0)))


def _selu(xp, x, a, b):
    return SELU_SCALE * _elu(xp, x, SELU_ALPHA, b)


def _gelu(xp, x, a, b):
    return x * _normal_cdf(xp, x)


def _gelu_tanh(xp, x, a, b):
    xc = xp.clip(x, -GELU_CLIP, GELU_CLIP)
    return x * sigmoid(xp, _gelu_tanh_arg(xp, xc))


def _silu(xp, x, a, b):
    return x * sigmoid(xp, x)


def _sigmoid(xp, x, a, b):
    return sigmoid(xp, x)


def _tanh(xp, x, a, b):
    return xp.tanh(x)


def _softplus(xp, x, a, b):
    bx = a * x
    smooth = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / a
    return xp.where(_softplus_big(xp, x, a, b), x, smooth)


def _hardtanh(xp, x, a, b):
    return xp.minimum(xp.maximum(x, a), b)


# ------------------------------------------------------------ backwards

def _relu_bw(xp, x, y, dy, a, b):
    return _zero_where_not(xp, x > 0, dy)


def _leaky_relu_bw(xp, x, y, dy, a, b):
    return xp.where(x > 0, dy, dy * a)


def _elu_bw(xp, x, y, dy, a, b):
    return xp.where(x <= 0, dy * (a * xp.exp(xp.minimum(x, 0))), dy)


def _selu_bw(xp, x, y, dy, a, b):
    return SELU_SCALE * _elu_bw(xp, x, y, dy, SELU_ALPHA, b)


def _gelu_bw(xp, x, y, dy, a, b):
    xc = xp.clip(x, -GELU_CLIP, GELU_CLIP)
    return dy * (_normal_cdf(xp, x) + xc * _normal_pdf(xp, xc))


def _gelu_tanh_bw(xp, x, y, dy, a, b):
    # d/dx [x s(u)] = s + x s (1 - s) u',  s = sigmoid(u), u = _gelu_tanh_arg
    xc = xp.clip(x, -GELU_CLIP, GELU_CLIP)
    s = sigmoid(xp, _gelu_tanh_arg(xp, xc))
    du = (2 * GELU_TANH_BETA) * (1 + (3 * GELU_TANH_KAPPA) * (xc * xc))
    return dy * (s + xc * (s * (1 - s)) * du)


def _silu_bw(xp, x, y, dy, a, b):
    s = sigmoid(xp, x)
    return dy * (s * (1 + x * (1 - s)))


def _sigmoid_bw(xp, x, y, dy, a, b):
    return dy * (y * (1 - y))


def _tanh_bw(xp, x, y, dy, a, b):
    return dy * (1 - y * y)


def _softplus_bw(xp, x, y, dy, a, b):
    return xp.where(_softplus_big(xp, x, a, b), dy, dy * sigmoid(xp, a * x))


def _hardtanh_bw(xp, x, y, dy, a, b):
    return _zero_where_not(xp, (x > a) & (x < b), dy)


_FORWARD = {
    "relu": _relu, "leaky_relu": _leaky_relu, "elu": _elu, "selu": _selu,
    "gelu": _gelu, "gelu_tanh": _gelu_tanh, "silu": _silu, "sigmoid": _sigmoid,
    "tanh": _tanh, "softplus": _softplus, "hardtanh": _hardtanh,
}
_BACKWARD = {
    "relu": _relu_bw, "leaky_relu": _leaky_relu_bw, "elu": _elu_bw,
    "selu": _selu_bw, "gelu": _gelu_bw, "gelu_tanh": _gelu_tanh_bw,
    "silu": _silu_bw, "sigmoid": _sigmoid_bw, "tanh": _tanh_bw,
    "softplus": _softplus_bw, "hardtanh": _hardtanh_bw,
}
