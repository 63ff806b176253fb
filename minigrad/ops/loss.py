"""Loss functions with PyTorch's reductions ('mean' | 'sum' | 'none').

Class-index losses (cross_entropy, nll_loss) are single ops: the input is
viewed as rows (M, C) with the class dim moved last, per-sample losses come
from the backend (cross-entropy: the fused log-softmax + NLL kernel), and the
'mean' reduction divides by the summed weight of the targets that are not
ignored, as PyTorch does. The elementwise losses are short Tensor-op
compositions, except BCE: one op, for PyTorch's clamped logs and gradient.
Every backward here is itself differentiable (create_graph works).
"""
import contextlib
import functools
import math
import warnings

from ..autograd import Op, is_grad_enabled
from ..backend.reference.loss import check_targets
from ..tensor import Tensor, broadcasts_to
from .activation import activation
from .softmax import log_softmax, softmax

_wrap = Tensor._wrap
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction; expected one of "
                         f"{', '.join(repr(r) for r in REDUCTIONS)}")
    return reduction


def apply_reduction(loss, reduction):
    """Applies a checked reduction to an elementwise loss tensor."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# ---------------------------------------------------------------------------
# class-index losses

class RowLayout:
    """Views (C,), (N, C) or (N, C, d1, ...) data as rows (M, C) with the class
    dim last, and back. Works on arrays and Tensors alike."""

    def __init__(self, shape):
        self.shape = shape
        nd = len(shape)
        self.num_classes = shape[0] if nd == 1 else shape[1]
        self.sample_shape = () if nd == 1 else (shape[0],) + tuple(shape[2:])
        self.perm = (0,) + tuple(range(2, nd)) + (1,) if nd > 2 else None
        if self.perm is not None:
            self.inverse = tuple(self.perm.index(i) for i in range(nd))
            self.moved_shape = tuple(shape[i] for i in self.perm)

    def rows(self, a):
        if self.perm is not None:
            a = a.permute(*self.perm) if isinstance(a, Tensor) else a.transpose(self.perm)
        return a.reshape(-1, self.num_classes)

    def unrows(self, a):
        if self.perm is None:
            return a if tuple(a.shape) == self.shape else a.reshape(self.shape)
        a = a.reshape(self.moved_shape)
        return a.permute(*self.inverse) if isinstance(a, Tensor) else a.transpose(self.inverse)


# one layout per input shape (a training loop asks for the same one every step)
_row_layout = functools.lru_cache(maxsize=64)(RowLayout)


@contextlib.contextmanager
def _quiet(xp, **kinds):
    """Silences numpy's floating point warnings for results that are expected
    (a clamped log(0), PyTorch's 0/0 = nan for an all-ignored batch)."""
    errstate = getattr(xp, "errstate", None)
    if errstate is None:
        yield
    else:
        with errstate(**kinds):
            yield


def _divide(xp, a, b):
    # every target ignored gives 0/0 = nan, as PyTorch, without numpy's warning
    # (the zero test runs only where warnings exist: it would sync a GPU)
    if getattr(xp, "errstate", None) is not None and not b:
        with _quiet(xp, invalid="ignore", divide="ignore"):
            return a / b
    return a / b


class _ClassIndexLoss(Op):
    """Shared forward/backward plumbing: layout, target weights, reduction.
    Subclasses give per-sample losses and the gradient of the rows."""

    def forward(self, input, target, weight, ignore_index, reduction, layout, *extra):
        xp = self.device.backend.xp
        x2 = layout.rows(input._data)
        t = target.reshape(-1)
        self.input, self.x2, self.t, self.weight, self.ignore_index = input, x2, t, weight, ignore_index
        self.layout, self.reduction, self.extra = layout, reduction, extra
        try:
            losses = self.per_sample(xp, x2, t, weight, ignore_index, *extra)
        except ValueError as e:  # a target outside [0, C) that is not ignore_index
            raise ValueError(f"{self.fname}: {e}: target values must be class indices in "
                             f"[0, {layout.num_classes - 1}] or ignore_index={ignore_index}") from None
        if reduction == "none":
            return losses.reshape(layout.sample_shape)
        total = self.device.backend.losses_sum(losses)
        if reduction == "mean":
            valid = t != ignore_index
            if weight is None:
                denom = xp.count_nonzero(valid)  # (a bool array's sum() is 2x slower)
            else:
                denom = xp.where(valid, weight[xp.where(valid, t, 0)], 0).sum()
            self.denom = xp.asarray(denom, dtype=x2.dtype)
            total = _divide(xp, total, self.denom)
        return xp.asarray(total, dtype=x2.dtype)

    def backward(self, g):
        if is_grad_enabled():
            dl = g.reshape(-1) if self.reduction == "none" else g
            if self.reduction == "mean":
                dl = dl / _wrap(self.denom, self.device)
            dx2 = self.composite_grad(dl)
        else:
            xp = self.device.backend.xp
            gd = g._data
            if self.reduction == "none":
                dl_rows = xp.ascontiguousarray(gd.reshape(-1))
            else:
                dl_rows = xp.empty(self.x2.shape[0], self.x2.dtype)
                dl_rows[...] = gd / self.denom if self.reduction == "mean" else gd
            dx2 = _wrap(self.fused_grad(xp, dl_rows), self.device)
        return (self.layout.unrows(dx2),) + (None,) * (5 + len(self.extra))

    def coefficients(self, xp, smoothing=0.0):
        """A (M, C): loss_i = sum_c A_ic * (-logp_ic) for cross-entropy (and
        -sum_c A_ic x_ic for NLL); zero rows where the target is ignored."""
        t, w = self.t, self.weight
        m, c = self.x2.shape
        valid = t != self.ignore_index
        safe_t = xp.where(valid, t, 0)
        w_t = w[safe_t] if w is not None else xp.ones(m, self.x2.dtype)
        a = xp.zeros((m, c), self.x2.dtype)
        a[xp.arange(m), safe_t] = (1.0 - smoothing) * w_t
        if smoothing:
            a += (smoothing / c) * (w[None, :] if w is not None else 1.0)
        a[~valid] = 0
        return a


class CrossEntropy(_ClassIndexLoss):
    """Fused log-softmax + NLL over class indices; extra arg: label_smoothing."""

    fname = "cross_entropy"

    def per_sample(self, xp, x2, t, weight, ignore_index, smoothing):
        losses, self.lse = self.device.backend.cross_entropy_forward(
            x2, t, weight, ignore_index, smoothing)
        return losses

    def fused_grad(self, xp, dl_rows):
        return self.device.backend.cross_entropy_backward(
            self.x2, self.t, self.weight, self.ignore_index, self.extra[0], self.lse, dl_rows)

    def composite_grad(self, dl):
        # d loss_i / d z_ic = p_ic * sum_c' A_ic' - A_ic, p = softmax(z)
        a = self.coefficients(self.device.backend.xp, self.extra[0])
        z = self.layout.rows(self.input)
        p = softmax(z, 1)
        coef = _wrap(a, self.device)
        return (p * _wrap(a.sum(axis=1, keepdims=True), self.device) - coef) * _rows_column(dl)


class NLLLoss(_ClassIndexLoss):
    """loss_i = -w[t_i] * input[i, t_i] (0 where t_i == ignore_index)."""

    fname = "nll_loss"

    def per_sample(self, xp, x2, t, weight, ignore_index):
        m, c = x2.shape
        valid = check_targets(xp, t, c, ignore_index)
        safe_t = xp.where(valid, t, 0)
        picked = -x2[xp.arange(m), safe_t]
        if weight is not None:
            picked = picked * weight[safe_t]
        return xp.where(valid, picked, xp.zeros_like(picked))

    def fused_grad(self, xp, dl_rows):
        return -self.coefficients(xp) * dl_rows[:, None]

    def composite_grad(self, dl):
        return _wrap(-self.coefficients(self.device.backend.xp), self.device) * _rows_column(dl)


def _rows_column(dl):
    # per-row gradients (M,) become a column; a reduced (0-d) one broadcasts as is
    return dl.reshape(-1, 1) if dl.ndim else dl


def _check_class_inputs(name, input, target, weight):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name}: input and target must be Tensors, got {type(input).__name__} "
                        f"and {type(target).__name__}")
    if input._data.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating point input, got {input.dtype}")
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d tensor")
    layout = _row_layout(input._data.shape)
    if target._data.dtype.kind != "i":
        raise RuntimeError(f"{name}: expected scalar type Long (int64) for class-index targets but "
                           f"found {target.dtype}")
    if tuple(target.shape) != layout.sample_shape:
        raise ValueError(f"{name}: expected target of shape {layout.sample_shape} for input of shape "
                         f"{tuple(input.shape)} (class dim {0 if input.ndim == 1 else 1}), got "
                         f"{tuple(target.shape)}")
    if target._device is not input._device:
        raise RuntimeError(f"{name}: input is on {input._device} but target is on {target._device}")
    if weight is not None:
        if not isinstance(weight, Tensor):
            raise TypeError(f"{name}: weight must be a Tensor or None, got {type(weight).__name__}")
        if tuple(weight.shape) != (layout.num_classes,):
            raise ValueError(f"{name}: weight must have shape ({layout.num_classes},) (one per class), "
                             f"got {tuple(weight.shape)}")
        if weight._device is not input._device:
            raise RuntimeError(f"{name}: input is on {input._device} but weight is on {weight._device}")
        if weight._data.dtype != input._data.dtype:
            raise TypeError(f"{name}: weight is {weight.dtype} but input is {input.dtype}")
        return layout, weight._data
    return layout, None


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",  # noqa: A002
                  label_smoothing=0.0):
    """Cross-entropy of logits `input` (C,), (N, C) or (N, C, d1, ...) against
    class indices (int64, shape (), (N,) or (N, d1, ...)) or, when `target` is
    floating point with input's shape, class probabilities."""
    check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if isinstance(target, Tensor) and target.is_floating_point() and isinstance(input, Tensor) \
            and target.shape == input.shape:
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    layout, w = _check_class_inputs("cross_entropy", input, target, weight)
    return CrossEntropy.apply(input, target._data, w, int(ignore_index), reduction, layout,
                              float(label_smoothing))


