"""Elementwise arithmetic and math ops, with NumPy broadcasting."""
import numpy as _np

from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor

_F64 = _np.dtype(_np.float64)
_wrap = Tensor._wrap


def value(x):
    """The array (or Python scalar) behind an operand."""
    return x._data if isinstance(x, Tensor) else x


def shape_of(x):
    return x._data.shape if isinstance(x, Tensor) else ()


def unbroadcast(g, shape):
    """Sums a broadcast gradient back down to `shape`."""
    gshape = g._data.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    if not is_grad_enabled():  # the same sum on the array, without two graph ops' overhead
        data = g.device.backend.xp.asarray(g._data.sum(axis=axes)) if axes else g._data
        return _wrap(data.reshape(shape), g.device)
    if axes:
        g = g.sum(dim=axes, keepdim=False) if lead == len(axes) else g.sum(dim=axes, keepdim=True)
    if g._data.shape != shape:
        g = g.reshape(shape)
    return g


def _fix_int_promotion(out, a, b):
    """numpy promotes int/int division, int*float-scalar and float32 with a 0-d float64
    to float64; PyTorch gives float32 unless a float64 operand decides the dtype: one
    with dims, or a 0-d one beside another 0-d operand or beside no float tensor."""
    if out.dtype == _F64:
        for x, other in ((a, b), (b, a)):
            data = value(x)
            if hasattr(data, "dtype") and data.dtype == _F64 and (
                    data.ndim or not _is_float_with_dims(other)):
                return out
        return out.astype(_np.float32)
    return out


def _is_float_with_dims(x):
    data = value(x)
    return getattr(data, "ndim", 0) > 0 and data.dtype.kind == "f"


def grad_like(g, x):
    """g summed down to tensor x's shape, in x's dtype: the gradient of an operand
    of a broadcasting op (a float32 operand of a float64 result gets float32)."""
    g = unbroadcast(g, x._data.shape)
    if g._data.dtype != x._data.dtype:
        g = g.to(x._data.dtype)
    return g


def float_array(d):
    """The float math ops (exp, log, ...) compute int and bool inputs in float32,
    as PyTorch does (numpy would give float64, or float16 for bool)."""
    return d if d.dtype.kind == "f" else d.astype(_np.float32)


def _dtype_name(x):
    return str(x.dtype) if isinstance(x, Tensor) else type(x).__name__


def _dtype_error(name, a, b):
    return TypeError(f"{name}: not supported between operands of dtype {_dtype_name(a)} and "
                     f"{_dtype_name(b)}; convert with .long() or .float() first, or use the "
                     "logical operators & | ~ on bool tensors")


def _broadcast_error(name, a, b):
    return ValueError(f"{name}: shapes {tuple(shape_of(a))} and {tuple(shape_of(b))} cannot be "
                      "broadcast together (trailing dimensions must be equal or 1)")


def _integral(v):
    """A bool or integer operand (array of any backend, or Python scalar)."""
    dtype = getattr(v, "dtype", None)
    return isinstance(v, (bool, int)) if dtype is None else dtype.kind in "biu"


def _any_negative(v):
    return bool((v < 0).any()) if hasattr(v, "any") else v < 0


class _Binary(Op):
    """Shared forward for broadcasting binary ops: remembers operand shapes."""

    def forward(self, a, b):
        self.a, self.b = a, b
        try:
            out = self.compute(value(a), value(b))
        except ValueError as e:
            if "broadcast" in str(e):
                raise _broadcast_error(type(self).__name__.lower(), a, b) from None
            raise
        except TypeError as e:  # e.g. bool - bool: numpy's own message names numpy
            raise _dtype_error(type(self).__name__.lower(), a, b) from e
        if out.dtype == _F64:
            out = _fix_int_promotion(out, a, b)
        return out


class Add(_Binary):
    def compute(self, a, b):
        return a + b

    def backward(self, g):
        return (grad_like(g, self.a) if self.edges[0] is not None else None,
                grad_like(g, self.b) if self.edges[1] is not None else None)


class Sub(_Binary):
    def compute(self, a, b):
        return a - b

    def backward(self, g):
        return (grad_like(g, self.a) if self.edges[0] is not None else None,
                grad_like(-g, self.b) if self.edges[1] is not None else None)


