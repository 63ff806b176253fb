"""Normalization: one differentiable op behind every norm layer, and the
functional forms (PyTorch's names, signatures and error cases).

Every normalization subtracts a mean, divides by a standard deviation and
applies an optional per-feature scale and shift; the layers differ only in
which elements share statistics. `Normalization` is that one op. A `Plan`
tells it how to view the input for the backend's fused kernels (a reshape,
so no copy for contiguous input):

- batch layout (N, C, S): statistics per channel c over (n, s) -- BatchNorm,
  and InstanceNorm as (1, N*C, S) with its weight tiled N times; or given
  statistics (evaluation with running statistics);
- group layout (N, G, K, S): statistics per (n, g) over (k, s) -- GroupNorm
  (N, G, C/G, HW), LayerNorm (M, 1, D, 1), RMSNorm (LayerNorm's layout
  without centering).

Forward and first-order backward are the fused kernels (closed-form
backward). When a graph of the backward is requested (create_graph=True),
the same closed form is built from Tensor ops instead, so second derivatives
(gradient penalties, Hessian-vector products) work through every layer.

Running statistics follow PyTorch: the batch is normalized with its biased
variance and running_var is updated with the unbiased one, in place. An input
with no elements has no statistics: its (empty) output leaves the running
statistics as they are, as in PyTorch.
"""
import math
import numbers
from collections.abc import Iterable

from ..autograd import Op, is_grad_enabled
from ..dtypes import float64
from ..tensor import Tensor, zeros
from .shape import cat
from .activation import activation, through_fused_relu
from .softmax import softmax

_wrap = Tensor._wrap

BATCH = "batch"
GROUP = "group"


class Plan:
    """How one call normalizes: the kernel view of the input (`shape`), of
    the affine parameters (`param_shape`, repeated `tile` times along the
    channels), eps, centering, and for the batch layout either given
    statistics (`given` = (mean, rstd) arrays) or, after the forward, the
    batch statistics it measured (`mean`, biased `var`)."""

    __slots__ = ("name", "layout", "shape", "param_shape", "tile", "eps", "center", "given",
                 "relu", "mean", "var", "pre_bias", "overwrite")

    def __init__(self, name, layout, shape, param_shape, eps, center=True, tile=1, given=None,
                 relu=False):
        self.name, self.layout, self.shape, self.param_shape = name, layout, shape, param_shape
        self.eps, self.center, self.tile, self.given = float(eps), center, tile, given
        self.relu = relu  # batch layout only: relu(y), fused into the kernel
        self.mean = self.var = None
        # given statistics only: an array added to the input first, and whether
        # the output may be written over the input (see batch_norm_relu)
        self.pre_bias, self.overwrite = None, False

    @property
    def axes(self):
        """The axes of `shape` that statistics are taken over."""
        return (0, 2) if self.layout is BATCH else (2, 3)

    @property
    def param_axes(self):
        """The axes of `shape` that the affine parameters broadcast over."""
        return (0, 2) if self.layout is BATCH else (0, 3)

    # -- affine parameters, as arrays for the kernels -----------------------------
    def kernel_param(self, t, xp):
        if t is None:
            return None
        a = t._data.reshape(self.param_shape)
        return a if self.tile == 1 else xp.tile(a, self.tile)

    def param_grad(self, d, like):
        """A kernel's parameter gradient back in the parameter's own shape."""
        if self.tile != 1:
            d = d.reshape(self.tile, -1).sum(axis=0)
        return d.reshape(like._data.shape)

    # -- the same, as Tensors for the composite (differentiable) backward ----------
    def broadcast_param(self, t):
        if self.layout is GROUP:
            return t.reshape((1,) + self.param_shape + (1,))
        t = t.reshape(1, -1)
        if self.tile != 1:
            t = t.expand(self.tile, t.shape[1])
        return t.reshape(1, -1, 1)

    def reduce_param(self, t, like):
        t = t.sum(self.param_axes)
        if self.tile != 1:
            t = t.reshape(self.tile, -1).sum(0)
        return t.reshape(like._data.shape)


