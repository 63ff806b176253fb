"""Elementwise activations as one op over the backend's fused kernels.

Forward and first-order backward each run one fused kernel (one pass over
memory). When a graph of the backward is requested (create_graph=True), the
derivative is instead built from Tensor ops, so second derivatives exist.
"""
from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor
from .elementwise import where


def _double_backward_unsupported(kind):
    def fn(x, g, alpha, beta):
        raise NotImplementedError(f"double backward through the fused '{kind}' activation is not "
                                  "supported; write it with Tensor ops if you need it")
    return fn


def _sigmoid_grad(x, g, a, b):
    s = x.sigmoid()
    return g * s * (1.0 - s)


def _tanh_grad(x, g, a, b):
    t = x.tanh()
    return g * (1.0 - t * t)


def _silu_grad(x, g, a, b):
    s = x.sigmoid()
    return g * s * (1.0 + x * (1.0 - s))


def _elu_grad(x, g, alpha, b, scale=1.0):
    pos = x._data > 0
    return where(pos, g * scale, g * (alpha * scale) * x.exp())


def _selu_grad(x, g, a, b):
    from ..backend.reference.activation import SELU_ALPHA, SELU_SCALE
    return _elu_grad(x, g, SELU_ALPHA, b, SELU_SCALE)


def _softplus_grad(x, g, beta, threshold):
    z = x * beta
    return where(z._data > threshold, g, g * z.sigmoid())


def _hardtanh_grad(x, g, lo, hi):
    d = x._data
    return where((d > lo) & (d < hi), g, 0.0)


def relu_grad_composite(x, g):
    """g where x > 0, else 0, with Tensor ops (x is only read as a mask)."""
    return where(x._data > 0, g, 0.0)


def through_fused_relu(out, g, device):
    """The gradient g of relu's output `out` (an array) taken back through the
    relu, for ops that apply it inside their own forward: `out` > 0 exactly
    where the relu's input was, so it serves as the mask. Tensor ops when a
    graph of the backward is being recorded, else the relu kernel."""
    out = out.reshape(g._data.shape)
    if is_grad_enabled():
        return relu_grad_composite(Tensor._wrap(out, device), g)
    return Tensor._wrap(device.backend.activation_backward("relu", out, out, g._data, 0.0, 0.0),
                        device)


# derivative of each kind, written with Tensor ops (used when create_graph=True)
_COMPOSITE_GRAD = {
    "relu": lambda x, g, a, b: relu_grad_composite(x, g),
    "leaky_relu": lambda x, g, a, b: where(x._data > 0, g, g * a),
    "elu": _elu_grad,
    "selu": _selu_grad,
    "silu": _silu_grad,
    "sigmoid": _sigmoid_grad,
    "tanh": _tanh_grad,
    "softplus": _softplus_grad,
    "hardtanh": _hardtanh_grad,
    "gelu": _double_backward_unsupported("gelu"),
    "gelu_tanh": _double_backward_unsupported("gelu_tanh"),
}


class Activation(Op):
    def forward(self, x, kind, alpha, beta):
        if x._data.dtype.kind != "f":
            raise TypeError(f"{kind}: expected a floating point input, got {x.dtype}")
        self.x, self.kind, self.alpha, self.beta = x, kind, alpha, beta
        self.out = self.device.backend.activation_forward(kind, x._data, alpha, beta)
        return self.out

    def backward(self, g):
        if is_grad_enabled():
            return _COMPOSITE_GRAD[self.kind](self.x, g, self.alpha, self.beta), None, None, None
        dx = self.device.backend.activation_backward(self.kind, self.x._data, self.out, g._data,
                                                     self.alpha, self.beta)
        return Tensor._wrap(dx, self.device), None, None, None

    @property
    def name(self):
        return self.kind.capitalize()


def activation(x, kind, alpha=0.0, beta=0.0):
    if not isinstance(x, Tensor):
        raise TypeError(f"{kind}: expected a Tensor input, got {type(x).__name__}")
    return Activation.apply(x, kind, float(alpha), float(beta))
