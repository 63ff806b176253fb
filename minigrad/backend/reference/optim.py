"""Optimizer updates, applied in place to one parameter and its state.

Each step function follows PyTorch's single-tensor formulas (torch.optim with
foreach=False). The compiled versions repeat this module's arithmetic element
by element in the same order and dtype, so both give the same numbers.
`param` and the state arrays are updated in place and the functions return
None; `grad` has the shape of `param` and any memory layout.
"""
import math

__all__ = ["sgd_step", "adam_step", "rmsprop_step", "adagrad_step", "sum_of_squares"]


def _effective_grad(xp, param, grad, weight_decay, maximize):
    """A fresh array holding (-grad if maximize else grad) + weight_decay*param."""
    if weight_decay != 0:
        g = xp.multiply(param, weight_decay)
        if maximize:
            g -= grad
        else:
            g += grad
        return g
    g = xp.array(grad, dtype=param.dtype, copy=True)
    if maximize:
        xp.negative(g, out=g)
    return g


def _scale_add(xp, acc, scale, value, weight):
    """acc = scale*acc + weight*value, in place."""
    acc *= scale
    acc += xp.multiply(value, weight)


def _ema_square(xp, avg, value, decay):
    """avg = decay*avg + (1-decay)*value*value, in place."""
    avg *= decay
    t = xp.multiply(value, 1 - decay)
    t *= value
    avg += t


def sgd_step(xp, param, grad, momentum_buffer, lr, momentum, dampening,
             weight_decay, nesterov, maximize, first_step):
    """SGD with optional momentum / dampening / Nesterov.

    momentum_buffer: array like param (None when momentum == 0); on the first
    step it is overwritten with the gradient, as PyTorch does.
    """
    g = _effective_grad(xp, param, grad, weight_decay, maximize)
    if momentum != 0:
        buf = momentum_buffer
        if first_step:
            xp.copyto(buf, g)
        else:
            _scale_add(xp, buf, momentum, g, 1 - dampening)
        if nesterov:
            g += xp.multiply(buf, momentum)
        else:
            g = buf
    param -= xp.multiply(g, lr)


def adam_step(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr,
              beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    """Adam (decoupled=False, L2 penalty in the gradient) or AdamW (decoupled=True).

    step: the step count after incrementing (1 on the first call).
    max_exp_avg_sq: array like param when amsgrad, else None.
    """
    g = _effective_grad(xp, param, grad, 0.0 if decoupled else weight_decay, maximize)
    if decoupled and weight_decay != 0:
        param *= 1 - lr * weight_decay
    _scale_add(xp, exp_avg, beta1, g, 1 - beta1)
    _ema_square(xp, exp_avg_sq, g, beta2)
    step_size, bc2_sqrt = adam_scalars(lr, beta1, beta2, step)
    if amsgrad:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = xp.sqrt(second)
    denom /= bc2_sqrt
    denom += eps
    update = xp.multiply(exp_avg, step_size)
    update /= denom
    param -= update


def adam_scalars(lr, beta1, beta2, step):
    """(lr / (1 - beta1**step), sqrt(1 - beta2**step)): Adam's bias corrections."""
    return lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step)


def rmsprop_step(xp, param, grad, square_avg, grad_avg, momentum_buffer, lr,
                 alpha, eps, weight_decay, momentum, centered, maximize):
    """RMSprop, optionally centered and with momentum.

    grad_avg: array like param when centered, else None.
    momentum_buffer: array like param when momentum > 0, else None.
    """
    g = _effective_grad(xp, param, grad, weight_decay, maximize)
    _ema_square(xp, square_avg, g, alpha)
    if centered:
        _scale_add(xp, grad_avg, alpha, g, 1 - alpha)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = xp.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        momentum_buffer *= momentum
        g /= avg
        momentum_buffer += g
        param -= xp.multiply(momentum_buffer, lr)
    else:
        g *= lr
        g /= avg
        param -= g


def adagrad_step(xp, param, grad, state_sum, step, lr, lr_decay, weight_decay,
                 eps, maximize):
    """Adagrad. step: the step count after incrementing (1 on the first call)."""
    g = _effective_grad(xp, param, grad, weight_decay, maximize)
    clr = adagrad_lr(lr, lr_decay, step)
    state_sum += xp.multiply(g, g)
    std = xp.sqrt(state_sum)
    std += eps
    g *= clr
    g /= std
    param -= g


def adagrad_lr(lr, lr_decay, step):
    """Adagrad's decayed learning rate at `step` (1-based)."""
    return lr / (1 + (step - 1) * lr_decay)


def sum_of_squares(xp, x):
    """sum(x**2) over all elements of x (any shape), accumulated in float64."""
    x64 = x.astype(xp.float64, copy=False)
    return float(xp.sum(xp.square(x64)))
