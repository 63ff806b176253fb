"""Adam (L2 penalty in the gradient) and AdamW (decoupled weight decay)."""
from .optimizer import Optimizer, advance, check_betas, new_step_count, state_zeros

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """PyTorch's Adam. Per step t: g = grad (+ wd*p unless decoupled; negated if
    maximize); p *= 1 - lr*wd when decoupled; m = b1*m + (1-b1)*g;
    v = b2*v + (1-b2)*g^2; vmax = max(vmax, v) with amsgrad;
    p -= lr/(1-b1^t) * m / (sqrt(v or vmax)/sqrt(1-b2^t) + eps).
    State: 'step', 'exp_avg', 'exp_avg_sq' and, with amsgrad, 'max_exp_avg_sq'."""

    _anchor = "exp_avg"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    NON_NEGATIVE = (("lr", "learning rate"), ("eps", "epsilon value"),
                    ("weight_decay", "weight_decay value"))

    @classmethod
    def _check_group(cls, group):
        super()._check_group(group)
        check_betas(group["betas"])

    def _init_state(self, p, state, group):
        state["step"] = new_step_count()
        state["exp_avg"] = state_zeros(p)
        state["exp_avg_sq"] = state_zeros(p)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = state_zeros(p)

    def _update_group(self, group):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
        decoupled = group["decoupled_weight_decay"]
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            state = self._state_of(p, group)
            step = advance(state["step"])
            vmax = None
            if amsgrad:
                vmax = state.get("max_exp_avg_sq")
                if vmax is None:  # amsgrad switched on after the first step
                    vmax = state["max_exp_avg_sq"] = state_zeros(p)
                vmax = vmax._data
            p.backend.adam_step(p._data, g._data, state["exp_avg"]._data,
                                state["exp_avg_sq"]._data, vmax, step, lr, beta1, beta2, eps,
                                weight_decay, decoupled, amsgrad, maximize)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr*weight_decay before the
    Adam update), default weight_decay=1e-2, as PyTorch's AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # AdamW always decouples, whatever was saved
            group["decoupled_weight_decay"] = True