class Normalization(Op):
    """y = (x - mean) * rstd * weight + bias over the plan's layout.
    Arguments: x, weight (or None), bias (or None), plan."""

    def forward(self, x, weight, bias, plan):
        be = self.device.backend
        xd = x._data.reshape(plan.shape)
        w = plan.kernel_param(weight, be.xp)
        b = plan.kernel_param(bias, be.xp)
        if plan.layout is GROUP:
            y, mean, rstd = be.group_norm_forward(xd, w, b, plan.eps, plan.center)
        elif plan.given is None:
            y, mean, plan.var, rstd = be.batch_norm_forward(xd, w, b, plan.eps, plan.relu)
            plan.mean = mean
        else:
            mean, rstd = plan.given
            y = be.batch_norm_apply(xd, mean, rstd, w, b, plan.relu, plan.pre_bias,
                                    xd if plan.overwrite else None)
        self.x, self.xd, self.weight, self.bias, self.plan = x, xd, weight, bias, plan
        self.w, self.mean, self.rstd = w, mean, rstd
        self.out = y if plan.relu else None  # the fused relu's gradient mask
        return y.reshape(x._data.shape)

    @property
    def name(self):
        plan = self.__dict__.get("plan")  # gone once backward has released the node
        return "Normalization" if plan is None else plan.name + ("Relu" if plan.relu else "")

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad[:3]
        if self.out is not None:  # through the fused relu first, as a ReLU node would
            g = through_fused_relu(self.out, g, self.device)
        if is_grad_enabled():
            return self._composite_backward(g, need_x, need_w, need_b) + (None,)
        plan, be, dev = self.plan, self.device.backend, self.device
        dy = g._data.reshape(plan.shape)
        w = self.w
        if w is None and need_b:  # a unit scale makes the kernel report dbias too
            w = be.xp.ones(plan.shape[1] if plan.layout is BATCH else plan.param_shape,
                           dtype=self.xd.dtype)
        if plan.layout is GROUP:
            dx, dw, db = be.group_norm_backward(dy, self.xd, self.mean, self.rstd, w, plan.center)
        else:
            dx, dw, db = be.batch_norm_backward(dy, self.xd, self.mean, self.rstd, w,
                                                plan.given is None)
        return (_wrap(dx.reshape(self.x._data.shape), dev) if need_x else None,
                _wrap(plan.param_grad(dw, self.weight), dev) if need_w else None,
                _wrap(plan.param_grad(db, self.bias), dev) if need_b else None,
                None)

    def _composite_backward(self, g, need_x, need_w, need_b):
        # the kernels' closed form written with Tensor ops, so that it can itself
        # be differentiated (create_graph=True)
        plan, dev = self.plan, self.device
        x = self.x.reshape(plan.shape)
        g = g.reshape(plan.shape)
        axes = plan.axes
        if plan.given is None:
            xc = x - x.mean(axes, keepdim=True) if plan.center else x
            rstd = 1.0 / ((xc * xc).mean(axes, keepdim=True) + plan.eps).sqrt()
        else:
            mean, rstd = (_wrap(a.reshape(1, -1, 1), dev) for a in plan.given)
            xc = x - mean
        xhat = xc * rstd
        gw = g if self.weight is None else g * plan.broadcast_param(self.weight)
        dx = dw = db = None
        if need_x:
            if plan.given is None:
                proj = xhat * (gw * xhat).mean(axes, keepdim=True)
                if plan.center:
                    proj = proj + gw.mean(axes, keepdim=True)
                gw = gw - proj
            dx = (gw * rstd).reshape(self.x._data.shape)
        if need_w:
            dw = plan.reduce_param(g * xhat, self.weight)
        if need_b:
            db = plan.reduce_param(g, self.bias)
        return dx, dw, db


# ---------------------------------------------------------------- checks

def check_tensor(fn, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: expected a Tensor input, got {type(x).__name__}")


def check_real(fn, name, value, low=-math.inf):
    """value is a real number in [low, inf): finite, never nan (a nan or
    negative eps, or a nan momentum, would turn every output or running
    statistic into nan). Returns it."""
    if type(value) is float and low <= value < math.inf:  # the common case: two comparisons
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__} "
                        f"({value!r})")
    if not low <= value < math.inf:
        wanted = "a finite number" if low == -math.inf else f"a finite number >= {low:g}"
        raise ValueError(f"{fn}: {name} must be {wanted}, got {value}")
    return value


