"""Reference kernels for normalization: one core behind every norm layer.

Every function takes the array module `xp` (numpy or cupy) first. Two layouts
cover all layers (the ops reshape their inputs to them):

- batch norm, x (N, C, S): statistics per channel c over (n, s).
- group norm, x (N, G, K, S): statistics per (n, g) over (k, s); the affine
  weight/bias (G, K) is applied per (g, k). LayerNorm is (M, 1, D, 1) with
  weight (1, D), GroupNorm (N, G, C//G, HW) with weight (G, C//G),
  InstanceNorm (N, C, 1, HW) with weight (C, 1), RMSNorm the LayerNorm layout
  with subtract_mean=False (no centering: rstd = 1/sqrt(mean(x^2) + eps)).

Shared conventions:
- var is the biased variance, rstd = 1/sqrt(var + eps),
  xhat = (x - mean) * rstd, y = xhat * weight + bias.
- weight/bias may be None (identity scale / zero shift).
- All arithmetic runs in float64 so that float32 inputs with a large offset
  (say 1e4 with std 1) still normalize accurately; results are cast back to
  x's dtype, parameter gradients to weight's dtype.
- Backward kernels use the closed form over the reduction set R of size M:
  dx = rstd * (dy' - mean_R(dy') - xhat * mean_R(dy' * xhat)), dy' = dy * weight
  (without the mean_R(dy') term for RMSNorm), or dx = dy' * rstd when the
  statistics were constants (batch norm in eval mode).
"""

from .activation import activation_forward

__all__ = [
    "batch_norm_forward", "batch_norm_apply", "batch_norm_backward",
    "group_norm_forward", "group_norm_backward", "running_stats_update", "inverse_std",
]


# ---------------------------------------------------------------- helpers

def _f64(xp, a):
    """a as float64 (no copy when it already is)."""
    return a.astype(xp.float64, copy=False)


def _cast(a, dtype):
    return a.astype(dtype, copy=False)


def _scale_shift(xp, xhat, weight, bias, expand):
    """xhat * weight + bias, with weight/bias (possibly None) reshaped by
    `expand` so they broadcast over xhat."""
    if weight is not None:
        xhat = xhat * expand(_f64(xp, weight))
    if bias is not None:
        xhat = xhat + expand(_f64(xp, bias))
    return xhat


def _param_grads(xp, dy, xhat, weight, axes, shape):
    """(dweight, dbias): sums of dy * xhat and dy over `axes`, reshaped to
    `shape`, in weight's dtype; (None, None) when weight is None."""
    if weight is None:
        return None, None
    dweight = (dy * xhat).sum(axis=axes).reshape(shape)
    dbias = dy.sum(axis=axes).reshape(shape)
    return _cast(dweight, weight.dtype), _cast(dbias, weight.dtype)


def _closed_form_dx(xp, dyw, xhat, rstd, axes, subtract_mean):
    """dx from dy' = dy * weight, with mean and rstd computed from x itself
    over `axes` (rstd broadcastable to x)."""
    proj = xhat * (dyw * xhat).mean(axis=axes, keepdims=True)
    if subtract_mean:
        proj = proj + dyw.mean(axis=axes, keepdims=True)
    return rstd * (dyw - proj)


# ---------------------------------------------------------------- batch norm

def _channel(a):
    """(C,) -> (1, C, 1), broadcasting over the (N, C, S) layout."""
    return a.reshape(1, -1, 1)


def batch_norm_forward(xp, x, weight, bias, eps, relu=False):
    """Batch statistics and normalized output (then relu(y) when `relu`,
    exactly the relu kernel on the rounded y).

    x (N, C, S); weight, bias (C,) or None; eps float.
    Returns y (N, C, S), mean (C,), var (C,) (biased), rstd (C,), all in
    x's dtype. y uses the float64 mean, not the rounded one returned.
    """
    xf = _f64(xp, x)
    mean = xf.mean(axis=(0, 2))
    xc = xf - _channel(mean)
    var = (xc * xc).mean(axis=(0, 2))
    rstd = 1.0 / xp.sqrt(var + eps)
    y = _scale_shift(xp, xc * _channel(rstd), weight, bias, _channel)
    y, mean, var, rstd = (_cast(a, x.dtype) for a in (y, mean, var, rstd))
    return (activation_forward(xp, "relu", y) if relu else y), mean, var, rstd


def inverse_std(xp, var, eps, dtype):
    """1 / sqrt(var + eps) computed in float64, rounded once to dtype (the
    rstd that running statistics give in evaluation)."""
    return _cast(1.0 / xp.sqrt(_f64(xp, var) + eps), dtype)


