"""Sliding-window geometry shared by convolution and pooling: parsing of
int-or-pair arguments, input checks, and PyTorch's output-size formulas.

The backend's window kernels take their geometry as one tuple
`(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)`: kernel, stride, leading padding,
dilation and output size. Trailing padding is implied by the output size
(windows reaching past the image read zeros), which is how asymmetric
padding such as padding='same' with an even kernel is expressed.
"""
import numbers

from ..tensor import Tensor


def pair(value, name, op):
    """(a, b) from an int or a sequence of one or two ints, as PyTorch accepts."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return (int(value[0]),) * 2 if len(value) == 1 else (int(value[0]), int(value[1]))
    raise TypeError(f"{op}: {name} must be an int or a tuple of two ints, got {value!r}")


def check_positive(values, name, op):
    if min(values) <= 0:
        raise ValueError(f"{op}: {name} must be greater than zero, got {name}={tuple(values)}")


def check_non_negative(values, name, op):
    if min(values) < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {name}={tuple(values)}")


def check_image_input(x, op, what="input"):
    """A floating point Tensor of rank 3 (C, H, W) or 4 (N, C, H, W)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected {what} to be a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (unbatched, C x H x W) or 4-D (batched, N x C x H x W) "
                         f"{what}, got {what} of shape {tuple(x.shape)}")
    if x._data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point {what}, got {x.dtype}; convert it with .float()")


def with_batch_dim(x, fn):
    """fn applied to x, adding a batch dim of 1 around it when x is unbatched (C, H, W)."""
    if x.ndim == 4:
        return fn(x)
    out = fn(x.unsqueeze(0))
    if isinstance(out, tuple):
        return tuple(o.squeeze(0) for o in out)
    return out.squeeze(0)


def conv_out_size(size, k, s, pad_total, d):
    """Outputs along one axis of a convolution with `pad_total` padding in all."""
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def pool_out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size: ceil_mode rounds up, but the last window
    must start inside the image or its leading padding."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out