def normalized_shape_of(fn, normalized_shape):
    """normalized_shape as a non-empty tuple of sizes >= 0 (an int is one dim)."""
    dims = _int_sizes(normalized_shape)
    if dims is None:
        raise TypeError(f"{fn}: normalized_shape must be an int or a sequence of ints, got "
                        f"{type(normalized_shape).__name__} ({normalized_shape!r})")
    if not dims or min(dims) < 0:
        raise ValueError(f"{fn}: normalized_shape must be one or more sizes >= 0, got "
                         f"{normalized_shape!r}")
    return dims


def _int_sizes(value):
    """value (an int, or an iterable of ints that is not a string) as a tuple
    of ints; None for anything else."""
    if isinstance(value, numbers.Integral):
        value = (value,)
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return None
    dims = tuple(value)
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims):
        return None
    return tuple(int(d) for d in dims)


def _check_input(fn, x, min_dim):
    check_tensor(fn, x)
    if x._data.dtype.kind != "f":
        raise TypeError(f"{fn}: expected a floating point input, got {x._data.dtype}; convert it with "
                        ".float()")
    if x.ndim < min_dim:
        raise ValueError(f"{fn}: expected an input with at least {min_dim} dimensions, got input "
                         f"of shape {tuple(x.shape)}")


def _check_companions(fn, x, shape, what, **tensors):
    """Every named tensor (None allowed) has `shape` (described as `what`),
    x's device, and -- for weight and bias -- x's dtype."""
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor or None, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise RuntimeError(f"{fn}: {name} must have shape {shape} ({what}), got shape "
                               f"{tuple(t.shape)} for input of shape {tuple(x.shape)}")
        if t._device is not x._device:
            raise RuntimeError(f"{fn}: {name} is on {t._device} but the input is on {x._device}; "
                               "move them to one device with .to(device)")
        if name in ("weight", "bias", "pre_bias") and t._data.dtype != x._data.dtype:
            raise TypeError(f"{fn}: input is {x._data.dtype} but {name} is {t._data.dtype}; convert one "
                            "(e.g. model.double() or x.float())")


def _check_running(fn, x, running_mean, running_var, needed):
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: pass both running_mean and running_var, or neither")
    if needed and running_mean is None:
        raise RuntimeError(f"{fn}: running_mean and running_var must be given when the input's "
                           "own statistics are not used (evaluation mode)")


def _records(*tensors):
    """Whether an op on these tensors records a graph node."""
    return is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def verify_batch_size(shape):
    """PyTorch's check that training statistics average more than one value."""
    if shape[0] * math.prod(shape[2:]) == 1:
        raise ValueError("Expected more than 1 value per channel when training, got input size "
                         f"{tuple(shape)}")


def _verify_spatial_size(shape):
    if math.prod(shape[2:]) == 1:
        raise ValueError("Expected more than 1 spatial element when training, got input size "
                         f"{tuple(shape)}")


def _check_trailing(fn, x, shape):
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        dims = ", ".join(str(d) for d in shape)
        raise RuntimeError(f"{fn}: Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {dims}], but got input of size {list(x.shape)}")


