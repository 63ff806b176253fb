"""y = x @ W.T + b as one fused op (one graph node, BLAS matmuls), and
relu(x @ W.T + b) as one node too (what nn.Sequential runs for Linear then
ReLU: half the graph nodes of a plain MLP).

Any number of leading batch dims: x (..., in) is viewed as (M, in) so each
pass is a single 2-D matmul. Backward: dx = g @ W, dW = g.T @ x, db = g.sum(0).
"""
import math

from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor
from .activation import through_fused_relu

_wrap = Tensor._wrap


def _check(x, weight, bias):
    # the usual case in one expression (runs every forward of every layer);
    # anything else goes through the checks that name the problem
    if isinstance(x, Tensor) and isinstance(weight, Tensor):
        xd, wd = x._data, weight._data
        if (wd.ndim == 2 and xd.ndim and xd.shape[-1] == wd.shape[1] and xd.dtype == wd.dtype
                and xd.dtype.kind == "f"
                and (bias is None or (isinstance(bias, Tensor) and bias._data.dtype == wd.dtype
                                      and bias._data.shape == wd.shape[:1]))):
            return
    _explain(x, weight, bias)


def _explain(x, weight, bias):
    for name, t in (("input", x), ("weight", weight), ("bias", bias)):
        if not isinstance(t, Tensor) and (t is not None or name != "bias"):
            raise TypeError(f"linear: {name} must be a Tensor, got {type(t).__name__}")
    if x._data.dtype.kind != "f":
        raise TypeError(f"linear: expected a floating point input, got {x.dtype}; convert it "
                        "with .float()")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    in_features = weight.shape[1]
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"linear: expected input with last dimension in_features={in_features}, "
                         f"got input of shape {tuple(x.shape)}")
    if x._data.dtype != weight._data.dtype:
        raise TypeError(f"linear: input is {x.dtype} but weight is {weight.dtype}; convert one "
                        "(e.g. model.double() or x.float())")
    if bias is not None:
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
        if bias._data.dtype != weight._data.dtype:
            raise TypeError(f"linear: bias is {bias.dtype} but weight is {weight.dtype}")
    raise AssertionError("linear: inputs passed every check")  # the fast test must match these


class Linear(Op):
    def forward(self, x, weight, bias, relu=False):
        xd, wd = x._data, weight._data
        self.x, self.weight, self.lead = x, weight, xd.shape[:-1]
        # rows spelled out: with a zero-size dim, reshape could not infer a -1
        self.rows = math.prod(self.lead)
        backend = self.device.backend
        z = backend.matmul(xd.reshape(self.rows, xd.shape[-1]) if xd.ndim != 2 else xd, wd.T)
        # bias and relu in one pass over the product (the relu kernel's values)
        out = backend.linear_epilogue(z, None if bias is None else bias._data, relu)
        self.out = out if relu else None
        return out.reshape(self.lead + (wd.shape[0],)) if xd.ndim != 2 else out

    @property
    def name(self):
        return "Linear" if self.__dict__.get("out") is None else "LinearRelu"

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad[:3]
        if is_grad_enabled():
            if self.out is not None:  # through the relu first, as the ReLU node would
                g = through_fused_relu(self.out, g, self.device)
            return self._composite_backward(g, need_x, need_w, need_b)
        x, w, dev, rows = self.x._data, self.weight._data, self.device, self.rows
        g2 = g._data.reshape(rows, w.shape[0])
        # one pass takes g back through the relu and sums it for the bias
        backend = dev.backend
        g2, db = backend.linear_epilogue_backward(self.out, g2, self.out is not None, need_b)
        x2 = x.reshape(rows, w.shape[1])
        if need_x and need_w:  # the same work each: side by side where the backend can
            dx, dw = backend.matmul_pair(g2, w, g2.T, x2)
        else:
            dx = backend.matmul(g2, w) if need_x else None
            dw = backend.matmul(g2.T, x2) if need_w else None
        return (None if dx is None else _wrap(dx.reshape(x.shape), dev),
                None if dw is None else _wrap(dw, dev), None if db is None else _wrap(db, dev), None)

    def _composite_backward(self, g, need_x, need_w, need_b):
        # the same formulas with Tensor ops, so create_graph can differentiate them
        x, w, rows = self.x, self.weight, self.rows
        g2 = g.reshape(rows, w.shape[0])
        dx = (g2 @ w).reshape(x.shape) if need_x else None
        dw = g2.T @ x.reshape(rows, w.shape[1]) if need_w else None
        db = g2.sum(0) if need_b else None
        return dx, dw, db, None


def linear(input, weight, bias=None):  # noqa: A002  (PyTorch's argument name)
    """y = input @ weight.T + bias; input (..., in_features), weight (out_features, in_features)."""
    _check(input, weight, bias)
    return Linear.apply(input, weight, bias)


def linear_product(input, weight, bias=None):  # noqa: A002
    """input @ weight.T alone, after the checks linear(input, weight, bias)
    makes: for a caller that adds the bias itself."""
    _check(input, weight, bias)
    return Linear.apply(input, weight, None)


def linear_relu(input, weight, bias=None):  # noqa: A002
    """relu(linear(input, weight, bias)) as one graph node: the same values and
    gradients as the two ops (the relu kernels run on the same arrays)."""
    _check(input, weight, bias)
    return Linear.apply(input, weight, bias, True)
