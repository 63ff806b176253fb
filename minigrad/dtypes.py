"""dtype objects: thin named wrappers over numpy dtypes, as PyTorch spells them."""
import numpy as np


class dtype:
    """A tensor element type (`mg.float32`, `mg.float64`, `mg.int64`, `mg.bool`)."""

    __slots__ = ("name", "np", "is_floating_point", "itemsize")

    def __init__(self, name, np_dtype, is_floating_point):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = is_floating_point
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"minigrad.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


float32 = dtype("float32", np.float32, True)
float64 = dtype("float64", np.float64, True)
int64 = dtype("int64", np.int64, False)
bool_ = dtype("bool", np.bool_, False)
float = float32  # noqa: A001  (PyTorch aliases)
double = float64
long = int64

_ALL = (float32, float64, int64, bool_)
_BY_NP = {d.np: d for d in _ALL}
_NAMES = {d.name: d for d in _ALL}
_NAMES.update({"float": float32, "double": float64, "long": int64, "bool_": bool_})


def _by_name(name):
    return _NAMES[name]


def from_numpy_dtype(np_dtype):
    """The minigrad dtype of a numpy dtype (only the four supported ones)."""
    try:
        return _BY_NP[np_dtype]
    except KeyError:
        raise TypeError(f"unsupported numpy dtype {np_dtype}; minigrad tensors are "
                        "float32, float64, int64 or bool") from None


def to_numpy_dtype(d):
    """Accepts a minigrad dtype, a numpy dtype/type, or a name; returns a numpy dtype."""
    if isinstance(d, dtype):
        return d.np
    if isinstance(d, str):
        if d in _NAMES:
            return _NAMES[d].np
        raise TypeError(f"unknown dtype name {d!r}; expected one of float32, float64, int64, bool")
    nd = np.dtype(d)
    if nd in _BY_NP:
        return nd
    raise TypeError(f"unsupported dtype {d!r}; minigrad tensors are float32, float64, int64 or bool")


def canonical_numpy_dtype(nd):
    """The supported dtype an arbitrary numpy dtype maps to (PyTorch's inference rules)."""
    if nd in _BY_NP:
        return nd
    if nd.kind in "iu":
        return int64.np
    if nd.kind == "f":
        return float32.np if nd.itemsize < 8 else float64.np
    if nd.kind == "b":
        return bool_.np
    raise TypeError(f"cannot make a tensor from numpy dtype {nd}: minigrad supports "
                    "float32, float64, int64 and bool")