def _cross_entropy_probabilities(input, target, weight, reduction, smoothing):
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dimension, got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    c = input.shape[class_dim]
    if smoothing:
        target = target * (1.0 - smoothing) + smoothing / c
    terms = log_softmax(input, class_dim) * target
    if weight is not None:
        _check_class_weight("cross_entropy", weight, c, input)
        terms = terms * weight.reshape((c,) + (1,) * (input.ndim - class_dim - 1))
    return apply_reduction(-terms.sum(class_dim), reduction)


def _check_class_weight(name, weight, c, input):
    if not isinstance(weight, Tensor) or tuple(weight.shape) != (c,):
        raise ValueError(f"{name}: weight must be a Tensor of shape ({c},), got "
                         f"{tuple(getattr(weight, 'shape', ())) or type(weight).__name__}")
    if weight._data.dtype != input._data.dtype:
        raise TypeError(f"{name}: weight is {weight.dtype} but input is {input.dtype}")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):  # noqa: A002
    """Negative log-likelihood of log-probabilities `input` (C,), (N, C) or
    (N, C, d1, ...) at class indices `target`."""
    check_reduction(reduction)
    layout, w = _check_class_inputs("nll_loss", input, target, weight)
    return NLLLoss.apply(input, target._data, w, int(ignore_index), reduction, layout)