def _channel_shape(x):
    """(1, C, 1, ...): per-channel values broadcast against x (N, C, *)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _empty_output(x, weight, bias, param_shape):
    """The output for an input with no elements (PyTorch's answer): empty, no
    statistics taken, but in the graph, so the parameters get their (zero)
    gradients. Checked before any kernel: a mean over no values is nan."""
    out = x.clone() if weight is None else x * weight.reshape(param_shape)
    return out if bias is None else out + bias.reshape(param_shape)


# ---------------------------------------------------------------- running statistics

def _given_stats(x, running_mean, running_var, eps):
    """(mean, rstd) arrays in x's dtype from running statistics."""
    dtype = x._data.dtype
    rstd = x.backend.inverse_std(running_var._data, eps, dtype)
    return running_mean._data.astype(dtype, copy=False), rstd


def update_running_stats(running_mean, running_var, mean, var, count, momentum):
    """Updates the running statistics with a batch's mean and biased var
    (arrays) measured over `count` values each: running_var gets the
    unbiased variance, var * count / (count - 1). In place, on the buffers'
    arrays (statistics are state, never part of a graph)."""
    running_mean.backend.running_stats_update(running_mean._data, running_var._data, mean, var,
                                              count, momentum)


# ---------------------------------------------------------------- functional forms

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,  # noqa: A002
               momentum=0.1, eps=1e-5):
    """Batch normalization over (N, C, *): statistics per channel over the
    batch and spatial dims when `training`, else running_mean/running_var.
    In training, given running statistics are updated in place."""
    return batch_norm_relu(input, running_mean, running_var, weight, bias, training, momentum, eps,
                           relu=False)


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
                    training=False, momentum=0.1, eps=1e-5, relu=True, pre_bias=None,
                    overwrite_input=False):
    """relu(batch_norm(...)) (plain batch_norm with relu=False). The ReLU is
    applied inside the normalization kernel (one pass over the data instead
    of two, one graph node), with the relu kernel's values and gradients.

    For a linear layer's product (what Sequential runs for Linear then
    BatchNorm1d in evaluation): `pre_bias` (C,) is added to the input first,
    as input + pre_bias rounds, and `overwrite_input` lets the output take the
    input's memory. With running statistics and no graph to record, that is
    one pass in place; otherwise the bias is a separate op."""
    _check_input("batch_norm", input, 2)
    shape = tuple(input.shape)
    C = shape[1]
    _check_companions("batch_norm", input, (C,), f"one value per channel, C={C}", weight=weight,
                      bias=bias, running_mean=running_mean, running_var=running_var,
                      pre_bias=pre_bias)
    if pre_bias is not None and (training or _records(input, weight, bias, pre_bias)):
        input = input + pre_bias.reshape((C,) + (1,) * (len(shape) - 2))
        pre_bias = None
    in_place = overwrite_input and not training and not _records(input, weight, bias)
    _check_running("batch_norm", input, running_mean, running_var, not training)
    check_real("batch_norm", "eps", eps, 0)
    if training and running_mean is not None:
        check_real("batch_norm", "momentum", momentum)
    if input._data.size == 0:
        out = _empty_output(input, weight, bias, _channel_shape(input))
        return activation(out, "relu") if relu else out
    N, S = shape[0], math.prod(shape[2:])
    if not training:
        given = _given_stats(input, running_mean, running_var, eps)
        plan = Plan("BatchNorm", BATCH, (N, C, S), (C,), eps, given=given, relu=relu)
        plan.pre_bias = None if pre_bias is None else pre_bias._data
        plan.overwrite = in_place
        return Normalization.apply(input, weight, bias, plan)
    verify_batch_size(shape)
    plan = Plan("BatchNorm", BATCH, (N, C, S), (C,), eps, relu=relu)
    out = Normalization.apply(input, weight, bias, plan)
    if running_mean is not None:
        update_running_stats(running_mean, running_var, plan.mean, plan.var, N * S, momentum)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance normalization over (N, C, *): statistics per sample and
    channel over the spatial dims (or running statistics when not
    use_input_stats). Given running statistics are updated in place with the
    batch average of the per-instance statistics."""
    _check_input("instance_norm", input, 2)
    shape = tuple(input.shape)
    N, C = shape[:2]
    S = math.prod(shape[2:])
    _check_companions("instance_norm", input, (C,), f"one value per channel, C={C}",
                      weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    _check_running("instance_norm", input, running_mean, running_var, not use_input_stats)
    check_real("instance_norm", "eps", eps, 0)
    if use_input_stats and running_mean is not None:
        check_real("instance_norm", "momentum", momentum)
    if input._data.size == 0:
        return _empty_output(input, weight, bias, _channel_shape(input))
    if not use_input_stats:
        given = _given_stats(input, running_mean, running_var, eps)
        return Normalization.apply(input, weight, bias,
                                   Plan("InstanceNorm", BATCH, (N, C, S), (C,), eps, given=given))
    _verify_spatial_size(shape)
    # each (n, c) is a channel of a batch of one: the batch kernels measure var directly
    plan = Plan("InstanceNorm", BATCH, (1, N * C, S), (C,), eps, tile=N)
    out = Normalization.apply(input, weight, bias, plan)
    if running_mean is not None:
        update_running_stats(running_mean, running_var, plan.mean.reshape(N, C).mean(axis=0),
                             plan.var.reshape(N, C).mean(axis=0), S, momentum)
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalizes over the trailing dims given by normalized_shape, per sample."""
    _check_input("layer_norm", input, 1)
    ns = normalized_shape_of("layer_norm", normalized_shape)
    _check_trailing("layer_norm", input, ns)
    _check_companions("layer_norm", input, ns, "normalized_shape", weight=weight, bias=bias)
    check_real("layer_norm", "eps", eps, 0)
    if input._data.size == 0:
        return _empty_output(input, weight, bias, ns)
    D = math.prod(ns)
    plan = Plan("LayerNorm", GROUP, (input._data.size // max(D, 1), 1, D, 1), (1, D), eps)
    return Normalization.apply(input, weight, bias, plan)


def rms_norm(input, normalized_shape, weight=None, eps=None):  # noqa: A002
    """x / sqrt(mean(x^2) + eps) * weight over the trailing normalized_shape
    dims; eps=None means the machine epsilon of the input's dtype."""
    _check_input("rms_norm", input, 1)
    ns = normalized_shape_of("rms_norm", normalized_shape)
    _check_trailing("rms_norm", input, ns)
    _check_companions("rms_norm", input, ns, "normalized_shape", weight=weight)
    if eps is None:
        eps = float(input.backend.xp.finfo(input._data.dtype).eps)
    else:
        check_real("rms_norm", "eps", eps, 0)
    if input._data.size == 0:
        return _empty_output(input, weight, None, ns)
    D = math.prod(ns)
    plan = Plan("RMSNorm", GROUP, (input._data.size // max(D, 1), 1, D, 1), (1, D), eps,
                center=False)
    return Normalization.apply(input, weight, None, plan)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Statistics per sample over groups of num_groups consecutive channel
    blocks (and the spatial dims); weight/bias per channel."""
    _check_input("group_norm", input, 2)
    shape = tuple(input.shape)
    N, C = shape[:2]
    if not isinstance(num_groups, numbers.Integral) or num_groups <= 0 or C % num_groups:
        raise RuntimeError("group_norm: Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {shape} and num_groups={num_groups}")
    _check_companions("group_norm", input, (C,), f"one value per channel, C={C}", weight=weight,
                      bias=bias)
    check_real("group_norm", "eps", eps, 0)
    if input._data.size == 0:
        return _empty_output(input, weight, bias, _channel_shape(input))
    G = int(num_groups)
    verify_batch_size((N * C // G, G) + shape[2:])
    plan = Plan("GroupNorm", GROUP, (N, G, C // G, math.prod(shape[2:])), (G, C // G), eps)
    return Normalization.apply(input, weight, bias, plan)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):  # noqa: A002
    """x / (k + alpha / size * sum of x^2 over a window of `size` channels)^beta,
    the window [c - size//2, c + (size-1)//2] zero-padded at the edges, as in
    PyTorch. Composed from Tensor ops (no fused kernel needed)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"local_response_norm: expected a Tensor input, got {type(input).__name__}")
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    if input._data.size == 0:
        return input
    sq = input * input
    C = input.shape[1]
    before, after = size // 2, (size - 1) // 2
    pads = [zeros(*((input.shape[0], n) + tuple(input.shape[2:])), dtype=input.dtype,
                  device=input.device) for n in (before, after)]
    padded = cat([pads[0], sq, pads[1]], dim=1) if size > 1 else sq
    window = padded[:, 0:C]
    for j in range(1, size):
        window = window + padded[:, j:j + C]
    return input / (window * (alpha / size) + k) ** beta


# ---------------------------------------------------------------- beyond PyTorch

def batch_renorm(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
                 training=False, momentum=0.1, eps=1e-5, rmax=3.0, dmax=5.0):
    """Batch Renormalization (Ioffe, 2017) over (N, C, *).

    Training: y = (xhat * r + d) * weight + bias, xhat the batch-normalized
    input, r = clip(sigma_B / sigma, 1/rmax, rmax), d = clip((mu_B - mu) /
    sigma, -dmax, dmax) with sigma = sqrt(running_var + eps); r and d are
    constants for the gradient, as in the paper. The running statistics are
    then updated as BatchNorm's. Evaluation is BatchNorm's."""
    if not training:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    _check_input("batch_renorm", input, 2)
    shape = tuple(input.shape)
    C = shape[1]
    _check_companions("batch_renorm", input, (C,), f"one value per channel, C={C}",
                      weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    _check_running("batch_renorm", input, running_mean, running_var, True)
    check_real("batch_renorm", "eps", eps, 0)
    check_real("batch_renorm", "momentum", momentum)
    verify_batch_size(shape)
    if input._data.size == 0:
        return _empty_output(input, weight, bias, _channel_shape(input))
    N, S = shape[0], math.prod(shape[2:])
    plan = Plan("BatchRenorm", BATCH, (N, C, S), (C,), eps)
    xhat = Normalization.apply(input, None, None, plan)
    xp, dt = input.backend.xp, input._data.dtype
    mean_b = plan.mean.astype(xp.float64)
    sigma = xp.sqrt(running_var._data.astype(xp.float64) + eps)
    r = xp.clip(xp.sqrt(plan.var.astype(xp.float64) + eps) / sigma, 1.0 / rmax, rmax)
    d = xp.clip((mean_b - running_mean._data) / sigma, -dmax, dmax)
    update_running_stats(running_mean, running_var, plan.mean, plan.var, N * S, momentum)
    cshape = _channel_shape(input)
    r = _wrap(r.astype(dt).reshape(cshape), input._device)
    d = _wrap(d.astype(dt).reshape(cshape), input._device)
    if weight is None:
        out = xhat * r + d
        return out if bias is None else out + bias.reshape(cshape)
    w = weight.reshape(cshape)
    shift = w * d if bias is None else w * d + bias.reshape(cshape)
    return xhat * (w * r) + shift


def switchable_norm(input, mean_weight, var_weight, running_mean=None, running_var=None,  # noqa: A002
                    weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Switchable Normalization (Luo et al., 2019) over (N, C, *).

    The mean and variance used to normalize are softmax(mean_weight) and
    softmax(var_weight) mixes of the instance (per n, c), layer (per n) and
    batch (per c) statistics, all biased. The batch statistics come from the
    batch when training (or without running statistics), else from
    running_mean/running_var, which training updates as BatchNorm does.
    Statistics and normalization run in float64 (the output has the input's
    dtype). Composed from Tensor ops: the gradient flows through the mixed
    statistics into mean_weight and var_weight, which a closed-form kernel
    with fixed reduction axes does not provide."""
    _check_input("switchable_norm", input, 3)
    shape = tuple(input.shape)
    N, C = shape[:2]
    _check_companions("switchable_norm", input, (C,), f"one value per channel, C={C}",
                      weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    _check_companions("switchable_norm", input, (3,), "instance, layer, batch",
                      mean_weight=mean_weight, var_weight=var_weight)
    _check_running("switchable_norm", input, running_mean, running_var, False)
    check_real("switchable_norm", "eps", eps, 0)
    batch_stats = training or running_mean is None
    if training:
        verify_batch_size(shape)
        if running_mean is not None:
            check_real("switchable_norm", "momentum", momentum)
    if input._data.size == 0:
        return _empty_output(input, weight, bias, _channel_shape(input))
    # float64 throughout: a float32 mean of values around 1e4 is off by ~1e-3,
    # and x - mean would carry that error into the output
    x = input.reshape(N, C, -1).to(float64)
    mean_in = x.mean(2, keepdim=True)
    var_in = x.var(2, unbiased=False, keepdim=True)
    # layer and batch moments from the instance ones (law of total variance: no
    # E[x^2] - E[x]^2 cancellation for inputs with a large mean)
    mean_ln = mean_in.mean(1, keepdim=True)
    var_ln = (var_in + (mean_in - mean_ln) ** 2).mean(1, keepdim=True)
    if batch_stats:
        mean_bn = mean_in.mean(0, keepdim=True)
        var_bn = (var_in + (mean_in - mean_bn) ** 2).mean(0, keepdim=True)
        if training and running_mean is not None:
            update_running_stats(running_mean, running_var, mean_bn._data.reshape(C),
                                 var_bn._data.reshape(C), N * x.shape[2], momentum)
    else:
        mean_bn = running_mean.detach().reshape(1, C, 1).to(float64)
        var_bn = running_var.detach().reshape(1, C, 1).to(float64)
    mw, vw = softmax(mean_weight.to(float64), 0), softmax(var_weight.to(float64), 0)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    out = ((x - mean) * (1.0 / (var + eps).sqrt())).reshape(shape).to(input.dtype)
    cshape = _channel_shape(input)
    if weight is not None:
        out = out * weight.reshape(cshape)
    if bias is not None:
        out = out + bias.reshape(cshape)
    return out
