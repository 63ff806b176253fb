"""Parameter initializers with PyTorch's formulas, names and errors.

Each one fills its tensor in place without recording a graph and returns it.
Fans follow PyTorch: for a weight of shape (out, in, *kernel),
fan_in = in * prod(kernel) and fan_out = out * prod(kernel).
"""
import math
import warnings

from .. import autograd
from ..backend.reference.activation import erfc
from ..dtypes import float64 as _float64
from ..random import draw
from ..tensor import Tensor
from .functional import check_real

_F64 = _float64.np  # random draws for the structured inits are made in float64
_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity: linear/conv/sigmoid 1, tanh 5/3,
    relu sqrt(2), leaky_relu sqrt(2 / (1 + slope**2)) (slope = param or 0.01),
    selu 3/4."""
    if nonlinearity in _LINEAR_LIKE:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}; expected one of linear, conv1d, "
                     "conv2d, conv3d, conv_transpose1d/2d/3d, sigmoid, tanh, relu, leaky_relu, selu")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions (got shape {tuple(tensor.shape)})")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check_tensor(tensor, fn, **numbers):
    """The tensor must be a Tensor and each named argument a real number, not nan
    (a nan bound or gain would fill the tensor with nan)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(tensor).__name__}")
    for name, value in numbers.items():
        check_real(fn, name, value)


def _assign(tensor, array):
    """Writes a backend array into tensor (casting to its dtype), recording no graph."""
    with autograd.no_grad():
        tensor.copy_(Tensor._wrap(array, tensor._device))
    return tensor


def _is_empty(tensor):
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


# ------------------------------------------------------------------ plain fills

def uniform_(tensor, a=0.0, b=1.0):
    """Values drawn from U(a, b)."""
    _check_tensor(tensor, "uniform_", a=a, b=b)
    if a > b:
        raise ValueError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    with autograd.no_grad():
        return tensor.uniform_(a, b)


def normal_(tensor, mean=0.0, std=1.0):
    """Values drawn from N(mean, std**2)."""
    _check_tensor(tensor, "normal_", mean=mean, std=std)
    if std < 0:
        raise ValueError(f"normal expects std >= 0.0, but found std {std}")
    with autograd.no_grad():
        return tensor.normal_(mean, std)


def constant_(tensor, val):
    _check_tensor(tensor, "constant_")
    with autograd.no_grad():
        return tensor.fill_(val)


def ones_(tensor):
    return constant_(tensor, 1.0)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def eye_(tensor):
    """The identity matrix (2-D tensors only), as in Linear layers keeping their input."""
    _check_tensor(tensor, "eye_")
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported (got shape {tuple(tensor.shape)})")
    return _assign(tensor, tensor.backend.xp.eye(*tensor.shape, dtype=tensor._data.dtype))


def dirac_(tensor, groups=1):
    """Dirac delta of a conv weight (out, in, *kernel): each of the first
    min(out/groups, in) channels of every group passes its input channel
    through at the kernel centre."""
    _check_tensor(tensor, "dirac_")
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"Only tensors with 3, 4, or 5 dimensions are supported (got shape "
                         f"{tuple(tensor.shape)})")
    out_channels = tensor.shape[0]
    if groups < 1 or out_channels % groups != 0:
        raise ValueError(f"dim 0 must be divisible by groups (size {out_channels}, groups {groups})")
    per_group = out_channels // groups
    n = min(per_group, tensor.shape[1])
    xp = tensor.backend.xp
    arr = xp.zeros(tensor.shape, tensor._data.dtype)
    d = xp.arange(n)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        arr[(g * per_group + d, d) + centre] = 1
    return _assign(tensor, arr)


# ---------------------------------------------------------- scaled by the fans