# ---------------------------------------------------------------------------
# elementwise losses

def _check_pair(name, input, target, strict):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name}: input and target must be Tensors, got {type(input).__name__} "
                        f"and {type(target).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"{name}: expected a floating point input, got {input.dtype}")
    if target._device is not input._device:
        raise RuntimeError(f"{name}: input is on {input._device} but target is on {target._device}")
    if target.shape != input.shape:
        msg = (f"Using a target size ({tuple(target.shape)}) that is different to the input size "
               f"({tuple(input.shape)})")
        if strict:
            raise ValueError(f"{name}: {msg}; please ensure they have the same size.")
        warnings.warn(f"{name}: {msg}. This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)


def _check_elementwise_weight(name, arg, weight, input):  # noqa: A002
    """A per-element weight must broadcast to the input's shape (not enlarge it)."""
    if weight is None:
        return
    if not isinstance(weight, Tensor):
        raise TypeError(f"{name}: {arg} must be a Tensor or None, got {type(weight).__name__}")
    if weight._device is not input._device:
        raise RuntimeError(f"{name}: input is on {input._device} but {arg} is on {weight._device}")
    if not broadcasts_to(weight.shape, input.shape):
        raise ValueError(f"{name}: {arg} of shape {tuple(weight.shape)} cannot be broadcast to the "
                         f"input's shape {tuple(input.shape)}")


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """(input - target)**2, reduced."""
    check_reduction(reduction)
    _check_pair("mse_loss", input, target, strict=False)
    diff = input - target
    return apply_reduction(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):  # noqa: A002
    """|input - target|, reduced (gradient 0 where they are equal, as PyTorch)."""
    check_reduction(reduction)
    _check_pair("l1_loss", input, target, strict=False)
    return apply_reduction((input - target).abs(), reduction)




class BinaryCrossEntropy(Op):
    """-(y log x + (1 - y) log(1 - x)) elementwise with both logs clamped at
    -100 and the input gradient (x - y) / max(x (1 - x), 1e-12), as PyTorch."""

    def forward(self, x, y):
        xp = self.device.backend.xp
        xd, yd = x._data, y._data
        self.x, self.y = x, y
        with _quiet(xp, divide="ignore"):
            self.log_x = xp.maximum(xp.log(xd), -100.0)
            self.log_1mx = xp.maximum(xp.log(1.0 - xd), -100.0)
        return -(yd * self.log_x + (1.0 - yd) * self.log_1mx)

    def backward(self, g):
        x, y = self.x, self.y
        dx = dy = None
        if self.edges[0] is not None:
            dx = g * (x - y) / ((1.0 - x) * x).clamp(min=1e-12)
        if self.edges[1] is not None:
            if is_grad_enabled():  # rebuilt from x so that it is differentiable
                log_x, log_1mx = x.log().clamp(min=-100.0), (1.0 - x).log().clamp(min=-100.0)
            else:
                log_x, log_1mx = _wrap(self.log_x, self.device), _wrap(self.log_1mx, self.device)
            dy = g * (log_1mx - log_x)
        return dx, dy


def binary_cross_entropy(input, target, weight=None, reduction="mean"):  # noqa: A002
    """BCE of probabilities `input` in [0, 1] against `target` (same shape)."""
    check_reduction(reduction)
    _check_pair("binary_cross_entropy", input, target, strict=True)
    if target._data.dtype != input._data.dtype:
        raise TypeError(f"binary_cross_entropy: target is {target.dtype} but input is {input.dtype}")
    d = input._data
    if d.size:
        lo, hi = d.min(), d.max()  # nan if any element is nan: refused too
        if not (bool(lo >= 0) and bool(hi <= 1)):
            raise ValueError(f"binary_cross_entropy: all elements of input should be between 0 and "
                             f"1, found values in [{float(lo)}, {float(hi)}] (apply sigmoid first, "
                             "or use binary_cross_entropy_with_logits)")
    _check_elementwise_weight("binary_cross_entropy", "weight", weight, input)
    loss = BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        loss = loss * weight
    return apply_reduction(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",  # noqa: A002
                                     pos_weight=None):
    """BCE of sigmoid(input) against target, from the logits:
    pos_weight * y * softplus(-x) + (1 - y) * softplus(x). Both terms are
    non-negative, so nothing overflows or cancels for any logit."""
    check_reduction(reduction)
    _check_pair("binary_cross_entropy_with_logits", input, target, strict=True)
    _check_elementwise_weight("binary_cross_entropy_with_logits", "weight", weight, input)
    _check_elementwise_weight("binary_cross_entropy_with_logits", "pos_weight", pos_weight, input)
    # softplus by the stable kernel, never switching to the identity
    positive = target * activation(-input, "softplus", 1.0, math.inf)
    if pos_weight is not None:
        positive = positive * pos_weight
    loss = positive + (1.0 - target) * activation(input, "softplus", 1.0, math.inf)
    if weight is not None:
        loss = loss * weight
    return apply_reduction(loss, reduction)
