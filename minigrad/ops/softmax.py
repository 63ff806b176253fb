"""softmax and log_softmax along one dim: stable (row maximum subtracted, so
logits of +-1e4 stay finite) and with closed-form backward from the output:

    softmax:      dx = y * (g - sum(g * y))
    log_softmax:  dx = g - exp(y) * sum(g)
"""
from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor
from .reduce import normalize_dims

_wrap = Tensor._wrap


class _SoftmaxBase(Op):
    """The backend's row kernels; `log` says which of the two."""

    def forward(self, x, dim):
        self.x, self.dim = x, dim
        d = x._data
        if d.size == 0:
            self.out = d.copy()
            return self.out
        self.out = self.device.backend.softmax_forward(d, dim, self.log)
        return self.out

    def backward(self, g):
        if is_grad_enabled():
            # rebuild the output as a graph node so the gradient is differentiable
            y = type(self).apply(self.x, self.dim)
            return self.tensor_grad(y, g, self.dim), None
        if self.out.size == 0:
            return _wrap(g._data.copy(), self.device), None
        dx = self.device.backend.softmax_backward(self.out, g._data, self.dim, self.log)
        return _wrap(dx, self.device), None


class Softmax(_SoftmaxBase):
    log = False

    @staticmethod
    def tensor_grad(y, g, dim):
        return y * (g - (g * y).sum(dim, keepdim=True))


class LogSoftmax(_SoftmaxBase):
    log = True

    @staticmethod
    def tensor_grad(y, g, dim):
        return g - y.exp() * g.sum(dim, keepdim=True)


def implicit_dim(ndim):
    """PyTorch's legacy choice when no dim is given: 0 for 0-, 1- and 3-D inputs, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


def _apply(op, x, dim, dtype, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor input, got {type(x).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating point input, got {x.dtype}")
    if dim is None:
        import warnings
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                      "to include dim=X as an argument.", stacklevel=3)
        dim = implicit_dim(x.ndim)
    if x.ndim == 0:
        normalize_dims(dim, 0, name)  # range check only
        return op.apply(x.reshape(1), 0).reshape(())
    (dim,) = normalize_dims(dim, x.ndim, name)
    return op.apply(x, dim)


def softmax(input, dim=None, dtype=None):  # noqa: A002
    """exp(x) / sum(exp(x)) along dim, computed without overflow."""
    return _apply(Softmax, input, dim, dtype, "softmax")


def log_softmax(input, dim=None, dtype=None):  # noqa: A002
    """x - logsumexp(x) along dim, computed without overflow."""
    return _apply(LogSoftmax, input, dim, dtype, "log_softmax")
