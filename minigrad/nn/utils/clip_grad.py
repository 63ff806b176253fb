"""Gradient clipping, in place on the `.grad` of parameters, as PyTorch does it,
plus NFNets' unit-wise adaptive gradient clipping.

Each function takes a Tensor or an iterable of Tensors (a generator is fine)
and ignores those whose `.grad` is None. Anything else, and nan or non-numeric
limits, raise a TypeError or ValueError naming the argument. `foreach` is accepted for PyTorch
compatibility; every path here is already one pass per gradient.
"""
import math
import numbers

from ...tensor import Tensor, tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grad_adaptive_"]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scales all gradients together so that their joint `norm_type`-norm is at
    most max_norm: each is multiplied by min(1, max_norm / (total_norm + 1e-6)).

    The total norm is the norm of the vector of per-gradient norms (PyTorch's
    definition; for p = 2 and inf it is the norm of all elements together).
    Returns it as a 0-d tensor on the first gradient's device (float64 if any
    gradient is float64, else float32). With error_if_nonfinite=True a nan or
    inf total norm raises RuntimeError instead of clipping.
    """
    grads = _grads("clip_grad_norm_", parameters)
    max_norm = _real("clip_grad_norm_", "max_norm", max_norm)
    norm_type = _norm_type(norm_type)
    if not grads:
        return tensor(0.0)
    total = _norm_of_values([_grad_norm(g, norm_type) for g in grads], norm_type)
    first = grads[0]
    dtype = max((g._data.dtype for g in grads), key=lambda d: d.itemsize)
    total_t = Tensor._wrap(first.backend.xp.asarray(total, dtype=dtype), first._device)
    total = float(total_t._data)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           f"is non-finite ({total}), so it cannot be clipped. To disable this "
                           "error and scale the gradients by the non-finite norm anyway, set "
                           "`error_if_nonfinite=False`")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # clamped to 1 (no-op); a nan coefficient propagates, as in PyTorch
        for g in grads:
            _scale_(g, coef)
    return total_t


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamps every gradient element into [-clip_value, clip_value], in place."""
    clip_value = _real("clip_grad_value_", "clip_value", clip_value)
    for g in _grads("clip_grad_value_", parameters):
        data = _writable(g)
        g.backend.xp.clip(data, -clip_value, clip_value, out=data)


def clip_grad_adaptive_(parameters, clipping=0.01, eps=1e-3):
    """Unit-wise adaptive gradient clipping (AGC, Brock et al. 2021, NFNets).

    For each unit, a gradient G_i whose norm exceeds clipping * max(||W_i||, eps)
    is rescaled to that norm (||W_i|| of the parameter's own values). A unit is one
    output unit: a slice along dim 0 (a row of a Linear weight, an output channel
    of a conv weight), with the norm taken over all other dims. Parameters with
    ndim <= 1 (biases, gains, scalars) form a single unit, as in the NFNets
    reference `unitwise_norm`.
    """
    clipping = _real("clip_grad_adaptive_", "clipping", clipping, non_negative=True)
    eps = _real("clip_grad_adaptive_", "eps", eps, non_negative=True)
    for p in _as_list("clip_grad_adaptive_", parameters):
        g = p._grad
        if g is None:
            continue
        xp = p.backend.xp
        max_norm = xp.maximum(_unit_norms(xp, p._data), eps) * clipping
        grad_norm = _unit_norms(xp, g._data)
        # Units under the limit keep their gradient; the others are rescaled to it.
        scale = xp.where(grad_norm < max_norm, 1.0, max_norm / xp.maximum(grad_norm, 1e-6))
        _scale_(g, scale.astype(g._data.dtype, copy=False))


# -- helpers -------------------------------------------------------------------------

def _as_list(fn, parameters):
    """The parameters as a list of Tensors (one isinstance per parameter: the
    list is built anyway)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise TypeError(f"{fn}: parameters must be a Tensor or an iterable of Tensors, got "
                        f"{type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: parameters must be Tensors, got element {i} of type "
                            f"{type(p).__name__}")
    return params


def _grads(fn, parameters):
    return [p._grad for p in _as_list(fn, parameters) if p._grad is not None]


def _real(fn, name, value, non_negative=False):
    """value as a float: a real number (or a one-element Tensor), not nan, and
    >= 0 where `non_negative`."""
    if not isinstance(value, (numbers.Real, Tensor)):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__} "
                        f"({value!r})")
    value = float(value)
    if non_negative and not value >= 0:
        raise ValueError(f"{fn}: {name} must be a number >= 0, got {value}")
    if math.isnan(value):
        raise ValueError(f"{fn}: {name} must not be nan")
    return value


def _norm_type(norm_type):
    """norm_type as a float; the string 'inf' is accepted, as in PyTorch."""
    if isinstance(norm_type, str):
        try:
            norm_type = float(norm_type)
        except ValueError:
            raise ValueError("clip_grad_norm_: norm_type must be a real number or 'inf', got "
                             f"{norm_type!r}") from None
    return _real("clip_grad_norm_", "norm_type", norm_type)


def _grad_norm(g, p):
    """The p-norm of one gradient as a Python float (accumulated in float64)."""
    data = g._data
    if data.size == 0:
        return 0.0
    if p == 2.0:
        return math.sqrt(g.backend.sum_of_squares(data))
    xp = g.backend.xp
    if p == 0.0:
        return float(xp.count_nonzero(data))
    magnitude = xp.abs(data)
    if p == math.inf:
        return float(magnitude.max())
    if p == -math.inf:
        return float(magnitude.min())
    return float(xp.sum(magnitude.astype(xp.float64) ** p)) ** (1.0 / p)


def _norm_of_values(values, p):
    """The p-norm of a list of non-negative floats (torch.linalg.vector_norm's ord)."""
    if p == 0.0:
        return float(sum(v != 0 for v in values))
    if p == math.inf:
        return max(values)
    if p == -math.inf:
        return min(values)
    if p == 2.0:
        return math.sqrt(math.fsum(v * v for v in values))
    return math.fsum(v ** p for v in values) ** (1.0 / p)


def _unit_norms(xp, data):
    """L2 norm per output unit, shaped to broadcast against `data`."""
    if data.ndim <= 1:
        return xp.sqrt(xp.sum(xp.square(data)))
    rows = data.reshape(data.shape[0], -1)
    norms = xp.sqrt(xp.sum(xp.square(rows), axis=1))
    return norms.reshape((data.shape[0],) + (1,) * (data.ndim - 1))


def _writable(g):
    """g's array, replaced by a private copy first if it is read-only (a gradient
    kept from backward(create_graph=True) may share memory)."""
    flags = getattr(g._data, "flags", None)
    if flags is not None and not getattr(flags, "writeable", True):
        g._data = g._data.copy()
    return g._data


def _scale_(g, factor):
    data = _writable(g)
    data *= factor
