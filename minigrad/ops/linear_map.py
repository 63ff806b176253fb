"""One op for every fixed linear map that comes with its adjoint.

With its geometry fixed, much of a CNN is linear in its input: unfolding
windows (im2col) and folding them back (col2im), padding, average pooling,
routing max-pool gradients to the winners. For such a map A the input
gradient is the adjoint Aᵀ applied to the output gradient, and the gradient
of Aᵀ is A again. So a single op class covers both directions: each runs
its fused kernel at first order, and derivatives of every order exist.
"""
from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor


class LinearMap(Op):
    """y = fn(x). `adjoint` is the adjoint of fn's linear part; `linear` is that
    linear part when fn also adds a constant (constant padding with a nonzero
    fill), else None."""

    def forward(self, x, fn, adjoint, linear=None):
        self.fn, self.adjoint = linear or fn, adjoint
        return fn(x._data)

    def backward(self, g):
        if is_grad_enabled():
            return LinearMap.apply(g, self.adjoint, self.fn), None, None, None
        return Tensor._wrap(self.adjoint(g._data), self.device), None, None, None

    @property
    def name(self):
        return getattr(self.fn, "__name__", "LinearMap")


def linear_map(x, fn, adjoint, linear=None):
    """Applies the array function fn to x as a differentiable op (see LinearMap)."""
    return LinearMap.apply(x, fn, adjoint, linear)
