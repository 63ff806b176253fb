"""Rows of logits: softmax and log_softmax (forward and backward), and the
fused softmax cross-entropy: per-sample losses forward, logits gradient backward.

With logp = log_softmax(logits), weights w (all ones when weight is None) and
eps = label_smoothing, sample i with target t_i has, as in PyTorch,

    loss_i = (1 - eps) * w[t_i] * (-logp[i, t_i]) + (eps / C) * sum_c w[c] * (-logp[i, c])

and loss_i = 0 where t_i == ignore_index. The reduction over samples is left
to the caller (PyTorch's 'mean' divides by the sum of w[t_i] over the rows
that are not ignored). Rows are shifted by their maximum before exp, so any
finite logits give finite results.
"""

__all__ = ["softmax_forward", "softmax_backward", "cross_entropy_forward",
           "cross_entropy_backward", "losses_sum"]


def losses_sum(xp, losses):
    """The sum of per-sample losses (N,), as a 0-d array of their dtype."""
    return xp.asarray(losses.sum(), dtype=losses.dtype)


def softmax_forward(xp, x, dim, log):
    """softmax (log=False) or log_softmax (log=True) of x along `dim`, stable:
    the maximum along dim is subtracted first, so logits of +-1e4 stay finite."""
    shifted = x - x.max(axis=dim, keepdims=True)
    if log:
        shifted -= xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        return shifted
    e = xp.exp(shifted)
    e /= e.sum(axis=dim, keepdims=True)
    return e


def softmax_backward(xp, y, g, dim, log):
    """dx from the output y and its gradient g: g - exp(y) * sum(g) for
    log_softmax, y * (g - sum(g * y)) for softmax (sums along dim)."""
    if log:
        dx = xp.exp(y)
        dx *= g.sum(axis=dim, keepdims=True)
        xp.subtract(g, dx, out=dx)
        return dx
    dx = g * y
    total = dx.sum(axis=dim, keepdims=True)
    xp.subtract(g, total, out=dx)
    dx *= y
    return dx


def target_out_of_bounds(value, num_classes):
    """The error raised for a target that is neither a class nor ignore_index."""
    return ValueError(f"Target {value} is out of bounds for {num_classes} classes")


def check_targets(xp, target, num_classes, ignore_index):
    """Raise ValueError naming the first target outside [0, C) that is not
    ignore_index; return the mask of rows that count (target != ignore_index)."""
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        raise target_out_of_bounds(int(target[int(bad.argmax())]), num_classes)
    return valid


def check_shapes(logits, target, weight):
    """Raise ValueError unless logits is (N, C), target (N,), weight (C,) or None."""
    if logits.ndim != 2:
        raise ValueError(f"cross entropy expects logits of shape (N, C), got {tuple(logits.shape)}")
    n, c = logits.shape
    if tuple(target.shape) != (n,):
        raise ValueError(f"cross entropy expects target of shape ({n},), got {tuple(target.shape)}")
    if weight is not None and tuple(weight.shape) != (c,):
        raise ValueError(f"cross entropy expects weight of shape ({c},), got {tuple(weight.shape)}")


def cross_entropy_forward(xp, logits, target, weight, ignore_index, label_smoothing):
    """logits (N, C) float, target (N,) int, weight (C,) or None.

    Returns (losses, lse): per-sample losses (N,) and the log-sum-exp of each
    row (N,), both in logits' dtype; lse is what the backward pass needs.
    """
    check_shapes(logits, target, weight)
    n, c = logits.shape
    valid = check_targets(xp, target, c, ignore_index)
    safe_t = xp.where(valid, target, 0)
    rows = xp.arange(n)

    row_max = logits.max(axis=1, keepdims=True)
    shifted = logits - row_max
    log_sum = xp.log(xp.exp(shifted).sum(axis=1))
    lse = row_max[:, 0] + log_sum

    nll_t = log_sum - shifted[rows, safe_t]  # -logp[i, t_i]
    w_t = weight[safe_t] if weight is not None else 1
    losses = ((1 - label_smoothing) * w_t) * nll_t
    if label_smoothing:
        # sum_c w_c * (-logp_ic) = W * log_sum - sum_c w_c * shifted_ic
        if weight is None:
            smooth = c * log_sum - shifted.sum(axis=1)
        else:
            smooth = weight.sum() * log_sum - shifted @ weight
        losses = losses + (label_smoothing / c) * smooth
    losses = xp.where(valid, losses, xp.zeros_like(losses))
    return losses, lse


def cross_entropy_backward(xp, logits, target, weight, ignore_index, label_smoothing, lse, dlosses):
    """Gradient of sum_i dlosses[i] * losses[i] with respect to logits (N, C).

    lse is the (N,) log-sum-exp returned by cross_entropy_forward.
    d loss_i / d z_ic = p_ic * ((1 - eps) w[t_i] + (eps / C) W) - (1 - eps) w[t_i] [c == t_i] - (eps / C) w_c
    with p = softmax(z) and W = sum_c w_c.
    """
    check_shapes(logits, target, weight)
    n, c = logits.shape
    valid = check_targets(xp, target, c, ignore_index)
    safe_t = xp.where(valid, target, 0)
    rows = xp.arange(n)
    eps = label_smoothing

    g = xp.where(valid, dlosses, xp.zeros_like(dlosses))  # ignored rows get no gradient
    w_t = weight[safe_t] if weight is not None else xp.ones_like(g)
    w_sum = weight.sum() if weight is not None else c
    hit = ((1 - eps) * w_t) * g                           # weight on the one-hot term
    p_scale = hit + ((eps / c) * w_sum) * g               # weight on the softmax term

    grad = xp.exp(logits - lse[:, None]) * p_scale[:, None]
    grad[rows, safe_t] -= hit
    if eps:
        w_row = weight[None, :] if weight is not None else 1
        grad -= ((eps / c) * g)[:, None] * w_row
    return grad
