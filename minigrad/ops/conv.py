"""2-d convolution (cross-correlation, as in PyTorch) as one fused op.

Forward unfolds the input into columns with the backend's im2col and
multiplies by the weight W (O, C*kh*kw). Backward: db = Σ dy, dW = dy·colsᵀ
summed over samples, dx = col2im(Wᵀ·dy). Two ways to multiply:
- merged: cols (C*kh*kw, N*L), L = oh*ow, the batch joined into the
  columns, so each product is ONE gemm per group, then one transposing copy
  to (N, O, oh, ow) (which also adds the bias). A long product splits well
  over the BLAS threads, where a product per sample is too small to.
- per sample: cols (N, C*kh*kw, L) and a batched matmul, one small gemm per
  sample. Faster when the columns are few (a 1- or 3-channel input: a
  single long product with so few rows runs slowly) and on one thread.
The weight gradient with many rows always takes the merged product: its
per-sample form needs a sum over an (N, O, C*kh*kw) stack. On the CPU, where
the batch's columns are large, the input gradient takes neither:
backend.conv_input_grad makes each sample's columns and folds them while
they are in cache; and a forward whose columns are not kept (no weight
gradient) multiplies each sample's columns as they are made
(backend.conv_forward).

The columns are not kept from forward to backward. They are kh*kw times the
input, and a network would hold them for every layer at once; backward
recomputes them (one im2col, a memory-bound pass that is cheap next to the
products) only when the weight needs a gradient, and drops them before
building the input gradient, so one column-sized buffer is alive at a time.
"""
import numbers

from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor
from ..threads import get_num_threads
from .linear_map import linear_map
from .window import (check_image_input, check_non_negative, check_positive, conv_out_size, pair,
                     with_batch_dim)

_wrap = Tensor._wrap


