"""The Tensor: a backend array plus autograd bookkeeping, and its operators.

Kept lean on purpose (`__slots__`, no per-op validation beyond what prevents a
wrong answer): per-op Python overhead is what small networks pay most.
"""
import math
import numbers
import operator

import numpy as np

from . import autograd
from . import dtypes as _dt
from .device import CPU, device as _device_cls, get_default_device

_F32 = np.dtype(np.float32)
_FLOAT_KINDS = "f"


class Tensor:
    """An n-dimensional array on a device, with reverse-mode autograd."""

    __slots__ = ("_data", "_device", "_node", "_out_idx", "requires_grad", "_grad", "_hooks",
                 "__weakref__")
    __array_priority__ = 1000
    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        t = tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        self._data, self._device = t._data, t._device
        self._node, self._out_idx, self._grad, self._hooks = None, 0, None, None
        self.requires_grad = t.requires_grad

    @staticmethod
    def _wrap(data, dev):
        t = _new(Tensor)
        t._data = data
        t._device = dev
        t._node = None
        t._out_idx = 0
        t.requires_grad = False
        t._grad = None
        t._hooks = None
        return t

    @staticmethod
    def _from_any(value, dtype=None, device=None):
        if isinstance(value, Tensor):
            return value
        return tensor(value, dtype=dtype, device=device)

    # -- attributes -------------------------------------------------------------
    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    ndimension = dim

    @property
    def dtype(self):
        return _dt._BY_NP[self._data.dtype]

    @property
    def device(self):
        return self._device

    @property
    def backend(self):
        return self._device.backend

    @property
    def is_cuda(self):
        return self._device.type == "cuda"

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has shape {tuple(value.shape)} but the tensor has "
                                   f"shape {tuple(self.shape)}")
            if value._device is not self._device:
                raise RuntimeError(f"assigned grad is on {value._device} but the tensor is on {self._device}")
            if value._data.dtype != self._data.dtype:
                raise TypeError(f"assigned grad has dtype {value.dtype} but the tensor has dtype "
                                f"{self.dtype}")
        self._grad = value

    @property
    def data(self):
        return Tensor._wrap(self._data, self._device)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be set to a Tensor, got {type(value).__name__}")
        self._data = value._data
        self._device = value._device

    def size(self, dim=None):
        if dim is None:
            return self._data.shape
        return self._data.shape[dim]

    def numel(self):
        return self._data.size

    def element_size(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return self._data.nbytes

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def is_contiguous(self):
        return bool(self._data.flags.c_contiguous)

    # -- conversion -------------------------------------------------------------
    def numpy(self):
        if self._device.type != "cpu":
            raise TypeError(f"can't convert a {self._device} tensor to numpy: call .cpu() first "
                            "to copy it to host memory")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a Tensor that requires grad: use "
                               "tensor.detach().numpy() instead")
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self._device.backend.to_host(self._data)
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"only one element tensors can be converted to Python scalars; this one "
                             f"has shape {tuple(self.shape)} ({self._data.size} elements)")
        return self._device.backend.to_host(self._data).reshape(()).item()

    def tolist(self):
        return self._device.backend.to_host(self._data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous "
                               f"(shape {tuple(self.shape)}); use .any() or .all()")
        return bool(self.item())

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __format__(self, spec):
        if self._data.ndim == 0 or self._data.size == 1 and spec:
            return format(self.item(), spec)
        return format(repr(self), spec)

    __hash__ = object.__hash__

    def __repr__(self):
        from .printing import tensor_repr
        return tensor_repr(self)

    def __deepcopy__(self, memo):
        out = Tensor._wrap(self._data.copy(), self._device)
        out.requires_grad = self.requires_grad
        if self._grad is not None:
            out._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = out
        return out

    def __reduce__(self):
        raise TypeError("minigrad tensors are not picklable: save them with mg.save(...) "
                        "(safetensors format)")

    # -- autograd ---------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        autograd.backward(self, gradient, retain_graph, create_graph)

    def detach(self):
        return Tensor._wrap(self._data, self._device)

    def detach_(self):
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got {self.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("requires_grad_(False) is only valid on leaf tensors; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        if self._node is None:
            return
        import weakref
        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                t._grad = g if t._grad is None else t._grad + g
        self.register_hook(keep)

    def register_hook(self, hook):
        """Calls `hook(grad)` when this tensor's gradient is computed; a non-None
        return value replaces the gradient. Returns a handle with .remove()."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._node is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            node = self._node
            table = node.__dict__.setdefault("output_hooks", {})
            hooks = table.setdefault(self._out_idx, [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    # -- in-place (no graph; refused where it would corrupt a recorded graph) ----
    def _check_inplace(self, op):
        if autograd._state.enabled and (self.requires_grad or self._node is not None):
            if self._node is None:
                raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an "
                                   "in-place operation; wrap it in `with mg.no_grad():`")
            raise RuntimeError(f"{op}: in-place operations on tensors that are part of a graph are "
                               "not supported; use the out-of-place form")

    def _inplace_value(self, other):
        if isinstance(other, Tensor):
            if other._device is not self._device:
                raise RuntimeError(f"in-place op: expected a tensor on {self._device}, got {other._device}")
            return other._data
        if isinstance(other, (numbers.Number, np.bool_)):
            return other
        return self._device.backend.xp.asarray(np.asarray(other))

    def _inplace_failure(self, op, value, err):
        """The error for an in-place update numpy refused: the result must keep
        this tensor's shape and dtype."""
        shape = tuple(getattr(value, "shape", ()))
        if not broadcasts_to(shape, self._data.shape):
            return RuntimeError(f"{op}: an operand of shape {shape} can't be broadcast to the "
                                f"tensor's shape {tuple(self.shape)} (an in-place result keeps the "
                                "tensor's shape)")
        given = value.dtype if hasattr(value, "dtype") else type(value).__name__
        return RuntimeError(f"{op}: the result can't be cast to the tensor's dtype {self.dtype} "
                            f"(operand: {given}); convert first with .to(dtype) or use the "
                            "out-of-place form")

    def copy_(self, src):
        self._check_inplace("copy_")
        value = src._data if isinstance(src, Tensor) else self._inplace_value(src)
        if isinstance(src, Tensor) and src._device is not self._device:
            value = self._device.backend.from_host(src._device.backend.to_host(src._data))
        try:
            self._data[...] = value
        except ValueError:
            raise RuntimeError(f"copy_: source of shape {tuple(getattr(value, 'shape', ()))} cannot be "
                               f"broadcast to the destination shape {tuple(self.shape)}") from None
        return self

    def zero_(self):
        self._check_inplace("zero_")
        self._data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        v = self._inplace_value(value)
        try:
            self._data[...] = v
        except (ValueError, TypeError) as e:
            raise self._inplace_failure("fill_", v, e) from None
        return self

    def add_(self, other, alpha=1):
        self._check_inplace("add_")
        v = self._inplace_value(other)
        if alpha != 1:
            v = v * alpha
        try:
            self._data += v
        except (ValueError, TypeError) as e:
            raise self._inplace_failure("add_", v, e) from None
        return self

    def sub_(self, other, alpha=1):
        return self.add_(other, alpha=-alpha)

    def mul_(self, other):
        self._check_inplace("mul_")
        v = self._inplace_value(other)
        try:
            self._data *= v
        except (ValueError, TypeError) as e:
            raise self._inplace_failure("mul_", v, e) from None
        return self

    def div_(self, other):
        self._check_inplace("div_")
        v = self._inplace_value(other)
        try:
            self._data /= v
        except (ValueError, TypeError) as e:
            raise self._inplace_failure("div_", v, e) from None
        return self

    def clamp_(self, min=None, max=None):
        self._check_inplace("clamp_")
        xp = self._device.backend.xp
        try:
            xp.clip(self._data, min, max, out=self._data)
        except (ValueError, TypeError) as e:
            raise self._inplace_failure("clamp_", min if max is None else max, e) from None
        return self

    def uniform_(self, a=0.0, b=1.0):
        self._check_inplace("uniform_")
        from .random import draw
        self._data[...] = draw(self._device, "uniform", self._data.shape, self._data.dtype, a, b)
        return self

    def normal_(self, mean=0.0, std=1.0):
        self._check_inplace("normal_")
        from .random import draw
        self._data[...] = draw(self._device, "normal", self._data.shape, self._data.dtype, mean, std)
        return self

    def __setitem__(self, index, value):
        self._check_inplace("index assignment")
        from .ops.indexing import convert_index
        idx, _ = convert_index(index, self._device)
        v = self._inplace_value(value)
        try:
            self._data[idx] = v
        except IndexError as e:
            raise IndexError(f"index assignment: index {index!r} is invalid for a tensor of shape "
                             f"{tuple(self.shape)}: {e}") from None
        except (ValueError, TypeError) as e:
            raise self._inplace_failure("index assignment", v, e) from None

    # -- device and dtype -------------------------------------------------------
    def to(self, *args, **kwargs):
        """`.to(device)`, `.to(dtype)`, `.to(device, dtype)` or keywords, as in PyTorch."""
        dev, dtype = _parse_to_args(args, kwargs)
        out = self
        if dtype is not None:
            nd = _dt.to_numpy_dtype(dtype)
            if nd != out._data.dtype:
                out = Cast.apply(out, nd)
        if dev is not None and dev is not out._device:
            out = ToDevice.apply(out, dev)
        return out

    def cpu(self):
        return self.to(CPU)

    def cuda(self, device=None):
        return self.to(_device_cls("cuda" if device is None else
                                   device if isinstance(device, (str, _device_cls)) else f"cuda:{device}"))

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def long(self):
        return self.to(_dt.int64)

    def bool(self):
        return self.to(_dt.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def clone(self):
        return Clone.apply(self)

    def contiguous(self):
        if self._data.flags.c_contiguous:
            return self
        return Clone.apply(self)

    # -- operators (bound to ops at the end of this module) ---------------------
    def __neg__(self):
        return Neg.apply(self)

    def __pos__(self):
        return self

    def __add__(self, other):
        return Add.apply(self, _operand(other, self))

    def __radd__(self, other):
        return Add.apply(_operand(other, self), self)

    def __sub__(self, other):
        return Sub.apply(self, _operand(other, self))

    def __rsub__(self, other):
        return Sub.apply(_operand(other, self), self)

    def __mul__(self, other):
        return Mul.apply(self, _operand(other, self))

    def __rmul__(self, other):
        return Mul.apply(_operand(other, self), self)

    def __truediv__(self, other):
        return Div.apply(self, _operand(other, self))

    def __rtruediv__(self, other):
        return Div.apply(_operand(other, self), self)

    def __pow__(self, other):
        return Pow.apply(self, _operand(other, self))

    def __rpow__(self, other):
        return Pow.apply(_operand(other, self), self)

    def __matmul__(self, other):
        return MatMul.apply(self, _operand(other, self, scalars=False))

    def __rmatmul__(self, other):
        return MatMul.apply(_operand(other, self, scalars=False), self)

    def __abs__(self):
        return Abs.apply(self)

    def _compare(self, other, fn):
        o = _operand(other, self)
        sd, od = self._data, o
        if isinstance(o, Tensor):
            if o._device is not self._device:
                raise RuntimeError(f"comparison: expected both tensors on the same device, got "
                                   f"{self._device} and {o._device}")
            od = o._data
            if od.dtype != sd.dtype:
                sd, od = _comparison_operands(sd, od)
        try:
            return Tensor._wrap(fn(sd, od), self._device)
        except ValueError:
            raise ValueError(f"comparison: shapes {tuple(self.shape)} and "
                             f"{tuple(getattr(o, 'shape', ()))} cannot be broadcast together") from None
        except TypeError:
            raise TypeError(f"comparison or logical op: not supported between {self.dtype} and "
                            f"{o.dtype if isinstance(o, Tensor) else type(o).__name__}") from None

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __invert__(self):
        if self._data.dtype.kind != "b":
            raise TypeError(f"~ is only defined for bool tensors here, got {self.dtype}")
        return Tensor._wrap(~self._data, self._device)

    def __and__(self, other):
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other):
        return self._compare(other, lambda a, b: a | b)

    def __getitem__(self, index):
        return getitem(self, index)

    # -- math methods -----------------------------------------------------------
    def add(self, other, alpha=1):
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        return self - (other * alpha if alpha != 1 else other)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    mm = matmul

    def neg(self):
        return Neg.apply(self)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def rsqrt(self):
        return 1.0 / Sqrt.apply(self)

    def square(self):
        return self * self

    def abs(self):
        return Abs.apply(self)

    def sin(self):
        return Sin.apply(self)

    def cos(self):
        return Cos.apply(self)

    def tanh(self):
        return activation(self, "tanh")

    def sigmoid(self):
        return activation(self, "sigmoid")

    def relu(self):
        return activation(self, "relu")

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return Maximum.apply(self, _operand(other, self))

    def minimum(self, other):
        return Minimum.apply(self, _operand(other, self))

    def sum(self, dim=None, keepdim=False, **kw):
        return _reduce.sum(self, dim, keepdim, **kw)

    def mean(self, dim=None, keepdim=False, **kw):
        return _reduce.mean(self, dim, keepdim, **kw)

    def var(self, dim=None, unbiased=None, keepdim=False, **kw):
        return _reduce.var(self, dim, unbiased, keepdim, **kw)

    def std(self, dim=None, unbiased=None, keepdim=False, **kw):
        return _reduce.std(self, dim, unbiased, keepdim, **kw)

    def amax(self, dim=None, keepdim=False, **kw):
        return _reduce.amax(self, dim, keepdim, **kw)

    def amin(self, dim=None, keepdim=False, **kw):
        return _reduce.amin(self, dim, keepdim, **kw)

    def max(self, dim=None, keepdim=False, **kw):
        return _reduce.max(self, dim, keepdim, **kw)

    def min(self, dim=None, keepdim=False, **kw):
        return _reduce.min(self, dim, keepdim, **kw)

    def argmax(self, dim=None, keepdim=False, **kw):
        return _reduce.argmax(self, dim, keepdim, **kw)

    def argmin(self, dim=None, keepdim=False, **kw):
        return _reduce.argmin(self, dim, keepdim, **kw)

    def logsumexp(self, dim=None, keepdim=False, **kw):
        return _reduce.logsumexp(self, dim, keepdim, **kw)

    def softmax(self, dim):
        from .nn import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim):
        from .nn import functional as F
        return F.log_softmax(self, dim)

    def all(self):
        return Tensor._wrap(self._device.backend.xp.asarray(self._data.all()), self._device)

    def any(self):
        return Tensor._wrap(self._device.backend.xp.asarray(self._data.any()), self._device)

    # -- shape methods ----------------------------------------------------------
    def reshape(self, *shape):
        return _shape.reshape(self, *shape)

    view = reshape

    def view_as(self, other):
        return _shape.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _shape.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        return _shape.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return _shape.transpose(self, dim0, dim1)

    @property
    def T(self):
        return _shape.permute(self, *reversed(range(self.ndim))) if self.ndim > 1 else self

    @property
    def mT(self):
        return _shape.transpose(self, -2, -1)

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got {self.ndim}")
        return self.T

    def unsqueeze(self, dim):
        return _shape.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return _shape.squeeze(self, dim)

    def expand(self, *shape):
        return _shape.expand(self, *shape)

    def expand_as(self, other):
        return _shape.expand(self, other.shape)


_new = object.__new__


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def broadcasts_to(shape, target):
    """Whether an array of `shape` broadcasts to `target` without enlarging it."""
    return len(shape) <= len(target) and all(
        s in (1, t) for s, t in zip(reversed(shape), reversed(target)))


def _comparison_operands(a, b):
    """PyTorch compares float tensors in their result dtype: a 0-d float64 beside a
    float32 tensor with dims is compared as float32 (numpy would widen)."""
    if a.dtype.kind == b.dtype.kind == "f":
        if a.ndim == 0 and b.ndim:
            return a.astype(b.dtype), b
        if b.ndim == 0 and a.ndim:
            return a, b.astype(a.dtype)
    return a, b


def _operand(other, like, scalars=True):
    """Python scalars pass through (numpy's weak scalar promotion keeps the
    tensor's dtype); numpy arrays and lists become tensors on `like`'s device."""
    if isinstance(other, Tensor):
        return other
    if scalars and isinstance(other, (int, float, bool, np.number, np.bool_)):
        return other
    if isinstance(other, (np.ndarray, list, tuple, numbers.Number, np.generic)):
        return tensor(other, device=like._device)
    raise TypeError(f"unsupported operand type for a Tensor operation: {type(other).__name__}")


def _parse_to_args(args, kwargs):
    dev = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("copy", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, (_dt.dtype, np.dtype)) or (isinstance(a, type) and issubclass(a, np.generic)):
            dtype = a
        elif isinstance(a, (str, _device_cls)):
            dev = a
        elif isinstance(a, Tensor):
            dev, dtype = a._device, a._data.dtype
        else:
            raise TypeError(f"to() expects a device, a dtype or a tensor, got {a!r}")
    return (None if dev is None else _device_cls(dev)), dtype


# -- factories ----------------------------------------------------------------

def _infer_numpy(data):
    """numpy array for `data` following PyTorch's inference (floats -> float32)."""
    if isinstance(data, np.ndarray):
        arr = data
        nd = _dt.canonical_numpy_dtype(arr.dtype)
        return arr.astype(nd) if nd != arr.dtype else arr.copy()
    arr = _array_from_data(data)
    if arr.dtype.kind == "f":
        return arr.astype(_F32)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr


def _array_from_data(data):
    """The numpy array of a scalar or (nested) sequence of numbers; anything else
    is refused with the reason (numpy would make an object or string array)."""
    if _holds_tensors(data):
        data = _lists_from_tensors(data)
    try:
        arr = np.asarray(data)
    except ValueError:
        raise ValueError("tensor(): nested sequences must be rectangular (every list at one "
                         "depth of the same length) to make a tensor") from None
    if arr.dtype.kind not in "biuf":
        items = list(_flat_items(data)) if isinstance(data, (list, tuple)) else [data]
        bad = next((x for x in items if not isinstance(x, (numbers.Number, np.generic))), data)
        what = "nested sequences of unequal length" if isinstance(bad, (list, tuple)) else \
            f"an element of type {type(bad).__name__}"
        raise TypeError(f"tensor(): could not make a tensor from {what}; expected a number, a "
                        "(nested) list or tuple of numbers, a numpy array or a Tensor")
    return arr


def _holds_tensors(data):
    return isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in _flat_items(data))


