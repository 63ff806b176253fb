"""Stochastic gradient descent with momentum, dampening and Nesterov momentum."""
from .optimizer import Optimizer, check_number, state_zeros

__all__ = ["SGD"]


class SGD(Optimizer):
    """PyTorch's SGD. With momentum m, dampening d and weight decay wd, per step:
    g = grad + wd*p (negated grad if maximize); b = g on the first step, else
    m*b + (1-d)*g; g = g + m*b if nesterov else b; p -= lr*g.
    State: 'momentum_buffer' (only when momentum != 0)."""

    _anchor = "momentum_buffer"

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    NON_NEGATIVE = (("lr", "learning rate"), ("momentum", "momentum value"),
                    ("weight_decay", "weight_decay value"))

    @classmethod
    def _check_group(cls, group):
        super()._check_group(group)
        check_number("dampening value", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update_group(self, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            buf, first_step = None, False
            if momentum != 0:
                # The buffer appears on the first step with momentum (momentum may be
                # switched on later, e.g. by OneCycleLR): that step copies the grad in.
                state = self._state_of(p, group)
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = state_zeros(p)
                    first_step = True
                buf = buf._data
            p.backend.sgd_step(p._data, g._data, buf, lr, momentum, dampening, weight_decay,
                               nesterov, maximize, first_step)
