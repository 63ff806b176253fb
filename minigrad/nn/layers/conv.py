"""nn.Conv2d with PyTorch's arguments, checks and default initialization."""
import numbers

from ...ops.conv import ConvParams, conv2d_with
from ...ops.pad import pad
from ...ops.window import pair
from ...tensor import empty
from .. import init
from ..module import Module
from ..parameter import Parameter

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _channels(value, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
    return int(value)


class Conv2d(Module):
    """2-d convolution over (N, C, H, W) or (C, H, W) input.

    weight (out_channels, in_channels/groups, kH, kW) ~ kaiming_uniform(a=sqrt(5)),
    i.e. U(±1/sqrt(fan_in)) with fan_in = in_channels/groups * kH * kW; bias
    (out_channels,) from the same range, as in PyTorch. padding_mode other
    than 'zeros' pads the input with F.pad in that mode before convolving."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        in_channels = _channels(in_channels, "in_channels")
        out_channels = _channels(out_channels, "out_channels")
        if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups <= 0:
            raise ValueError(f"Conv2d: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"Conv2d: in_channels must be divisible by groups, got in_channels="
                             f"{in_channels} and groups={groups}")
        if out_channels % groups:
            raise ValueError(f"Conv2d: out_channels must be divisible by groups, got out_channels="
                             f"{out_channels} and groups={groups}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {PADDING_MODES}, but got "
                             f"padding_mode={padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, int(groups)
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        if min(self.kernel_size) <= 0:
            raise ValueError(f"Conv2d: kernel_size must be greater than zero, got {self.kernel_size}")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", "Conv2d")
        self.dilation = pair(dilation, "dilation", "Conv2d")
        self.padding_mode = padding_mode
        params = ConvParams(self.kernel_size, stride, padding, dilation, groups, "Conv2d")
        if padding_mode == "zeros":
            self._params, self._explicit_pad = params, None
        else:
            # F.pad's order: (left, right, top, bottom), i.e. the last dim first
            (top, left), (th, tw) = params.pad_before, params.pad_total
            self._explicit_pad = (left, tw - left, top, th - top)
            self._params = ConvParams(self.kernel_size, stride, 0, dilation, groups, "Conv2d")
        self.weight = Parameter(empty(out_channels, in_channels // self.groups, *self.kernel_size,
                                      device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input):  # noqa: A002  (PyTorch's argument name)
        if self._explicit_pad is not None:
            input = pad(input, self._explicit_pad, mode=self.padding_mode)
        return conv2d_with(input, self.weight, self.bias, self._params, "Conv2d")

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
