"""Shape ops: reshape/view, permute/transpose, expand, squeeze/unsqueeze, cat, stack."""
import math
import operator

from ..autograd import Op
from ..tensor import Tensor
from .elementwise import unbroadcast


def _shape_arg(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    try:
        return tuple([operator.index(s) for s in shape])
    except TypeError:
        raise TypeError(f"{op}: sizes must be ints, got {tuple(shape)!r}") from None


class Reshape(Op):
    def forward(self, x, shape):
        self.in_shape = x._data.shape
        try:
            return x._data.reshape(shape)
        except ValueError:
            raise RuntimeError(f"shape {list(shape)} is invalid for input of size {x._data.size} "
                               f"(input shape {tuple(self.in_shape)})") from None

    def backward(self, g):
        return g.reshape(self.in_shape), None


class Permute(Op):
    def forward(self, x, dims):
        self.dims = dims
        return x._data.transpose(dims)

    def backward(self, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return g.permute(*inverse), None


class Expand(Op):
    def forward(self, x, shape):
        self.in_shape = x._data.shape
        return self.device.backend.xp.broadcast_to(x._data, shape)

    def backward(self, g):
        return unbroadcast(g, self.in_shape), None


class Cat(Op):
    def forward(self, *tensors, dim):
        self.dim = dim
        self.sizes = [t._data.shape[dim] for t in tensors]
        return self.device.backend.xp.concatenate([t._data for t in tensors], axis=dim)

    def backward(self, g):
        grads, start = [], 0
        index = [slice(None)] * g.ndim
        for size, edge in zip(self.sizes, self.edges):
            if edge is None:
                grads.append(None)
            else:
                index[self.dim] = slice(start, start + size)
                grads.append(g[tuple(index)])
            start += size
        return tuple(grads)


def _check_dim(dim, ndim, op):
    if type(dim) is not int:
        try:
            dim = operator.index(dim)
        except TypeError:
            raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__} {dim!r}") from None
    if not -ndim <= dim < ndim:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions "
                         f"(expected to be in [{-ndim}, {ndim - 1}])")
    return dim % ndim


def reshape(x, *shape):
    shape = _shape_arg(shape, "reshape")
    if shape == x._data.shape:
        return x
    return Reshape.apply(x, shape)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s = _check_dim(start_dim, x.ndim, "flatten")
    e = _check_dim(end_dim, x.ndim, "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape
    return reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def permute(x, *dims):
    dims = _shape_arg(dims, "permute")
    n = x.ndim
    if len(dims) != n or any(not -n <= d < n for d in dims) or \
            sorted(d % n for d in dims) != list(range(n)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} "
                         f"dimensions of a tensor of shape {tuple(x.shape)}")
    dims = tuple(d % x.ndim for d in dims)
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims)


def transpose(x, dim0, dim1):
    if x.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    d0 = _check_dim(dim0, x.ndim, "transpose")
    d1 = _check_dim(dim1, x.ndim, "transpose")
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(x, *dims)


def unsqueeze(x, dim):
    nd = x.ndim + 1
    d = _check_dim(dim, nd, "unsqueeze")
    shape = x.shape
    return Reshape.apply(x, shape[:d] + (1,) + shape[d:])


def squeeze(x, dim=None):
    shape = x.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
        ds = {_check_dim(d, max(x.ndim, 1), "squeeze") for d in dims}
        new = tuple(s for i, s in enumerate(shape) if not (i in ds and s == 1))
    return x if new == shape else Reshape.apply(x, new)


def expand(x, *shape):
    shape = _shape_arg(shape, "expand")
    if len(shape) < x.ndim:
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({x.ndim})")
    lead = len(shape) - x.ndim
    for i, want in enumerate(shape):
        if want < 0 and (want != -1 or i < lead):
            raise RuntimeError(f"expand: the expanded size {want} is not allowed at dimension {i} "
                               f"(tensor shape {tuple(x.shape)}, requested {tuple(shape)}): sizes "
                               "must be non-negative, or -1 to keep an existing dimension")
    full = list(shape)
    for i, s in enumerate(x.shape):
        want = shape[lead + i]
        if want == -1:
            full[lead + i] = s
        elif s != want and s != 1:
            raise RuntimeError(f"expand: the expanded size {want} must match the existing size {s} "
                               f"at dimension {lead + i} (tensor shape {tuple(x.shape)}, "
                               f"requested {tuple(shape)})")
    full = tuple(full)
    if full == x.shape:
        return x
    return Expand.apply(x, full)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat: expected a sequence of Tensors, element {i} is {type(t).__name__}")
    ref = tensors[0]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: zero-dimensional tensor (at position {i}) cannot be "
                             "concatenated; use stack, or reshape it to (1,)")
    d = _check_dim(dim, ref.ndim, "cat")
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != d):
            raise ValueError(f"cat: tensors must have the same shape except in dimension {d}; "
                             f"got {tuple(ref.shape)} and {tuple(t.shape)}")
    dtypes = {t._data.dtype for t in tensors}
    if len(dtypes) > 1:
        target = max(dtypes, key=lambda dt: (dt.kind == "f", dt.itemsize))
        tensors = [t if t._data.dtype == target else t.to(target) for t in tensors]
    return Cat.apply(*tensors, dim=d)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    ref = tensors[0]
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"stack: expected a sequence of Tensors, element {i} is {type(t).__name__}")
        if t.shape != ref.shape:
            raise ValueError(f"stack: all tensors must have the same shape; got {tuple(ref.shape)} "
                             f"and {tuple(t.shape)} (element {i})")
    d = _check_dim(dim, ref.ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in tensors], dim=d)