def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    _check_tensor(tensor, "xavier_uniform_", gain=gain)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check_tensor(tensor, "xavier_normal_", gain=gain)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015); `a` is the
    negative slope used by leaky_relu's gain."""
    _check_tensor(tensor, "kaiming_uniform_", a=a)
    if _is_empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std**2) with std = gain / sqrt(fan)."""
    _check_tensor(tensor, "kaiming_normal_", a=a)
    if _is_empty(tensor):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


# --------------------------------------------------------- structured inits

def _normal_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


# Acklam's rational approximation of the inverse normal CDF (relative error
# 1.2e-9), refined below by one Halley step to float64 accuracy.
_ICDF_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
           1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_ICDF_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
           6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_ICDF_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
           -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_ICDF_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
           3.754408661907416e+00, 1.0)
_ICDF_TAIL = 0.02425


def _polyval(coefs, x):
    out = coefs[0]
    for c in coefs[1:]:
        out = out * x + c
    return out


def _tail_quantile(xp, p):
    """Quantile of lower-tail probabilities p <= _ICDF_TAIL (negative values)."""
    q = xp.sqrt(-2.0 * xp.log(p))
    return _polyval(_ICDF_C, q) / _polyval(_ICDF_D, q)


def normal_quantile(xp, p):
    """Inverse standard normal CDF of float64 probabilities p in (0, 1)."""
    centre = p - 0.5
    r = centre * centre
    x = centre * _polyval(_ICDF_A, r) / _polyval(_ICDF_B, r)
    lo = xp.minimum(p, _ICDF_TAIL)
    hi = xp.minimum(1.0 - p, _ICDF_TAIL)
    x = xp.where(p < _ICDF_TAIL, _tail_quantile(xp, lo), x)
    x = xp.where(p > 1.0 - _ICDF_TAIL, -_tail_quantile(xp, hi), x)
    # Halley step on Phi(x) - p, written as (1 - p) - Q(x) in the upper half so
    # that both tails keep their relative accuracy (erfc, never 1 - erf)
    e = xp.where(p > 0.5, (1.0 - p) - 0.5 * erfc(xp, x / math.sqrt(2.0)),
                 0.5 * erfc(xp, -x / math.sqrt(2.0)) - p)
    u = e * math.sqrt(2.0 * math.pi) * xp.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """N(mean, std**2) truncated to the absolute bounds [a, b], sampled exactly
    by inverting the CDF on [Phi(a), Phi(b)]."""
    _check_tensor(tensor, "trunc_normal_", mean=mean, std=std, a=a, b=b)
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The "
                      "distribution of values may be incorrect.", stacklevel=2)
    if a > b:
        raise ValueError(f"trunc_normal_: lower bound a={a} is above upper bound b={b}")
    if std <= 0:
        return constant_(tensor, min(max(mean, a), b))
    lo, hi = (a - mean) / std, (b - mean) / std
    # sample the half with the smaller tail probabilities: they are exact in float64
    flip = lo > -hi
    if flip:
        lo, hi = -hi, -lo
    p_lo, p_hi = _normal_cdf(lo), _normal_cdf(hi)
    xp = tensor.backend.xp
    p = draw(tensor._device, "uniform", tensor.shape, _F64, p_lo, p_hi)
    z = normal_quantile(xp, xp.clip(p, 1e-300, 1.0 - 1e-16))
    if flip:
        z = -z
    return _assign(tensor, xp.clip(mean + std * z, a, b))


def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian
    matrix, with signs fixed by diag(R) so the result is uniformly distributed
    (Saxe et al., 2013). Trailing dims are flattened: rows = size(0)."""
    _check_tensor(tensor, "orthogonal_", gain=gain)
    if tensor.ndim < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported (got shape "
                         f"{tuple(tensor.shape)})")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = draw(tensor._device, "normal", (rows, cols), _F64, 0.0, 1.0)
    if rows < cols:
        flat = flat.T
    xp = tensor.backend.xp
    q, r = xp.linalg.qr(flat)
    q = q * xp.sign(xp.diag(r))
    if rows < cols:
        q = q.T
    return _assign(tensor, (gain * q).reshape(tensor.shape))


def sparse_(tensor, sparsity, std=0.01):
    """N(0, std**2) with a fraction `sparsity` of each column set to zero
    (Martens, 2010). 2-D tensors only."""
    _check_tensor(tensor, "sparse_", sparsity=sparsity, std=std)
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported (got shape {tuple(tensor.shape)})")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparse_: sparsity must be in [0, 1], got {sparsity}")
    rows, cols = tensor.shape
    num_zeros = int(math.ceil(sparsity * rows))
    xp = tensor.backend.xp
    values = draw(tensor._device, "normal", (rows, cols), tensor._data.dtype, 0.0, std)
    # a random rank per column picks which rows of that column become zero
    order = draw(tensor._device, "uniform", (rows, cols), _F64, 0.0, 1.0)
    ranks = xp.argsort(xp.argsort(order, axis=0), axis=0)
    return _assign(tensor, xp.where(ranks < num_zeros, 0, values))


def default_layer_init_(weight, bias=None):
    """PyTorch's default initialization of Linear and Conv layers: weight from
    kaiming_uniform_(a=sqrt(5)) (U(+-1/sqrt(fan_in))), bias from U(+-1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
    return weight
