"""Matrix products with NumPy's matmul semantics (1-D promotion, batch broadcasting)."""
from ..autograd import Op, is_grad_enabled
from ..tensor import Tensor
from .elementwise import unbroadcast

_wrap = Tensor._wrap


def _matmul_error(a, b):
    sa, sb = tuple(a.shape), tuple(b.shape)
    inner_b = sb[-2] if len(sb) > 1 else sb[0] if sb else None
    return ValueError(f"matmul: shapes {sa} and {sb} cannot be multiplied "
                      f"({sa[-1] if sa else None} != {inner_b}, or batch dims do not broadcast)")


class MatMul(Op):
    def forward(self, a, b):
        self.a, self.b = a, b
        ad, bd = a._data, b._data
        if ad.ndim == 0 or bd.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                             f"{tuple(ad.shape)} and {tuple(bd.shape)}")
        if ad.dtype != bd.dtype:
            raise TypeError(f"matmul: expected both operands to have the same dtype, got {a.dtype} "
                            f"and {b.dtype}; convert one with .to(dtype)")
        try:
            if ad.ndim == 2 and bd.ndim == 2:
                return self.device.backend.matmul(ad, bd)
            return ad @ bd
        except ValueError:
            raise _matmul_error(a, b) from None

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 2 and b.ndim == 2 and not is_grad_enabled():
            # the usual case on the arrays: four graph ops fewer per product
            gd, dev = g._data, g.device
            ad, bd, backend = a._data, b._data, dev.backend
            need_a, need_b = self.edges[0] is not None, self.edges[1] is not None
            if need_a and need_b:  # the same work each: side by side where the backend can
                ga, gb = backend.matmul_pair(gd, bd.T, ad.T, gd)
            else:
                ga = backend.matmul(gd, bd.T) if need_a else None
                gb = backend.matmul(ad.T, gd) if need_b else None
            return (None if ga is None else _wrap(ga, dev), None if gb is None else _wrap(gb, dev))
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if self.edges[0] is not None else None,
                    g * a if self.edges[1] is not None else None)
        a2 = a if a.ndim > 1 else a.reshape(1, -1)
        b2 = b if b.ndim > 1 else b.reshape(-1, 1)
        g2 = g
        if a.ndim == 1:
            g2 = g2.unsqueeze(-2)
        if b.ndim == 1:
            g2 = g2.unsqueeze(-1)
        if self.edges[0] is not None:
            ga = unbroadcast(g2 @ b2.transpose(-1, -2), a2.shape)
            if a.ndim == 1:
                ga = ga.reshape(a.shape)
        if self.edges[1] is not None:
            gb = unbroadcast(a2.transpose(-1, -2) @ g2, b2.shape)
            if b.ndim == 1:
                gb = gb.reshape(b.shape)
        return ga, gb