def _flat_items(seq):
    for item in seq:
        if isinstance(item, (list, tuple)):
            yield from _flat_items(item)
        else:
            yield item


def _lists_from_tensors(seq):
    return [(_lists_from_tensors(s) if isinstance(s, (list, tuple)) else
             (s.tolist() if isinstance(s, Tensor) else s)) for s in seq]


def _place(arr, dev):
    if dev is CPU:
        return arr
    return dev.backend.from_host(arr)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (list, scalar, numpy array or Tensor)."""
    dev = get_default_device() if device is None else _device_cls(device)
    if isinstance(data, Tensor):
        src = data._device.backend.to_host(data._data) if data._device is not dev else None
        arr = data._data.copy() if src is None else src.copy()
        if src is not None:
            arr = _place(arr, dev)
        if dtype is not None:
            arr = arr.astype(_dt.to_numpy_dtype(dtype))
    else:
        if dtype is not None and not isinstance(data, np.ndarray):
            # convert straight to the requested dtype: no detour through float32
            arr = _array_from_data(data).astype(_dt.to_numpy_dtype(dtype))
        else:
            arr = _infer_numpy(data)
            if dtype is not None:
                arr = arr.astype(_dt.to_numpy_dtype(dtype), copy=False)
        arr = _place(arr, dev)
    t = Tensor._wrap(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(array):
    """A CPU tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if array.dtype not in _dt._BY_NP:
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype}; supported: float32, float64, "
                        "int64, bool (convert with array.astype first)")
    return Tensor._wrap(array, CPU)


