"""2-d pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

Arguments are validated once, at construction; attributes keep the values
given (ints stay ints), as in PyTorch."""
from ...ops.pool import (PoolParams, adaptive_avg_pool2d_with, adaptive_max_pool2d_with,
                         adaptive_output_size, avg_pool2d_with, check_divisor_override, max_pool2d_with)
from ..module import Module


class MaxPool2d(Module):
    """Max over kernel_size windows (stride defaults to kernel_size); padding
    counts as -inf. return_indices=True also returns the argmax positions."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode
        self._params = PoolParams(kernel_size, stride, padding, dilation, ceil_mode, "MaxPool2d")

    def forward(self, input):  # noqa: A002
        return max_pool2d_with(input, self._params, self.return_indices, "MaxPool2d")

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over kernel_size windows (stride defaults to kernel_size); see
    F.avg_pool2d for the divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        self._params = PoolParams(kernel_size, stride, padding, 1, ceil_mode, "AvgPool2d")
        check_divisor_override(divisor_override, "AvgPool2d")

    def forward(self, input):  # noqa: A002
        return avg_pool2d_with(input, self._params, self.count_include_pad, self.divisor_override,
                               "AvgPool2d")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Averages over adaptive windows to a fixed (oh, ow) output, whatever the
    input size; None in output_size keeps that input dimension."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size
        self._size = adaptive_output_size(output_size, "AdaptiveAvgPool2d")

    def forward(self, input):  # noqa: A002
        return adaptive_avg_pool2d_with(input, self._size, "AdaptiveAvgPool2d")

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max over the adaptive windows of AdaptiveAvgPool2d; return_indices as MaxPool2d."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices
        self._size = adaptive_output_size(output_size, "AdaptiveMaxPool2d")

    def forward(self, input):  # noqa: A002
        return adaptive_max_pool2d_with(input, self._size, self.return_indices, "AdaptiveMaxPool2d")

    def extra_repr(self):
        return f"output_size={self.output_size}"
