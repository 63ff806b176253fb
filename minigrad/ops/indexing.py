"""Indexing: ints, slices, None, Ellipsis, integer arrays and boolean masks.
Repeated integer indices accumulate their gradients."""
import numpy as _np

from ..autograd import Op
from ..tensor import Tensor


def convert_index(index, device):
    """Turns a user index into one numpy/cupy understands; tells whether it holds
    integer arrays (which may repeat, so the backward must accumulate)."""
    items = index if isinstance(index, tuple) else (index,)
    out, has_int_array = [], False
    xp = device.backend.xp
    for item in items:
        if isinstance(item, Tensor):
            if item._device is not device:
                raise RuntimeError(f"indexing: the index is on {item._device} but the tensor is on "
                                   f"{device}; move the index with .to()")
            kind = item._data.dtype.kind
            if kind not in "biu":
                raise IndexError(f"tensors used as indices must be long (int64) or bool, got {item.dtype}")
            has_int_array |= kind != "b"
            out.append(item._data)
        elif isinstance(item, (list, _np.ndarray)):
            arr = _np.asarray(item)
            if arr.size == 0:
                arr = arr.astype(_np.int64)
            if arr.dtype.kind not in "biu":
                raise IndexError(f"arrays used as indices must be integer or bool, got {arr.dtype}")
            has_int_array |= arr.dtype.kind != "b"
            out.append(xp.asarray(arr))
        elif item is None or item is Ellipsis or isinstance(item, (slice, int, _np.integer)):
            out.append(item)
        else:
            raise IndexError(f"unsupported index of type {type(item).__name__}: use ints, slices, None, "
                             "Ellipsis, integer/bool tensors or lists")
    return tuple(out), has_int_array


def _index_error(shape, index, err):
    return IndexError(f"index {index!r} is invalid for a tensor of shape {tuple(shape)}: {err}")


class GetItem(Op):
    def forward(self, x, index, accumulate):
        self.shape, self.index, self.accumulate = x._data.shape, index, accumulate
        self.dtype = x._data.dtype
        try:
            return x._data[index]
        except IndexError as e:
            raise _index_error(x._data.shape, index, e) from None

    def backward(self, g):
        return IndexAccumulate.apply(g, self.shape, self.index, self.accumulate), None, None


class IndexAccumulate(Op):
    """Scatters `g` into zeros of `shape` at `index`, adding at repeated positions.
    Its own backward is indexing, so it is differentiable."""

    def forward(self, g, shape, index, accumulate):
        self.index, self.accumulate = index, accumulate
        xp = self.device.backend.xp
        data = g._data
        if not accumulate:
            out = xp.zeros(shape, data.dtype)
            out[index] = data
            return out
        size = 1
        for s in shape:
            size *= s
        positions = xp.arange(size).reshape(shape)[index]
        summed = xp.bincount(positions.ravel(), weights=xp.broadcast_to(data, positions.shape).ravel(),
                             minlength=size)
        return summed.astype(data.dtype, copy=False).reshape(shape)

    def backward(self, gg):
        return GetItem.apply(gg, self.index, self.accumulate), None, None, None


def getitem(x, index):
    idx, has_int_array = convert_index(index, x._device)
    return GetItem.apply(x, idx, has_int_array)
