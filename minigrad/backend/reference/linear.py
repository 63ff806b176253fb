"""What a linear layer does around its matrix products: the epilogue of the
forward product (add the bias, then optionally relu) and its gradient (take
the gradient back through the relu, and sum it over rows for the bias).

`z` is the product x @ W.T as a 2-D (rows, out_features) array; `out` the
epilogue's result. The relu is the activation kernel's relu (max(v, 0),
derivative 0 at 0), so a fused layer gives the values of a separate ReLU.
"""
from .activation import activation_backward, activation_forward

__all__ = ["linear_epilogue", "linear_epilogue_backward"]


def linear_epilogue(xp, z, bias=None, relu=False):
    """z + bias, then relu if asked. z must be a fresh, writable array: its
    memory may be reused for the result."""
    if bias is not None:
        z += bias
    if relu:
        return activation_forward(xp, "relu", z)
    return z


def linear_epilogue_backward(xp, out, g, relu=False, need_bias=True):
    """(dz, db): dz the gradient g of the epilogue's output taken back through
    the relu (g itself without one), db the bias gradient, dz summed over rows
    (None unless need_bias). `out` is the epilogue's output: out > 0 exactly
    where the relu's input was, so it serves as the relu's mask."""
    dz = activation_backward(xp, "relu", out, out, g) if relu else g
    db = dz.sum(axis=0) if need_bias else None
    return dz, db
