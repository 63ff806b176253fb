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
    if axes:
        g = g.sum(dim=axes, keepdim=False) if lead == len(axes) else g.sum(dim=axes, keepdim=True)
    if g._data.shape != shape:
        g = g.reshape(shape)
    return g


def _fix_int_promotion(out, a, b):
    """numpy promotes int/int division and int*float-scalar to float64; PyTorch gives
    the default float (float32) unless a float64 tensor took part."""
    if out.dtype == _F64:
        for x in (a, b):
            if isinstance(x, Tensor) and x._data.dtype == _F64:
                return out
            if isinstance(x, _np.ndarray) and x.dtype == _F64:
                return out
        return out.astype(_np.float32)
    return out


def _broadcast_error(name, a, b):
    return ValueError(f"{name}: shapes {tuple(shape_of(a))} and {tuple(shape_of(b))} cannot be "
                      "broadcast together (trailing dimensions must be equal or 1)")


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
        if out.dtype == _F64:
            out = _fix_int_promotion(out, a, b)
        return out


class Add(_Binary):
    def compute(self, a, b):
        return a + b

    def backward(self, g):
        return (unbroadcast(g, self.a._data.shape) if self.edges[0] is not None else None,
                unbroadcast(g, self.b._data.shape) if self.edges[1] is not None else None)


class Sub(_Binary):
    def compute(self, a, b):
        return a - b

    def backward(self, g):
        return (unbroadcast(g, self.a._data.shape) if self.edges[0] is not None else None,
                unbroadcast(-g, self.b._data.shape) if self.edges[1] is not None else None)


class Mul(_Binary):
    def compute(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        return (unbroadcast(g * b, a._data.shape) if self.edges[0] is not None else None,
                unbroadcast(g * a, b._data.shape) if self.edges[1] is not None else None)


class Div(_Binary):
    def compute(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.edges[0] is not None:
            ga = unbroadcast(g / b, a._data.shape)
        if self.edges[1] is not None:
            gb = unbroadcast(-g * a / (b * b), b._data.shape)
        return ga, gb


class Pow(_Binary):
    def compute(self, a, b):
        return a ** b

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.edges[0] is not None:
            if isinstance(b, Tensor):
                ga = unbroadcast(g * b * a ** (b - 1), a._data.shape)
            elif b == 0:
                ga = g * 0.0
            else:
                ga = g * (b * a ** (b - 1))
        if self.edges[1] is not None:
            out = a ** b
            if isinstance(a, Tensor):
                safe = where((a._data == 0) & (value(b) >= 0), 0.0, out * a.log())
                gb = unbroadcast(g * safe, b._data.shape)
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
        ga = unbroadcast(where(tie, g * 0.5, where(a_wins, g, 0.0)), node.a._data.shape)
    if node.edges[1] is not None:
        b_wins = ~(a_wins | tie)
        gb = unbroadcast(where(tie, g * 0.5, where(b_wins, g, 0.0)), node.b._data.shape)
    return ga, gb


class Where(Op):
    """where(cond, a, b); cond is a constant boolean array."""

    def forward(self, cond, a, b):
        self.cond = cond
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
            ga = unbroadcast(where(self.cond, g, 0.0), self.sa)
        if self.edges[2] is not None:
            gb = unbroadcast(where(self.cond, 0.0, g), self.sb)
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
        return -x._data

    def backward(self, g):
        return -g


class Exp(Op):
    def forward(self, x):
        self.x = x
        self.out = self.device.backend.xp.exp(x._data)
        return self.out

    def backward(self, g):
        y = self.x.exp() if is_grad_enabled() else _wrap(self.out, self.device)
        return g * y


class Log(Op):
    def forward(self, x):
        self.x = x
        return self.device.backend.xp.log(x._data)

    def backward(self, g):
        return g / self.x


class Sqrt(Op):
    def forward(self, x):
        self.x = x
        self.out = self.device.backend.xp.sqrt(x._data)
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
        return self.device.backend.xp.sin(x._data)

    def backward(self, g):
        return g * self.x.cos()


class Cos(Op):
    def forward(self, x):
        self.x = x
        return self.device.backend.xp.cos(x._data)

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
