"""F.pad: constant, reflect, replicate and circular padding of the last dims.

`pad` lists (before, after) amounts starting from the LAST dim, as in
PyTorch: (left, right, top, bottom, ...). Padding is linear in the input
(the fill value aside), so each mode is a LinearMap with its adjoint:
- constant: the adjoint of padding by p is padding by -p (negative amounts
  crop), with fill 0;
- reflect/replicate/circular: each padded dim gathers along an index map;
  the adjoint adds every border position back onto the element it copied.
"""
import numbers

from ..tensor import Tensor
from .linear_map import linear_map

MODES = ("constant", "reflect", "replicate", "circular")


def _pairs(pad, ndim):
    """[(before, after), ...] for the trailing dims, in dim order."""
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, got {len(pad)} values {tuple(pad)}")
    if len(pad) // 2 > ndim:
        raise ValueError(f"pad: padding length {len(pad)} is too large for an input of {ndim} "
                         "dimensions (at most two values per dimension)")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    return pairs[::-1]


# ----------------------------------------------------------------- constant

def _constant_pad(xp, a, pairs, value):
    """a padded (or, for negative amounts, cropped) along its last len(pairs) dims."""
    lead = a.ndim - len(pairs)
    shape, src, dst = list(a.shape[:lead]), [slice(None)] * lead, [slice(None)] * lead
    for size, (before, after) in zip(a.shape[lead:], pairs):
        kept = size - max(-before, 0) - max(-after, 0)
        shape.append(size + before + after)
        src.append(slice(max(-before, 0), max(-before, 0) + max(kept, 0)))
        dst.append(slice(max(before, 0), max(before, 0) + max(kept, 0)))
    out = xp.full(shape, value, dtype=a.dtype) if value else xp.zeros(shape, dtype=a.dtype)
    out[tuple(dst)] = a[tuple(src)]
    return out


def _constant(x, pairs, value):
    xp = x.backend.xp
    for size, (before, after) in zip(x.shape[x.ndim - len(pairs):], pairs):
        if size + before + after < 0:
            raise ValueError(f"pad: input size {size} plus padding {before} and {after} gives a "
                             f"negative output size; got input of shape {tuple(x.shape)}")
    back = [(-b, -a) for b, a in pairs]

    def constant_pad(a):
        return _constant_pad(xp, a, pairs, 0)

    def crop(a):
        return _constant_pad(xp, a, back, 0)

    if not value:
        return linear_map(x, constant_pad, crop)

    def filled_pad(a):
        return _constant_pad(xp, a, pairs, value)
    return linear_map(x, filled_pad, crop, constant_pad)


# ----------------------------------------------------------------- index maps

def _source_index(mode, size, before, after):
    """For each output position along one dim, the input position it copies."""
    out = []
    for j in range(-before, size + after):
        if mode == "replicate":
            out.append(min(max(j, 0), size - 1))
        elif mode == "circular":
            out.append(j % size)
        else:  # reflect about the edge elements, which are not repeated
            period = 2 * (size - 1)
            j = abs(j) % period if period else 0
            out.append(j if j < size else period - j)
    return out


def _check_index_mode(x, pairs, mode):
    k = len(pairs)
    if not 1 <= k <= 3 or x.ndim not in (k + 1, k + 2):
        raise ValueError(f"pad: mode '{mode}' pads the last 1, 2 or 3 dims of an input with one or two "
                         f"more leading dims (e.g. 2 values for 2-D/3-D input, 4 for 3-D/4-D, 6 for "
                         f"4-D/5-D); got {2 * k} values for input of shape {tuple(x.shape)}")
    for size, (before, after) in zip(x.shape[x.ndim - k:], pairs):
        if before < 0 or after < 0:
            raise ValueError(f"pad: mode '{mode}' needs non-negative padding, got ({before}, {after})")
        if size == 0 and (before or after):
            raise ValueError(f"pad: mode '{mode}' cannot pad an empty dimension (input shape {tuple(x.shape)})")
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"pad: reflect padding ({before}, {after}) must be less than the "
                             f"dimension size {size} (input shape {tuple(x.shape)})")
        if mode == "circular" and max(before, after) > size:
            raise ValueError(f"pad: circular padding ({before}, {after}) must be at most the "
                             f"dimension size {size} (input shape {tuple(x.shape)})")


def _gather(xp, a, maps):
    for axis, index, _, _ in maps:
        a = xp.take(a, index, axis=axis)
    return a


def _scatter(xp, g, maps):
    """Adjoint of _gather: the interior maps one to one, border positions add
    onto their source (a loop over the few border positions, not pixels)."""
    for axis, index, size, before in reversed(maps):
        lead = (slice(None),) * axis
        out = g[lead + (slice(before, before + size),)].copy()
        for pos in (*range(before), *range(before + size, len(index))):
            out[lead + (index[pos],)] += g[lead + (pos,)]
        g = out
    return g


def _indexed(x, pairs, mode):
    _check_index_mode(x, pairs, mode)
    xp = x.backend.xp
    first = x.ndim - len(pairs)
    maps = []
    for axis, (size, (before, after)) in enumerate(zip(x.shape[first:], pairs), first):
        if before or after:
            index = _source_index(mode, size, before, after)
            maps.append((axis, index, size, before))
    if not maps:
        return x
    device_maps = [(axis, xp.asarray(index), size, before) for axis, index, size, before in maps]

    def index_pad(a):
        return _gather(xp, a, device_maps)

    def index_pad_adjoint(a):
        return _scatter(xp, a, maps)
    return linear_map(x, index_pad, index_pad_adjoint)


def pad(input, pad, mode="constant", value=None):  # noqa: A002  (PyTorch's argument names)
    """Pads the last len(pad) // 2 dims of input; pad = (left, right, top, bottom, ...).
    mode: 'constant' (fill `value`, default 0; negative amounts crop), 'reflect',
    'replicate' or 'circular'."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: expected a Tensor input, got {type(input).__name__}")
    pairs = _pairs(pad, input.ndim)
    if mode == "constant":
        return _constant(input, pairs, 0 if value is None else value)
    if mode not in MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if value not in (None, 0):
        raise ValueError(f"pad: padding mode '{mode}' does not take a fill value (got value={value})")
    if input._data.dtype.kind != "f":
        raise TypeError(f"pad: mode '{mode}' expects a floating point input, got {input.dtype}")
    return _indexed(input, pairs, mode)