def running_stats_update(xp, running_mean, running_var, mean, var, count, momentum):
    """In place: each running statistic r becomes (1 - momentum) * r +
    momentum * s, computed in float64 and rounded once to r's dtype (PyTorch
    updates in its accumulation type too); s is the batch's mean, or for the
    variance the unbiased var * count / (count - 1). mean, var (C,)."""
    unbias = count / (count - 1)
    for r, s, scale in ((running_mean, mean, 1.0), (running_var, var, unbias)):
        r[...] = _cast((1.0 - momentum) * _f64(xp, r) + momentum * (scale * _f64(xp, s)), r.dtype)


def batch_norm_apply(xp, x, mean, rstd, weight, bias, relu=False, pre_bias=None, out=None):
    """y = (x - mean) * rstd * weight + bias with given per-channel statistics,
    then relu(y) when `relu` (exactly the relu kernel on the rounded y).

    x (N, C, S); mean, rstd (C,); weight, bias (C,) or None. Returns y (N, C, S).
    pre_bias (C,) or None: added to x first, in x's dtype (a linear layer's
    bias, rounded as its own pass would). out: an array to hold y (it may be
    x); returned.
    """
    if pre_bias is not None:
        x = x + _channel(pre_bias)
    xhat = (_f64(xp, x) - _channel(_f64(xp, mean))) * _channel(_f64(xp, rstd))
    y = _cast(_scale_shift(xp, xhat, weight, bias, _channel), x.dtype)
    y = activation_forward(xp, "relu", y) if relu else y
    if out is not None:
        out[...] = y
        return out
    return y


def batch_norm_backward(xp, dy, x, mean, rstd, weight, batch_stats):
    """Gradients of batch_norm_forward (batch_stats=True: mean/rstd came from
    this x) or of batch_norm_apply (batch_stats=False: they were constants).

    dy, x (N, C, S); mean, rstd (C,); weight (C,) or None.
    Returns dx (N, C, S) in x's dtype, dweight (C,), dbias (C,) (None when
    weight is None).
    """
    dyf = _f64(xp, dy)
    r = _channel(_f64(xp, rstd))
    xhat = (_f64(xp, x) - _channel(_f64(xp, mean))) * r
    dyw = dyf if weight is None else dyf * _channel(_f64(xp, weight))
    if batch_stats:
        dx = _closed_form_dx(xp, dyw, xhat, r, (0, 2), True)
    else:
        dx = dyw * r
    dweight, dbias = _param_grads(xp, dyf, xhat, weight, (0, 2), (-1,))
    return _cast(dx, x.dtype), dweight, dbias


# ---------------------------------------------------------------- group norm

def _group(a):
    """(N, G) -> (N, G, 1, 1), broadcasting over the (N, G, K, S) layout."""
    return a.reshape(a.shape + (1, 1))


def _member(a):
    """(G, K) -> (1, G, K, 1), broadcasting over the (N, G, K, S) layout."""
    return a.reshape((1,) + a.shape + (1,))


def group_norm_forward(xp, x, weight, bias, eps, subtract_mean):
    """Per-(n, g) statistics over (k, s) and normalized output.

    x (N, G, K, S); weight, bias (G, K) or None; eps float; subtract_mean
    False gives RMSNorm (no centering, rstd = 1/sqrt(mean(x^2) + eps)).
    Returns y (N, G, K, S), mean (N, G) (None without centering), rstd (N, G),
    all in x's dtype.
    """
    xc = _f64(xp, x)
    mean = None
    if subtract_mean:
        mean = xc.mean(axis=(2, 3))
        xc = xc - _group(mean)
        mean = _cast(mean, x.dtype)
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=(2, 3)) + eps)
    y = _scale_shift(xp, xc * _group(rstd), weight, bias, _member)
    return _cast(y, x.dtype), mean, _cast(rstd, x.dtype)


def group_norm_backward(xp, dy, x, mean, rstd, weight, subtract_mean):
    """Gradients of group_norm_forward (mean/rstd from this x).

    dy, x (N, G, K, S); mean (N, G) (ignored when subtract_mean is False);
    rstd (N, G); weight (G, K) or None.
    Returns dx (N, G, K, S) in x's dtype, dweight (G, K), dbias (G, K) (None
    when weight is None).
    """
    dyf = _f64(xp, dy)
    r = _group(_f64(xp, rstd))
    xc = _f64(xp, x)
    if subtract_mean:
        xc = xc - _group(_f64(xp, mean))
    xhat = xc * r
    dyw = dyf if weight is None else dyf * _member(_f64(xp, weight))
    dx = _closed_form_dx(xp, dyw, xhat, r, (2, 3), subtract_mean)
    shape = None if weight is None else weight.shape
    dweight, dbias = _param_grads(xp, dyf, xhat, weight, (0, 3), shape)
    return _cast(dx, x.dtype), dweight, dbias
