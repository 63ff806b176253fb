"""Reductions over dims (`dim`: int, tuple or None for all; `keepdim`)."""
import builtins
import math

import numpy as _np

from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor
from .elementwise import where

_wrap = Tensor._wrap
_bmax = builtins.max


def normalize_dims(dim, ndim, op="reduction"):
    """A sorted tuple of non-negative dims; None means all dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (int, _np.integer)):
        dims = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
        if not dims:  # an empty list of dims reduces all of them, as in PyTorch
            return tuple(range(ndim))
    else:
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {type(dim).__name__}")
    out = []
    for d in dims:
        if not isinstance(d, (int, _np.integer)):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {type(d).__name__}")
        lo = -_bmax(ndim, 1)
        if not lo <= d < _bmax(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions "
                             f"(expected to be in [{lo}, {_bmax(ndim, 1) - 1}])")
        out.append(int(d) % _bmax(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dims} contains a repeated dimension")
    if ndim == 0:
        return ()
    return tuple(sorted(out))


def keepdim_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _expand_back(g, shape, dims, keepdim):
    """Broadcasts a reduced gradient back over the reduced dims."""
    if not is_grad_enabled():  # the same view of the array, without the graph ops
        data = g._data.reshape(keepdim_shape(shape, dims)) if not keepdim and dims else g._data
        return _wrap(g.device.backend.xp.broadcast_to(data, shape), g.device)
    if not keepdim and dims:
        g = g.reshape(keepdim_shape(shape, dims))
    return g.expand(shape)


class Sum(Op):
    def forward(self, x, dims, keepdim):
        self.shape, self.dims, self.keepdim = x._data.shape, dims, keepdim
        out = x._data.sum(axis=dims, keepdims=keepdim)
        if x._data.dtype == _np.bool_:
            out = out.astype(_np.int64)
        return self.device.backend.xp.asarray(out)

    def backward(self, g):
        return _expand_back(g, self.shape, self.dims, self.keepdim), None, None


class Mean(Op):
    def forward(self, x, dims, keepdim):
        self.shape, self.dims, self.keepdim = x._data.shape, dims, keepdim
        self.count = math.prod(x._data.shape[d] for d in dims)
        xp = self.device.backend.xp
        if self.count == 0:  # mean of nothing is nan, as in PyTorch (without numpy's warning)
            shape = keepdim_shape(x._data.shape, dims) if keepdim else tuple(
                s for i, s in enumerate(x._data.shape) if i not in dims)
            return xp.full(shape, xp.nan, dtype=x._data.dtype)
        return xp.asarray(x._data.mean(axis=dims, keepdims=keepdim))

    def backward(self, g):
        return _expand_back(g * (1.0 / _bmax(self.count, 1)), self.shape, self.dims, self.keepdim), None, None


class _Extreme(Op):
    """amax/amin: ties share the gradient evenly (as PyTorch)."""

    def forward(self, x, dims, keepdim):
        self.x, self.dims, self.keepdim = x, dims, keepdim
        if x._data.size == 0 and _reduces_empty_dim(x._data.shape, dims):
            raise RuntimeError(f"{self.fname}: cannot reduce over a dimension of size 0 (input shape "
                               f"{tuple(x.shape)}, dim {dims}): the operation has no identity")
        out = getattr(x._data, self.method)(axis=dims, keepdims=True)
        self.out_kd = out
        return out if keepdim else out.reshape(tuple(s for i, s in enumerate(out.shape) if i not in dims))

    def backward(self, g):
        x = self.x._data
        mask = x == self.out_kd
        count = mask.sum(axis=self.dims, keepdims=True).astype(x.dtype)
        share = _wrap(mask / count, self.device)
        if not self.keepdim:
            g = g.reshape(keepdim_shape(x.shape, self.dims))
        return g * share, None, None


def _reduces_empty_dim(shape, dims):
    return any(shape[d] == 0 for d in dims)


class Amax(_Extreme):
    fname, method = "amax", "max"


class Amin(_Extreme):
    fname, method = "amin", "min"


class _ExtremeWithIndex(Op):
    """max/min along one dim returning (values, indices); the gradient goes to the
    selected index only."""

    def forward(self, x, dim, keepdim):
        data = x._data
        if data.shape[dim] == 0:
            raise IndexError(f"{self.fname}: cannot take the {self.fname} over dim {dim} of size 0 "
                             f"(input shape {tuple(data.shape)})")
        idx = getattr(data, self.method)(axis=dim, keepdims=True)
        xp = self.device.backend.xp
        vals = xp.take_along_axis(data, idx, axis=dim)
        self.shape, self.dim, self.keepdim, self.idx = data.shape, dim, keepdim, idx
        if not keepdim:
            vals, idx = vals.squeeze(dim), idx.squeeze(dim)
        return vals, idx.astype(_np.int64)

    def backward(self, g, _gidx):
        xp = self.device.backend.xp
        n = self.shape[self.dim]
        pos = xp.arange(n).reshape([n if i == self.dim else 1 for i in range(len(self.shape))])
        onehot = pos == self.idx
        if not self.keepdim:
            g = g.unsqueeze(self.dim)
        return where(onehot, g.expand(self.shape), 0.0), None, None


class MaxWithIndex(_ExtremeWithIndex):
    fname, method = "max", "argmax"


class MinWithIndex(_ExtremeWithIndex):
    fname, method = "min", "argmin"


# -- Tensor-level entry points -------------------------------------------------

def _dim_arg(dim, axis):
    if axis is not None:
        if dim is not None:
            raise TypeError("pass either dim or its alias axis, not both")
        return axis
    return dim


def _keep_arg(keepdim, keepdims):
    return bool(keepdim or keepdims)


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=False, dtype=None):  # noqa: A001
    dims = normalize_dims(_dim_arg(dim, axis), x.ndim, "sum")
    out = Sum.apply(x, dims, _keep_arg(keepdim, keepdims))
    return out if dtype is None else out.to(dtype)


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
    if not x.is_floating_point():
        raise TypeError(f"mean: input dtype must be floating point, got {x.dtype}; "
                        "convert with .float() first")
    dims = normalize_dims(_dim_arg(dim, axis), x.ndim, "mean")
    return Mean.apply(x, dims, _keep_arg(keepdim, keepdims))


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=False):
    if not x.is_floating_point():
        raise TypeError(f"var: input dtype must be floating point, got {x.dtype}")
    if unbiased is not None and correction is not None:
        raise TypeError("var: pass either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = normalize_dims(_dim_arg(dim, axis), x.ndim, "var")
    keep = _keep_arg(keepdim, keepdims)
    n = math.prod(x.shape[d] for d in dims)
    centered = x - Mean.apply(x, dims, True)
    scale = 1.0 / (n - correction) if n - correction > 0 else float("nan")
    return Sum.apply(centered * centered, dims, keep) * scale


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=False):
    return var(x, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
    return Amax.apply(x, normalize_dims(_dim_arg(dim, axis), x.ndim, "amax"), _keep_arg(keepdim, keepdims))


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
    return Amin.apply(x, normalize_dims(_dim_arg(dim, axis), x.ndim, "amin"), _keep_arg(keepdim, keepdims))


def _single_dim(dim, ndim, op):
    if not isinstance(dim, (int, _np.integer)):
        raise TypeError(f"{op}: dim must be a single int here, got {dim!r}")
    return normalize_dims(dim, ndim, op)[0] if ndim else 0


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=False):  # noqa: A001
    dim = _dim_arg(dim, axis)
    if dim is None:
        return Amax.apply(x, normalize_dims(None, x.ndim), False)
    if x.ndim == 0:
        return x, _wrap(x.backend.xp.zeros((), _np.int64), x._device)
    return MaxWithIndex.apply(x, _single_dim(dim, x.ndim, "max"), _keep_arg(keepdim, keepdims))


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=False):  # noqa: A001
    dim = _dim_arg(dim, axis)
    if dim is None:
        return Amin.apply(x, normalize_dims(None, x.ndim), False)
    if x.ndim == 0:
        return x, _wrap(x.backend.xp.zeros((), _np.int64), x._device)
    return MinWithIndex.apply(x, _single_dim(dim, x.ndim, "min"), _keep_arg(keepdim, keepdims))


def _arg_extreme(x, dim, keepdim, name):
    data = x._data
    if data.size == 0 and (dim is None or
                           _reduces_empty_dim(data.shape, normalize_dims(dim, data.ndim, name))):
        raise RuntimeError(f"{name}: cannot reduce over a dimension of size 0 (input shape "
                           f"{tuple(data.shape)}, dim {dim})")
    if dim is None:
        out = getattr(data.reshape(-1), name)()
        out = x.backend.xp.asarray(out, dtype=_np.int64)
        if keepdim:
            out = out.reshape((1,) * data.ndim)
        return _wrap(out, x._device)
    d = _single_dim(dim, x.ndim, name)
    return _wrap(getattr(data, name)(axis=d, keepdims=keepdim).astype(_np.int64), x._device)


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
    return _arg_extreme(x, _dim_arg(dim, axis), _keep_arg(keepdim, keepdims), "argmax")


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
    return _arg_extreme(x, _dim_arg(dim, axis), _keep_arg(keepdim, keepdims), "argmin")


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """log(sum(exp(x))) computed stably (max subtracted, treated as a constant)."""
    dims = normalize_dims(_dim_arg(dim, axis), x.ndim, "logsumexp")
    keep = _keep_arg(keepdim, keepdims)
    xp = x.backend.xp
    m = x._data.max(axis=dims, keepdims=True) if x._data.size else xp.zeros(keepdim_shape(x.shape, dims), x._data.dtype)
    m = xp.where(xp.isfinite(m), m, 0)
    shift = _wrap(m, x._device)
    out = Sum.apply((x - shift).exp(), dims, True).log() + shift
    return out if keep else out.reshape(tuple(s for i, s in enumerate(out.shape) if i not in dims))