class Mul(_Binary):
    def compute(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        return (grad_like(g * b, a) if self.edges[0] is not None else None,
                grad_like(g * a, b) if self.edges[1] is not None else None)


class Div(_Binary):
    def compute(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.edges[0] is not None:
            ga = grad_like(g / b, a)
        if self.edges[1] is not None:
            gb = grad_like(-g * a / (b * b), b)
        return ga, gb


class Pow(_Binary):
    def compute(self, a, b):
        if _integral(a) and _integral(b) and _any_negative(b):
            # checked here, not left to numpy: numpy accepts it for an empty base
            raise ValueError("pow: integers to negative integer powers are not allowed (as in "
                             "PyTorch); convert the base to float first, e.g. x.float() ** -1")
        out = a ** b
        if out.dtype.kind in "iu" and out.dtype.itemsize < 8:  # numpy: bool ** int is int8
            out = out.astype(_np.int64)
        return out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.edges[0] is not None:
            if isinstance(b, Tensor):
                ga = grad_like(g * b * a ** (b - 1), a)
            elif b == 0:
                ga = g * 0.0
            else:
                ga = g * (b * a ** (b - 1))
        if self.edges[1] is not None:
            out = a ** b
            if isinstance(a, Tensor):
                safe = where((a._data == 0) & (value(b) >= 0), 0.0, out * a.log())
                gb = grad_like(g * safe, b)
            else:
                gb = g * out * float(_np.log(a))
        return ga, gb


class Maximum(_Binary):
    def compute(self, a, b):
        return self.device.backend.xp.maximum(a, b)

    def backward(self, g):
        return _minmax_backward(self, g, greater=True)


class Minimum(_Binary):
    def compute(self, a, b):
        return self.device.backend.xp.minimum(a, b)

    def backward(self, g):
        return _minmax_backward(self, g, greater=False)


def _minmax_backward(node, g, greater):
    # PyTorch: ties split the gradient evenly between the two inputs.
    a, b = value(node.a), value(node.b)
    a_wins = (a > b) if greater else (a < b)
    tie = a == b
    ga = gb = None
    if node.edges[0] is not None:
        ga = grad_like(where(tie, g * 0.5, where(a_wins, g, 0.0)), node.a)
    if node.edges[1] is not None:
        b_wins = ~(a_wins | tie)
        gb = grad_like(where(tie, g * 0.5, where(b_wins, g, 0.0)), node.b)
    return ga, gb


class Where(Op):
    """where(cond, a, b); cond is a constant boolean array."""

    def forward(self, cond, a, b):
        self.cond, self.a, self.b = cond, a, b
        self.sa, self.sb = shape_of(a), shape_of(b)
        xp = self.device.backend.xp
        try:
            out = xp.where(cond._data, value(a), value(b))
        except ValueError:
            raise ValueError(f"where: condition {tuple(cond.shape)}, input {tuple(self.sa)} and "
                             f"other {tuple(self.sb)} cannot be broadcast together") from None
        if out.dtype == _F64:
            out = _fix_int_promotion(out, a, b)
        return out

    def backward(self, g):
        ga = gb = None
        if self.edges[1] is not None:
            ga = grad_like(where(self.cond, g, 0.0), self.a)
        if self.edges[2] is not None:
            gb = grad_like(where(self.cond, 0.0, g), self.b)
        return None, ga, gb


def where(cond, a, b):
    """Elementwise `a if cond else b`; cond is a bool tensor or array."""
    if isinstance(cond, Tensor):
        if cond._data.dtype != _np.bool_:
            raise TypeError(f"where: condition must be a bool tensor, got {cond.dtype}")
        cond_t = cond
    else:
        ref = a if isinstance(a, Tensor) else b
        dev = ref._device if isinstance(ref, Tensor) else None
        cond_t = _wrap(cond, dev) if dev is not None else Tensor._from_any(cond)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor._from_any(a, device=cond_t._device)
    return Where.apply(cond_t, a, b)


class Neg(Op):
    def forward(self, x):
        try:
            return -x._data
        except TypeError:
            raise TypeError(f"negation, the - operator, is not supported on {x.dtype} tensors; "
                            "to invert a bool mask use ~") from None

    def backward(self, g):
        return -g


class Exp(Op):
    def forward(self, x):
        self.x = x
        self.out = self.device.backend.xp.exp(float_array(x._data))
        return self.out

    def backward(self, g):
        y = self.x.exp() if is_grad_enabled() else _wrap(self.out, self.device)
        return g * y


class Log(Op):
    def forward(self, x):
        self.x = x
        return self.device.backend.xp.log(float_array(x._data))

    def backward(self, g):
        return g / self.x


class Sqrt(Op):
    def forward(self, x):
        self.x = x
        self.out = self.device.backend.xp.sqrt(float_array(x._data))
        return self.out

    def backward(self, g):
        y = self.x.sqrt() if is_grad_enabled() else _wrap(self.out, self.device)
        return g / (y * 2.0)


class Abs(Op):
    def forward(self, x):
        self.x = x
        return self.device.backend.xp.abs(x._data)

    def backward(self, g):
        return g * _wrap(self.device.backend.xp.sign(self.x._data), self.device)


class Sin(Op):
    def forward(self, x):
        self.x = x
        return self.device.backend.xp.sin(float_array(x._data))

    def backward(self, g):
        return g * self.x.cos()


class Cos(Op):
    def forward(self, x):
        self.x = x
        return self.device.backend.xp.cos(float_array(x._data))

    def backward(self, g):
        return -g * self.x.sin()


class Clamp(Op):
    def forward(self, x, lo, hi):
        self.x, self.lo, self.hi = x, lo, hi
        xp = self.device.backend.xp
        return xp.clip(x._data, value(lo), value(hi))

    def backward(self, g):
        x = self.x._data
        keep = True
        if self.lo is not None:
            keep = x >= value(self.lo)
        if self.hi is not None:
            keep = keep & (x <= value(self.hi))
        if keep is True:
            return g, None, None
        return where(keep, g, 0.0), None, None


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    for name, bound in (("min", min), ("max", max)):
        if isinstance(bound, Tensor) and bound.requires_grad:
            raise NotImplementedError(f"clamp: gradients with respect to a tensor {name} are not supported")
    return Clamp.apply(x, min, max)