def _factory(dev, dtype, requires_grad, make, default=_F32):
    dev = get_default_device() if dev is None else _device_cls(dev)
    nd = default if dtype is None else _dt.to_numpy_dtype(dtype)
    t = Tensor._wrap(make(dev, nd), dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _shape_args(shape, fn):
    """A tuple of non-negative ints from `*size` or a single sequence; floats are
    refused rather than truncated (PyTorch's rule)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    try:
        out = tuple([operator.index(s) for s in shape])
    except TypeError:
        bad = next(s for s in shape if not hasattr(type(s), "__index__"))
        raise TypeError(f"{fn}(): argument 'size' must be a sequence of ints, but found element "
                        f"{bad!r} of type {type(bad).__name__}") from None
    if any(s < 0 for s in out):
        raise ValueError(f"{fn}(): argument 'size' has a negative dimension: {out}")
    return out


def _size_arg(size, fn):
    """`size` given as one int or a sequence of ints."""
    return _shape_args(tuple(size) if isinstance(size, (tuple, list)) else (size,), fn)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    shape = _shape_args(shape, "zeros")
    return _factory(device, dtype, requires_grad, lambda d, nd: d.backend.xp.zeros(shape, nd))


def ones(*shape, dtype=None, device=None, requires_grad=False):
    shape = _shape_args(shape, "ones")
    return _factory(device, dtype, requires_grad, lambda d, nd: d.backend.xp.ones(shape, nd))


def empty(*shape, dtype=None, device=None, requires_grad=False):
    shape = _shape_args(shape, "empty")
    return _factory(device, dtype, requires_grad, lambda d, nd: d.backend.xp.empty(shape, nd))


def _fill_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    return _F32


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    shape = _size_arg(shape, "full")
    return _factory(device, dtype, requires_grad,
                    lambda d, nd: d.backend.xp.full(shape, fill_value, nd), _fill_dtype(fill_value))


def _check_finite_numbers(fn, **values):
    """Factory bounds must be finite real numbers (numpy's own errors say neither
    which function nor which argument)."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{fn}(): argument '{name}' must be a real number, got "
                            f"{type(v).__name__}")
        if not math.isfinite(v):
            raise ValueError(f"{fn}(): argument '{name}' must be finite, got {v}")


