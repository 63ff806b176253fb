"""2-d pooling: max, average, adaptive average and adaptive max.

Max pooling records the position of each window's maximum (the first one on
ties, NaN winning, as PyTorch); backward routes each output gradient to
exactly that input. Average pooling, adaptive or not, is linear in its input,
so it is a LinearMap of the backend's forward kernel and its adjoint (the
backward kernel). Inputs are (N, C, H, W) or unbatched (C, H, W).
"""
from ..autograd import Op, is_grad_enabled
from ..backend.reference.conv import adaptive_bounds, pool_bounds
from ..tensor import Tensor
from .linear_map import linear_map
from .window import check_image_input, check_non_negative, check_positive, pair, pool_out_size, with_batch_dim

_wrap = Tensor._wrap


class PoolParams:
    """Validated kernel_size/stride/padding/dilation/ceil_mode of a 2-d pooling."""

    __slots__ = ("kernel", "stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, op="max_pool2d"):
        self.kernel = pair(kernel_size, "kernel_size", op)
        # stride=None (or an empty list, as PyTorch's functional form allows) means kernel_size
        self.stride = self.kernel if stride is None or stride == [] or stride == () else pair(stride, "stride", op)
        self.padding = pair(padding, "padding", op)
        self.dilation = pair(dilation, "dilation", op)
        self.ceil_mode = bool(ceil_mode)
        check_positive(self.kernel, "kernel_size", op)
        check_positive(self.stride, "stride", op)
        check_positive(self.dilation, "dilation", op)
        check_non_negative(self.padding, "padding", op)
        # PyTorch's rule: half the kernel size, rounded down, whatever the dilation
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel)):
            raise ValueError(f"{op}: padding should be at most half of the kernel size, but got "
                             f"padding={self.padding} and kernel_size={self.kernel}")

    def window(self, x_shape, op):
        """The kernels' geometry tuple (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)."""
        h, w = x_shape[-2:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        oh = pool_out_size(h, kh, sh, ph, dh, self.ceil_mode)
        ow = pool_out_size(w, kw, sw, pw, dw, self.ceil_mode)
        if oh < 1 or ow < 1:
            raise ValueError(f"{op}: given input of shape {tuple(x_shape)}, the calculated output size "
                             f"({oh} x {ow}) is too small (kernel_size={self.kernel}, stride={self.stride}, "
                             f"padding={self.padding}, dilation={self.dilation})")
        return kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


# ----------------------------------------------------------------- max pooling

def _gather_at(xp, a, indices):
    """a (N, C, H, W) read at flat plane positions indices (N, C, oh, ow);
    positions outside the plane read 0. The adjoint of max_pool2d_backward."""
    n, c, h, w = a.shape
    flat = indices.reshape(n * c, -1)
    inside = (flat >= 0) & (flat < h * w)
    out = xp.take_along_axis(a.reshape(n * c, h * w), xp.where(inside, flat, 0), axis=1)
    return xp.where(inside, out, 0).reshape(indices.shape)


def _route_map(g, backend, indices, h, w, window):
    """max_pool2d_backward of g as a differentiable op (for create_graph)."""
    def max_pool_route(a):
        return backend.max_pool2d_backward(a, indices, h, w, window=window)

    def max_pool_gather(a):
        return _gather_at(backend.xp, a, indices)
    return linear_map(g, max_pool_route, max_pool_gather)


class MaxPool(Op):
    """y = x at the recorded maxima; `find(array) -> (values, int64 indices)`.
    `window` is find's geometry tuple when its windows are max_pool2d_forward's
    (the backward kernel may gather with it), else None."""

    def forward(self, x, find, with_indices, window=None):
        y, self.indices = find(x._data)
        self.in_hw = x._data.shape[2:]
        self.window = window
        return (y, self.indices) if with_indices else y

    def backward(self, g, *index_grad):
        backend = self.device.backend
        h, w = self.in_hw
        if is_grad_enabled():
            return _route_map(g, backend, self.indices, h, w, self.window), None, None, None
        dx = backend.max_pool2d_backward(g._data, self.indices, h, w, window=self.window)
        return _wrap(dx, self.device), None, None, None

    @property
    def name(self):
        return "MaxPool2d"


def max_pool2d_with(input, params, return_indices=False, op="max_pool2d"):  # noqa: A002
    """max_pool2d with already validated parameters (what MaxPool2d layers call)."""
    check_image_input(input, op)
    if input.ndim == 3:
        return with_batch_dim(input, lambda x: max_pool2d_with(x, params, return_indices, op))
    backend, args = input.backend, params.window(input.shape, op)

    def find(a):
        return backend.max_pool2d_forward(a, *args)
    return MaxPool.apply(input, find, return_indices, args)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """Max over sliding windows; padding counts as -inf. With return_indices,
    also the flat position h*W + w of each maximum in its plane."""
    params = PoolParams(kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    return max_pool2d_with(input, params, return_indices)


# ----------------------------------------------------------------- average pooling

def _divisor_scale(xp, dtype, args, h, w, divisor_override):
    """(oh, ow) factors turning count_include_pad averages into sums / divisor_override."""
    kh, kw, sh, sw, ph, pw, _, _, oh, ow = args
    rows = pool_bounds(xp, oh, h, kh, sh, ph, True)[2]
    cols = pool_bounds(xp, ow, w, kw, sw, pw, True)[2]
    return (rows[:, None] * cols[None, :]).astype(dtype) / divisor_override


def avg_pool2d_with(input, params, count_include_pad=True, divisor_override=None,  # noqa: A002
                    op="avg_pool2d"):
    """avg_pool2d with already validated parameters (what AvgPool2d layers call)."""
    check_image_input(input, op)
    if input.ndim == 3:
        return with_batch_dim(input, lambda x: avg_pool2d_with(x, params, count_include_pad,
                                                               divisor_override, op))
    backend = input.backend
    h, w = input.shape[2:]
    kh, kw, sh, sw, ph, pw, _, _, oh, ow = args = params.window(input.shape, op)
    include = bool(count_include_pad) or divisor_override is not None
    scale = None
    if divisor_override is not None:
        scale = _divisor_scale(backend.xp, input._data.dtype, args, h, w, divisor_override)

    def avg_pool(a):
        y = backend.avg_pool2d_forward(a, kh, kw, sh, sw, ph, pw, oh, ow, include)
        return y if scale is None else y * scale

    def avg_pool_adjoint(g):
        g = g if scale is None else g * scale
        return backend.avg_pool2d_backward(g, h, w, kh, kw, sh, sw, ph, pw, oh, ow, include)
    return linear_map(input, avg_pool, avg_pool_adjoint)


def check_divisor_override(divisor_override, op):
    if divisor_override is not None and (isinstance(divisor_override, bool)
                                         or not isinstance(divisor_override, int) or divisor_override == 0):
        raise ValueError(f"{op}: divisor_override must be a nonzero int or None, got {divisor_override!r}")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,  # noqa: A002
               count_include_pad=True, divisor_override=None):
    """Mean over sliding windows, padding counting as zeros. The divisor is the
    window clipped to the padded input (count_include_pad=True) or to the input
    (False), or divisor_override when given."""
    params = PoolParams(kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    check_divisor_override(divisor_override, "avg_pool2d")
    return avg_pool2d_with(input, params, count_include_pad, divisor_override)


# ----------------------------------------------------------------- adaptive pooling

def adaptive_output_size(output_size, op):
    """(oh, ow) from an int or a pair whose entries may be None (= input size)."""
    items = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(items) != 2:
        raise TypeError(f"{op}: output_size must be an int or a pair (entries int or None), got {output_size!r}")
    out = []
    for v in items:
        if v is None:
            out.append(None)
            continue
        (v, _) = pair(v, "output_size", op)
        check_non_negative((v,), "output_size", op)
        out.append(v)
    return tuple(out)


def _adaptive_shape(input, output_size, op):
    check_image_input(input, op)
    h, w = input.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"{op}: expected an input with non-zero height and width, got shape {tuple(input.shape)}")
    oh, ow = output_size
    return h if oh is None else oh, w if ow is None else ow


def adaptive_avg_pool2d_with(input, output_size, op="adaptive_avg_pool2d"):  # noqa: A002
    """adaptive_avg_pool2d with an already parsed (oh, ow) (entries may be None)."""
    oh, ow = _adaptive_shape(input, output_size, op)
    if input.ndim == 3:
        return with_batch_dim(input, lambda x: adaptive_avg_pool2d_with(x, (oh, ow), op))
    backend = input.backend
    h, w = input.shape[2:]

    def adaptive_avg_pool(a):
        return backend.adaptive_avg_pool2d_forward(a, oh, ow)

    def adaptive_avg_pool_adjoint(g):
        return backend.adaptive_avg_pool2d_backward(g, h, w)
    return linear_map(input, adaptive_avg_pool, adaptive_avg_pool_adjoint)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """Means over windows [floor(i*H/oh), ceil((i+1)*H/oh)) (and likewise along W):
    any input size gives an (oh, ow) output. None in output_size keeps that input size."""
    return adaptive_avg_pool2d_with(input, adaptive_output_size(output_size, "adaptive_avg_pool2d"))


def _adaptive_max_find(backend, h, w, oh, ow):
    """(find(array), window) for MaxPool: equal windows run the max-pool kernel
    (window is its geometry); others take a running maximum over the (few)
    offsets of the largest window (window None)."""
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        args = (kh, kw, kh, kw, 0, 0, 1, 1, oh, ow)
        return (lambda a: backend.max_pool2d_forward(a, *args)), args
    xp = backend.xp
    hs, he = adaptive_bounds(xp, oh, h)
    ws, we = adaptive_bounds(xp, ow, w)
    # the largest window along an axis spans at most ceil(size/out) + 1 elements
    kh = max(-(-(i + 1) * h // oh) - i * h // oh for i in range(oh))
    kw = max(-(-(j + 1) * w // ow) - j * w // ow for j in range(ow))

    def adaptive_max(a):
        y = a[:, :, hs[:, None], ws[None, :]]
        idx = xp.broadcast_to(hs[:, None] * w + ws[None, :], y.shape).copy()
        for i in range(kh):
            rows = hs + i
            row_ok = rows < he
            rows = xp.minimum(rows, h - 1)
            for j in range(kw):
                if i == j == 0:
                    continue
                cols = xp.minimum(ws + j, w - 1)
                v = a[:, :, rows[:, None], cols[None, :]]
                take = (row_ok[:, None] & (ws + j < we)[None, :]) & ((v > y) | xp.isnan(v))
                y = xp.where(take, v, y)
                idx = xp.where(take, rows[:, None] * w + cols[None, :], idx)
        return y, idx
    return adaptive_max, None


def adaptive_max_pool2d_with(input, output_size, return_indices=False,  # noqa: A002
                             op="adaptive_max_pool2d"):
    """adaptive_max_pool2d with an already parsed (oh, ow) (entries may be None)."""
    oh, ow = _adaptive_shape(input, output_size, op)
    if input.ndim == 3:
        return with_batch_dim(input, lambda x: adaptive_max_pool2d_with(x, (oh, ow), return_indices, op))
    if oh == 0 or ow == 0:
        raise ValueError(f"{op}: output_size must be positive, got ({oh}, {ow})")
    find, window = _adaptive_max_find(input.backend, input.shape[2], input.shape[3], oh, ow)
    return MaxPool.apply(input, find, return_indices, window)


def adaptive_max_pool2d(input, output_size, return_indices=False):  # noqa: A002
    """Max over the adaptive windows of adaptive_avg_pool2d; indices as max_pool2d."""
    return adaptive_max_pool2d_with(input, adaptive_output_size(output_size, "adaptive_max_pool2d"),
                                    return_indices)