class ConvParams:
    """Validated stride/padding/dilation/groups of a 2-d convolution.
    Padding is kept as (before, after) per axis: 'same' may be asymmetric."""

    __slots__ = ("stride", "pad_before", "pad_total", "dilation", "groups")

    def __init__(self, kernel_size, stride=1, padding=0, dilation=1, groups=1, op="conv2d"):
        self.stride = pair(stride, "stride", op)
        self.dilation = pair(dilation, "dilation", op)
        check_positive(self.stride, "stride", op)
        check_positive(self.dilation, "dilation", op)
        if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups <= 0:
            raise ValueError(f"{op}: groups must be a positive integer, got groups={groups!r}")
        self.groups = int(groups)
        if isinstance(padding, str):
            before, total = self._padding_from_string(padding, kernel_size, op)
        else:
            before = pair(padding, "padding", op)
            check_non_negative(before, "padding", op)
            total = (2 * before[0], 2 * before[1])
        self.pad_before, self.pad_total = before, total

    def _padding_from_string(self, padding, kernel_size, op):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
        if self.stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                             f"(got stride={self.stride})")
        # The output keeps the input size; an odd total pads one more at the end (as PyTorch).
        total = tuple(d * (k - 1) for d, k in zip(self.dilation, kernel_size))
        return (total[0] // 2, total[1] // 2), total

    def window(self, x_shape, w_shape, op="conv2d"):
        """The kernels' geometry tuple (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)."""
        h, w = x_shape[-2:]
        kh, kw = w_shape[2:]
        (sh, sw), (dh, dw), (th, tw) = self.stride, self.dilation, self.pad_total
        if h + th < dh * (kh - 1) + 1 or w + tw < dw * (kw - 1) + 1:
            raise ValueError(f"{op}: calculated padded input size per channel: ({h + th} x {w + tw}); "
                             f"kernel size (with dilation): ({dh * (kh - 1) + 1} x {dw * (kw - 1) + 1}). "
                             "Kernel size can't be greater than the padded input size")
        return (kh, kw, sh, sw, self.pad_before[0], self.pad_before[1], dh, dw,
                conv_out_size(h, kh, sh, th, dh), conv_out_size(w, kw, sw, tw, dw))


def _is_pointwise(args):
    """1x1 kernel, unit stride, no padding: the columns are the input itself."""
    kh, kw, sh, sw, ph, pw = args[:6]
    return kh == kw == sh == sw == 1 and ph == pw == 0


def unfold(backend, x, args, merged=True):
    """im2col: x (N, C, H, W) -> cols (C*kh*kw, N*oh*ow) if merged, else (N, C*kh*kw, oh*ow)."""
    if _is_pointwise(args):
        n, c, h, w = x.shape
        if not merged:
            return x.reshape(n, c, h * w)
        return backend.xp.ascontiguousarray(x.reshape(n, c, h * w).transpose(1, 0, 2)).reshape(c, n * h * w)
    return backend.im2col(x, *args, merged=merged)


def fold(backend, cols, h, w, args, merged=True):
    """col2im, the adjoint of unfold (same layout): cols -> (N, C, h, w), overlaps summed."""
    if _is_pointwise(args):
        if not merged:
            return cols.reshape(cols.shape[0], -1, h, w)
        return backend.xp.ascontiguousarray(cols.reshape(cols.shape[0], -1, h, w).transpose(1, 0, 2, 3))
    return backend.col2im(cols, h, w, *args, merged=merged)


def _window_maps(backend, h, w, args):
    """(im2col, col2im) array functions of one geometry, for linear_map (the
    create_graph path, where each must differentiate into the other)."""
    def im2col(a):
        return unfold(backend, a, args)

    def col2im(a):
        return fold(backend, a, h, w, args)
    return im2col, col2im


# Below this many column rows per group, products are taken per sample.
_PER_SAMPLE_ROWS = 32


def _few_rows(kg):
    return kg < _PER_SAMPLE_ROWS


def _per_sample(device, kg):
    """Whether W·cols and Wᵀ·dy are taken per sample. One long product pays
    off by splitting well over threads; on a single CPU thread the per-sample
    products (strided views, no copy) are as fast or faster."""
    return _few_rows(kg) or (device.type == "cpu" and get_num_threads() == 1)


# From this size of the batch's columns on (more than a core's L2 holds), the
# CPU's input gradient is folded per sample, from cache
# (backend.conv_input_grad), instead of one long product whose columns go
# through memory and a fold of the whole. Input gradient alone, AVX-512 host:
# 0.85-0.93x the time at the cnn's second layer (144 x 12544 floats, 7 MB),
# 0.4x there while other tenants load the memory, 0.6x at 32x64x16x16 -> 64;
# below 1 MB the two were level within a few microseconds.
FOLD_PER_SAMPLE_BYTES = 1 << 20


def _folds_per_sample(device, args, groups, columns_bytes):
    return (device.type == "cpu" and groups == 1 and not _is_pointwise(args)
            and columns_bytes >= FOLD_PER_SAMPLE_BYTES)


def _merged(xp, dy, groups):
    """dy (N, O, L) -> (G, O/G, N*L) copy, the layout of the columns."""
    n, o, length = dy.shape
    return xp.ascontiguousarray(dy.transpose(1, 0, 2)).reshape(groups, o // groups, n * length)


# The forward's columns are kept for the weight gradient (saving the backward
# a second im2col) when they take at most this many bytes; larger ones are
# rebuilt in the backward rather than held through the whole forward pass,
# and that forward, keeping nothing, runs per sample from cache. Keeping
# none from 1 MB on (the cnn's 7 MB included) was level in quiet minutes
# and 1.03x slower while other tenants loaded the host's memory.
KEEP_COLUMNS_BYTES = 64 << 20


class Conv2d(Op):
    def forward(self, x, weight, bias, args, groups):
        backend = self.device.backend
        xp = backend.xp
        xd, wd = x._data, weight._data
        n, o = xd.shape[0], wd.shape[0]
        self.x, self.weight, self.args, self.groups = x, weight, args, groups
        length = args[8] * args[9]
        kg = wd.shape[1] * wd.shape[2] * wd.shape[3]
        w3 = wd.reshape(groups, o // groups, kg)
        self.kept = None  # (merged, columns) for the backward
        keep = (weight.requires_grad and is_grad_enabled()
                and kg * n * length * xd.itemsize <= KEEP_COLUMNS_BYTES)
        if groups == 1:
            # one product (per sample when the columns are), written straight
            # into y's (N, O, L) layout with the bias; a pointwise convolution
            # reads its input in place as the columns
            if _is_pointwise(args):
                cols, per_sample = xd.reshape(n, kg, length), True
            elif self.device.type == "cpu" and not keep:
                # no columns to keep: each sample's are multiplied while in cache
                y = backend.conv_forward(wd.reshape(o, kg), xd, None if bias is None else bias._data,
                                         *args)
                return y.reshape(n, o, args[8], args[9])
            elif _few_rows(kg):  # per-sample columns, the layout the weight gradient takes
                cols, per_sample = unfold(backend, xd, args, merged=False).reshape(n, kg, length), True
                self._keep(keep, False, cols.reshape(n, 1, kg, length))
            else:
                cols, per_sample = unfold(backend, xd, args), False
                self._keep(keep, True, cols.reshape(1, kg, n * length))
            y = backend.panel_matmul(wd.reshape(o, kg), cols, n, length, per_sample, True,
                                     None if bias is None else bias._data)
        elif _per_sample(self.device, kg):
            cols = unfold(backend, xd, args, merged=False).reshape(n, groups, kg, length)
            self._keep(keep, False, cols)
            y = xp.matmul(w3, cols).reshape(n, o, length)
            if bias is not None:
                y += bias._data.reshape(o, 1)
        else:
            cols = unfold(backend, xd, args).reshape(groups, kg, n * length)
            self._keep(keep, True, cols)
            y_t = xp.matmul(w3, cols).reshape(o, n, length).transpose(1, 0, 2)
            y = xp.empty((n, o, length), dtype=y_t.dtype)
            if bias is not None:
                xp.add(y_t, bias._data.reshape(o, 1), out=y)
            else:
                y[...] = y_t
        return y.reshape(n, o, args[8], args[9])

    def _keep(self, keep, merged, cols):
        if keep and not _is_pointwise(self.args):
            self.kept = (merged, cols)

    def _columns(self, merged, shape):
        """The input's columns in the merged or per-sample layout: the forward's
        when it kept them in that layout (handed over once), else rebuilt."""
        kept, self.kept = self.kept, None
        if kept is not None and kept[0] == merged:
            return kept[1]
        return unfold(self.device.backend, self.x._data, self.args, merged=merged).reshape(shape)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad[:3]
        if is_grad_enabled():
            self.kept = None  # the composite formulas rebuild columns differentiably
            return self._composite_backward(g, need_x, need_w, need_b)
        backend, dev = self.device.backend, self.device
        xp, args, groups = backend.xp, self.args, self.groups
        xd, wd, dy = self.x._data, self.weight._data, g._data
        n, o, oh, ow = dy.shape
        og, kg, length = o // groups, wd.shape[1] * wd.shape[2] * wd.shape[3], oh * ow
        dy = dy.reshape(n, o, length)
        db = _wrap(backend.conv_bias_grad(dy), dev) if need_b else None
        per_sample = _per_sample(dev, kg)
        merged_w = need_w and not _few_rows(kg)  # (few rows: per-sample products are faster)
        fused_x = need_x and _folds_per_sample(dev, args, groups, kg * n * length * dy.itemsize)
        needs_merged = merged_w or (need_x and not per_sample and not fused_x)
        dy_m = _merged(xp, dy, groups) if needs_merged else None
        dy_s = dy.reshape(n, groups, og, length)
        dw = dx = None
        if need_w:
            if not merged_w:
                cols = self._columns(False, (n, groups, kg, length))
                dw_t = xp.matmul(cols, dy_s.transpose(0, 1, 3, 2)).sum(axis=0)
            else:  # cols·dy₂ᵀ: faster than dy₂·colsᵀ, whose large operand is the transposed one
                cols = self._columns(True, (groups, kg, n * length))
                if groups == 1:  # the backend's product: its long inner axis split over threads
                    dw_t = backend.matmul(cols[0], dy_m[0].T)[None]
                else:
                    dw_t = xp.matmul(cols, dy_m.transpose(0, 2, 1))
            dw = _wrap(xp.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(wd.shape), dev)
            del cols  # before the input gradient's columns: one column buffer at a time
        if fused_x:
            dx = _wrap(backend.conv_input_grad(wd.reshape(o, kg).T, dy, xd.shape[2], xd.shape[3],
                                               *args), dev)
        elif need_x:
            w_t = wd.reshape(groups, og, kg).transpose(0, 2, 1)
            h, w = xd.shape[2], xd.shape[3]
            if per_sample:
                dcols = xp.matmul(w_t, dy_s).reshape(n, groups * kg, length)
            else:
                dcols = xp.matmul(w_t, dy_m).reshape(groups * kg, n * length)
            dx = _wrap(fold(backend, dcols, h, w, args, merged=not per_sample), dev)
        return dx, dw, db, None, None

    def _composite_backward(self, g, need_x, need_w, need_b):
        # The same formulas with Tensor ops, so create_graph can differentiate them.
        x, w, args, groups = self.x, self.weight, self.args, self.groups
        backend = self.device.backend
        n, o, oh, ow = g.shape
        kg = w.shape[1] * w.shape[2] * w.shape[3]
        dy = g.reshape(n, groups, o // groups, oh * ow).permute(1, 2, 0, 3).reshape(
            groups, o // groups, n * oh * ow)
        db = g.sum((0, 2, 3)) if need_b else None
        dw = dx = None
        im2col, col2im = _window_maps(backend, x.shape[2], x.shape[3], args)
        if need_w:
            cols = linear_map(x, im2col, col2im).reshape(groups, kg, n * oh * ow)
            dw = (dy @ cols.transpose(1, 2)).reshape(w.shape)
        if need_x:
            dcols = w.reshape(groups, o // groups, kg).transpose(1, 2) @ dy
            dx = linear_map(dcols.reshape(groups * kg, n * oh * ow), col2im, im2col)
        return dx, dw, db, None, None


def _check_operands(x, weight, bias, groups, op):
    check_image_input(x, op)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (out_channels, in_channels/groups, kH, kW), got "
                         f"weight of shape {tuple(weight.shape)}")
    o, cg = weight.shape[:2]
    c = x.shape[-3]
    if o % groups:
        raise ValueError(f"{op}: groups={groups} must divide out_channels, but weight has "
                         f"{o} output channels (weight shape {tuple(weight.shape)})")
    if c != cg * groups:
        raise ValueError(f"{op}: given groups={groups} and weight of shape {tuple(weight.shape)}, "
                         f"expected input of shape {tuple(x.shape)} to have {cg * groups} channels "
                         f"(in_channels), but got {c} channels instead")
    if x._data.dtype != weight._data.dtype:
        raise TypeError(f"{op}: input is {x.dtype} but weight is {weight.dtype}; convert one "
                        "(e.g. model.double() or x.float())")
    if bias is not None:
        if tuple(bias.shape) != (o,):
            raise ValueError(f"{op}: expected bias of shape ({o},) (out_channels of weight "
                             f"{tuple(weight.shape)}), got bias of shape {tuple(bias.shape)}")
        if bias._data.dtype != weight._data.dtype:
            raise TypeError(f"{op}: bias is {bias.dtype} but weight is {weight.dtype}")


def conv2d_with(input, weight, bias, params, op="conv2d"):  # noqa: A002
    """conv2d with already validated parameters (what Conv2d layers call)."""
    _check_operands(input, weight, bias, params.groups, op)
    if input.ndim == 3:
        return with_batch_dim(input, lambda x: conv2d_with(x, weight, bias, params, op))
    args = params.window(input.shape, weight.shape, op)
    return Conv2d.apply(input, weight, bias, args, params.groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """2-d cross-correlation of input (N, C, H, W) or (C, H, W) with weight
    (out_channels, C/groups, kH, kW), plus bias (out_channels,).

    stride, padding, dilation: ints or pairs; padding may also be 'valid'
    (none) or 'same' (output as large as the input; stride 1 only)."""
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        _check_operands(input, weight, bias, 1, "conv2d")
    params = ConvParams(weight.shape[2:], stride, padding, dilation, groups)
    return conv2d_with(input, weight, bias, params)
