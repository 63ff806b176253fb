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
    def forward(self, x, dim):
        self.x, self.dim = x, dim
        d = x._data
        if d.size == 0:
            self.out = d.copy()
            return self.out
        shifted = d - d.max(axis=dim, keepdims=True)
        self.out = self.compute(self.device.backend.xp, shifted, dim)
        return self.out

    def backward(self, g):
        if is_grad_enabled():
            # rebuild the output as a graph node so the gradient is differentiable
            y = type(self).apply(self.x, self.dim)
            return self.tensor_grad(y, g, self.dim), None
        xp = self.device.backend.xp
        return _wrap(self.array_grad(xp, self.out, g._data, self.dim), self.device), None


class Softmax(_SoftmaxBase):
    @staticmethod
    def compute(xp, shifted, dim):
        e = xp.exp(shifted)
        e /= e.sum(axis=dim, keepdims=True)
        return e

    @staticmethod
    def tensor_grad(y, g, dim):
        return y * (g - (g * y).sum(dim, keepdim=True))

    @staticmethod
    def array_grad(xp, y, g, dim):
        # the same formula, with one temporary and in-place updates
        dx = g * y
        total = dx.sum(axis=dim, keepdims=True)
        xp.subtract(g, total, out=dx)
        dx *= y
        return dx


class LogSoftmax(_SoftmaxBase):
    @staticmethod
    def compute(xp, shifted, dim):
        shifted -= xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        return shifted

    @staticmethod
    def tensor_grad(y, g, dim):
        return g - y.exp() * g.sum(dim, keepdim=True)

    @staticmethod
    def array_grad(xp, y, g, dim):
        dx = xp.exp(y)
        dx *= g.sum(axis=dim, keepdims=True)
        xp.subtract(g, dx, out=dx)
        return dx


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
