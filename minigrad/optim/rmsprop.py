"""RMSprop, optionally centered and with momentum."""
from .optimizer import Optimizer, advance, new_step_count, state_zeros

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """PyTorch's RMSprop. Per step: g = grad + wd*p (negated grad if maximize);
    s = alpha*s + (1-alpha)*g^2; centered: a = alpha*a + (1-alpha)*g and
    avg = sqrt(s - a^2) + eps, else avg = sqrt(s) + eps; with momentum m:
    b = m*b + g/avg, p -= lr*b; without: p -= lr*g/avg.
    State: 'step', 'square_avg', 'momentum_buffer' (momentum > 0), 'grad_avg' (centered)."""

    _anchor = "square_avg"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    NON_NEGATIVE = (("lr", "learning rate"), ("eps", "epsilon value"), ("momentum", "momentum value"),
                    ("weight_decay", "weight_decay value"), ("alpha", "alpha value"))

    def _init_state(self, p, state, group):
        state["step"] = new_step_count()
        state["square_avg"] = state_zeros(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = state_zeros(p)
        if group["centered"]:
            state["grad_avg"] = state_zeros(p)

    def _update_group(self, group):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        centered, maximize = group["centered"], group["maximize"]
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            state = self._state_of(p, group)
            advance(state["step"])
            grad_avg = _optional_state(state, "grad_avg", centered, p)
            buf = _optional_state(state, "momentum_buffer", momentum > 0, p)
            p.backend.rmsprop_step(p._data, g._data, state["square_avg"]._data, grad_avg, buf,
                                   lr, alpha, eps, weight_decay, momentum, centered, maximize)


def _optional_state(state, key, wanted, p):
    """The array of an option's state entry (made when the option was switched on
    after the first step), or None when the option is off."""
    if not wanted:
        return None
    t = state.get(key)
    if t is None:
        t = state[key] = state_zeros(p)
    return t._data
