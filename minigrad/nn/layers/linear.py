"""nn.Linear: y = x @ W.T + b with PyTorch's default initialization."""

from ...tensor import empty
from .. import init
from ..module import Module
from ..parameter import Parameter
from ...ops.linear import linear, linear_relu


class Linear(Module):
    """Applies y = x W^T + b to the last dim of x (..., in_features).

    weight (out_features, in_features) ~ kaiming_uniform(a=sqrt(5)), i.e.
    U(-1/sqrt(in_features), 1/sqrt(in_features)); bias (out_features,) from
    the same range, as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {n!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input):  # noqa: A002
        return linear(input, self.weight, self.bias)

    def _forward_relu(self, input):  # noqa: A002
        """relu(self(input)), without hooks, as one graph node: what Sequential
        runs for this layer followed by a ReLU."""
        return linear_relu(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
