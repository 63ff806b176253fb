"""`nn.Parameter`: a leaf tensor that a Module registers as one of its parameters."""
from ..tensor import Tensor, empty


class Parameter(Tensor):
    """A tensor that is a module parameter. It shares the data of the tensor it
    wraps, is always a leaf, and requires grad unless told otherwise."""

    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor, got {type(data).__name__}")
        p = object.__new__(cls)
        p._data = data._data
        p._device = data._device
        p._node = None
        p._out_idx = 0
        p.requires_grad = False
        p._grad = None
        p._hooks = None
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad=True):
        pass  # everything happens in __new__ (Tensor.__init__ would copy the data)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