def _count_arg(fn, name, n):
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        raise TypeError(f"{fn}(): argument '{name}' must be an int, got {type(n).__name__}")
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"{fn}(): argument '{name}' must be non-negative, got {n}")
    return n


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    n = _count_arg("eye", "n", n)
    m = n if m is None else _count_arg("eye", "m", m)
    return _factory(device, dtype, requires_grad, lambda d, nd: d.backend.xp.eye(n, m, dtype=nd))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    _check_finite_numbers("arange", start=start, end=end, step=step)
    is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    if step == 0:
        raise ValueError("arange(): argument 'step' must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange(): upper bound and lower bound inconsistent with step sign: "
                         f"start={start}, end={end}, step={step}")
    return _factory(device, dtype, requires_grad,
                    lambda d, nd: d.backend.xp.arange(start, end, step).astype(nd),
                    np.dtype(np.int64) if is_int else _F32)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    _check_finite_numbers("linspace", start=start, end=end)
    steps = _count_arg("linspace", "steps", steps)
    return _factory(device, dtype, requires_grad,
                    lambda d, nd: d.backend.xp.linspace(start, end, steps).astype(nd))


def _random(kind, shape, dtype, device, requires_grad, a=0.0, b=1.0):
    from .random import draw
    shape = _shape_args(shape, "randn" if kind == "normal" else "rand")
    return _factory(device, dtype, requires_grad, lambda d, nd: draw(d, kind, shape, nd, a, b))


