"""Adagrad with learning-rate decay."""
from .optimizer import Optimizer, advance, new_step_count, state_zeros

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """PyTorch's Adagrad. Per step t: g = grad + wd*p (negated grad if maximize);
    clr = lr / (1 + (t-1)*lr_decay); s += g^2; p -= clr * g / (sqrt(s) + eps).
    State: 'step' and 'sum' (starting at initial_accumulator_value), created for
    every parameter when the optimizer is built, as PyTorch does."""

    _anchor = "sum"

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._state_of(p, group)

    NON_NEGATIVE = (("lr", "learning rate"), ("lr_decay", "lr_decay value"),
                    ("weight_decay", "weight_decay value"),
                    ("initial_accumulator_value", "initial_accumulator_value value"),
                    ("eps", "epsilon value"))

    def _init_state(self, p, state, group):
        state["step"] = new_step_count()
        state["sum"] = state_zeros(p, group["initial_accumulator_value"])

    def _update_group(self, group):
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        weight_decay, maximize = group["weight_decay"], group["maximize"]
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            state = self._state_of(p, group)
            step = advance(state["step"])
            p.backend.adagrad_step(p._data, g._data, state["sum"]._data, step, lr, lr_decay,
                                   weight_decay, eps, maximize)
