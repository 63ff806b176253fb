"""Fused optimizer updates on CUDA: SGD and Adam/AdamW as one CuPy
elementwise kernel per parameter and step, where the reference
(reference/optim.py run on CuPy) launches five to ten array operations.

The arithmetic is the reference's, element by element, in its order and in
the parameter's dtype, as the CPU's compiled loops do (_core/optim.pyx):
hyperparameters are rounded once to that dtype, and the kernels are
compiled without fused multiply-adds so every rounding is the reference's.
Inputs outside the fast path (mixed dtypes or shapes, other dtypes) go to
the reference.
"""
import functools

import numpy as np

from .cuda import fusable
from .reference import optim as _ref

_OPTIONS = ("--fmad=false",)

# (-g if maximize else g) + wd*p, as reference._effective_grad
_GRAD = "T gi = maximize ? -g : g; if (wd != (T)0) gi = wd * p + gi;"


@functools.lru_cache(maxsize=None)
def _kernels(cupy):
    ek = cupy.ElementwiseKernel
    adam_head = ("T gi = maximize ? -g : g; if (l2 != (T)0) gi = l2 * p + gi;"
                 "if (shrink_param) p = p * shrink;"
                 "T mi = beta1 * m + gi * keep1; m = mi;"
                 "T vi = beta2 * v + gi * keep2 * gi; v = vi;")
    adam_tail = "T denom = sqrt(vi) / bc2_sqrt + eps; p = p - mi * step_size / denom;"
    adam_in = ("T g, T l2, T shrink, T beta1, T keep1, T beta2, T keep2, T eps, T step_size, "
               "T bc2_sqrt, int32 shrink_param, int32 maximize")
    return {
        "sgd": ek("T g, T lr, T wd, int32 maximize", "T p",
                  _GRAD + "p = p - gi * lr;", "minigrad_sgd", options=_OPTIONS),
        "sgd_momentum": ek(
            "T g, T lr, T momentum, T keep, T wd, int32 maximize, int32 nesterov, "
            "int32 first_step", "T p, T buf",
            _GRAD + "T b = first_step ? gi : momentum * buf + gi * keep; buf = b;"
            "gi = nesterov ? gi + b * momentum : b; p = p - gi * lr;",
            "minigrad_sgd_momentum", options=_OPTIONS),
        "adam": ek(adam_in, "T p, T m, T v", adam_head + adam_tail, "minigrad_adam",
                   options=_OPTIONS),
        "adam_amsgrad": ek(adam_in, "T p, T m, T v, T vmax",
                           adam_head + "vi = vmax > vi ? vmax : vi; vmax = vi;" + adam_tail,
                           "minigrad_adam_amsgrad", options=_OPTIONS),
    }


def install(backend, cupy):
    """Puts the fused updates in place of the reference ones on `backend`."""
    kernels = functools.partial(_kernels, cupy)

    def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
                 nesterov, maximize, first_step):
        states = (momentum_buffer,) if momentum != 0 else ()
        if not fusable(cupy, param, grad, *states):
            return _ref.sgd_step(cupy, param, grad, momentum_buffer, lr, momentum, dampening,
                                 weight_decay, nesterov, maximize, first_step)
        t = param.dtype.type
        if momentum == 0:
            kernels()["sgd"](grad, t(lr), t(weight_decay), np.int32(maximize), param)
        else:
            kernels()["sgd_momentum"](grad, t(lr), t(momentum), t(1 - dampening),
                                      t(weight_decay), np.int32(maximize), np.int32(nesterov),
                                      np.int32(first_step), param, momentum_buffer)

    def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2,
                  eps, weight_decay, decoupled, amsgrad, maximize):
        states = (exp_avg, exp_avg_sq) + ((max_exp_avg_sq,) if amsgrad else ())
        if not fusable(cupy, param, grad, *states):
            return _ref.adam_step(cupy, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step,
                                  lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
                                  maximize)
        t = param.dtype.type
        step_size, bc2_sqrt = _ref.adam_scalars(lr, beta1, beta2, step)
        args = (grad, t(0.0 if decoupled else weight_decay), t(1 - lr * weight_decay),
                t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(step_size),
                t(bc2_sqrt), np.int32(decoupled and weight_decay != 0), np.int32(maximize),
                param, exp_avg, exp_avg_sq)
        if amsgrad:
            kernels()["adam_amsgrad"](*args, max_exp_avg_sq)
        else:
            kernels()["adam"](*args)

    for name, fused in (("sgd_step", sgd_step), ("adam_step", adam_step)):
        setattr(backend, name, fused)
        backend.compiled[name] = fused