def randn(*shape, dtype=None, device=None, requires_grad=False):
    return _random("normal", shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    return _random("uniform", shape, dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    if high is None:
        low, high = 0, low
    from .random import draw
    _check_finite_numbers("randint", low=low, high=high)
    if not low < high:
        raise ValueError(f"randint(): expected low < high, got low={low} and high={high}")
    shape = _size_arg(size, "randint")
    return _factory(device, dtype, False, lambda d, nd: draw(d, "integers", shape, nd, low, high),
                    np.dtype(np.int64))


def randperm(n, dtype=None, device=None):
    from .random import draw
    n = _count_arg("randperm", "n", n)
    return _factory(device, dtype, False, lambda d, nd: draw(d, "permutation", (n,), nd),
                    np.dtype(np.int64))


def _like(fn, t, dtype, device, requires_grad, **kw):
    return fn(*t.shape, dtype=dtype if dtype is not None else t._data.dtype,
              device=device if device is not None else t._device, requires_grad=requires_grad, **kw)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(ones, t, dtype, device, requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return _like(empty, t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return _like(randn, t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return _like(rand, t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype if dtype is not None else t._data.dtype,
                device=device if device is not None else t._device, requires_grad=requires_grad)


autograd.Tensor = Tensor

# ops are defined on top of Tensor: bind them last
from .autograd import Op as _Op  # noqa: E402


class Cast(_Op):
    def forward(self, x, nd):
        self.src = x._data.dtype
        return x._data.astype(nd)

    def backward(self, g):
        return (g.to(self.src) if self.src.kind == "f" else None), None


class ToDevice(_Op):
    def forward(self, x, dev):
        self.src = x._device
        host = x._device.backend.to_host(x._data)
        out = dev.backend.from_host(host)
        self.device_out = dev
        return out

    @classmethod
    def apply(cls, x, dev):
        out = super().apply(x, dev)
        out._device = dev
        return out

    def backward(self, g):
        return g.to(self.src), None


class Clone(_Op):
    def forward(self, x):
        return x._data.copy()

    def backward(self, g):
        return g


from .ops.elementwise import (Abs, Add, Cos, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow,  # noqa: E402
                              Sin, Sqrt, Sub, clamp)
from .ops.matmul import MatMul  # noqa: E402
from .ops.indexing import getitem  # noqa: E402
from .ops import reduce as _reduce  # noqa: E402
from .ops import shape as _shape  # noqa: E402
from .ops.activation import activation  # noqa: E402
