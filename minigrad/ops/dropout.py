"""Inverted dropout: zero each element with probability p and scale the
survivors by 1 / (1 - p), so the expected value is unchanged and evaluation
needs no rescaling. The mask comes from minigrad.random (reproducible under
mg.manual_seed)."""
import numbers

from ..autograd import Op
from ..random import draw
from ..tensor import Tensor

_wrap = Tensor._wrap


class Dropout(Op):
    def forward(self, x, p):
        d = x._data
        keep = draw(self.device, "bernoulli", d.shape, d.dtype, 1.0 - p)
        # the scaled mask is kept for backward: dx = g * mask / (1 - p)
        self.scale = keep.astype(d.dtype)
        self.scale *= 1.0 / (1.0 - p)
        return d * self.scale

    def backward(self, g):
        return g * _wrap(self.scale, self.device), None


def check_probability(p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Inverted dropout; identity when not training or p == 0, zeros when p == 1.
    `inplace` is accepted for PyTorch compatibility; the result is always a new tensor."""
    p = check_probability(p)
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout: expected a Tensor input, got {type(input).__name__}")
    if not training or p == 0.0:
        return input
    if input._data.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating point input, got {input.dtype}")
    if p == 1.0:
        return input * 0.0
    return Dropout.apply(input, p)
