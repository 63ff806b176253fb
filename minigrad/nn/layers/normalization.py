"""Normalization layers: thin modules over minigrad.ops.norm (one fused op
behind all of them), with PyTorch's names, defaults, buffers and errors.

BatchNorm keeps `running_mean`, `running_var` and `num_batches_tracked`
buffers (state_dict keys as in PyTorch) when track_running_stats=True;
momentum=None makes the running statistics a cumulative average over the
batches seen. Beyond PyTorch: SwitchableNorm2d and BatchRenorm1d/2d.
"""
import numbers
import warnings

from ...autograd import no_grad
from ...dtypes import int64
from ...ops import norm as N
from ...ops.linear import linear_product
from ...tensor import empty, ones, tensor, zeros
from .. import init
from ..module import Module
from ..parameter import Parameter


def _ranks_text(ranks):
    return " or ".join(f"{r}D" for r in ranks)


def _check_rank(fn, input, ranks):  # noqa: A002
    """input is a Tensor (named as the functional form `fn` does) of one of `ranks`."""
    N.check_tensor(fn, input)
    if input.ndim not in ranks:
        raise ValueError(f"expected {_ranks_text(ranks)} input (got {input.ndim}D input)")


def _positive_int(layer, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_hyperparameters(layer, eps, momentum=None):
    """Refused once, at construction: a nan or negative eps, or a nan momentum,
    would make every output or running statistic nan."""
    if eps is not None:
        N.check_real(layer, "eps", eps, 0)
    if momentum is not None:
        N.check_real(layer, "momentum", momentum)


def _affine_params(module, shape, with_weight, with_bias, device, dtype):
    """Registers weight (ones) and bias (zeros) of `shape`, or None for each."""
    for name, wanted in (("weight", with_weight), ("bias", with_bias)):
        if wanted:
            setattr(module, name, Parameter(empty(*shape, device=device, dtype=dtype)))
        else:
            module.register_parameter(name, None)


def _reset_affine(module):
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _NormBase(Module):
    """Per-channel affine parameters and (optionally) running statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        self.num_features = _positive_int(type(self).__name__, "num_features", num_features)
        _check_hyperparameters(type(self).__name__, eps, momentum)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_params(self, (self.num_features,), affine, affine, device, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(self.num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(self.num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self)

    def _check_channels(self, input):  # noqa: A002
        if input.shape[1] != self.num_features:
            raise RuntimeError(f"{type(self).__name__}: expected input with num_features="
                               f"{self.num_features} channels (dim 1), got input of shape "
                               f"{tuple(input.shape)} with {input.shape[1]} channels")

    def _momentum_step(self):
        """Counts a training batch; returns the running-average factor for it
        (1 / batches seen when momentum is None: a cumulative average)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            # the buffer's array directly (a buffer is never in a graph): on a
            # 0-d array, += 1 took numpy's slow scalar path (3 us per step)
            count = self.num_batches_tracked._data
            count[()] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        return factor

    def _load_from_state_dict(self, load, prefix):
        # checkpoints written before num_batches_tracked existed load as 0 batches
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in load.state_dict:
            load.state_dict[key] = tensor(0, dtype=int64)
        super()._load_from_state_dict(load, prefix)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _ranks = ()

    def forward(self, input):  # noqa: A002
        return self._normalize(input, relu=False)

    def _forward_relu(self, input):  # noqa: A002
        """relu(self(input)), without hooks: what Sequential runs for this
        layer followed by a ReLU (one fused pass and one graph node)."""
        return self._normalize(input, relu=True)

    def _forward_linear(self, input, linear, relu):  # noqa: A002
        """self(linear(input)) (relu of it with `relu`), without hooks: what
        Sequential runs for a Linear then this layer when it normalizes with
        its running statistics and no graph is recorded. The product goes
        into one pass that adds the linear bias, normalizes (and applies the
        relu) in place: the values of the separate layers."""
        product = linear_product(input, linear.weight, linear.bias)
        return self._normalize(product, relu, pre_bias=linear.bias, overwrite_input=True)

    def _normalize(self, input, relu, pre_bias=None, overwrite_input=False):  # noqa: A002
        _check_rank("batch_norm", input, self._ranks)
        self._check_channels(input)
        factor = self._momentum_step()
        # batch statistics in training, and in eval when there are no running ones
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return N.batch_norm_relu(input, self.running_mean if track else None,
                                 self.running_var if track else None, self.weight, self.bias,
                                 use_batch, factor, self.eps, relu, pre_bias, overwrite_input)


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input, per channel."""
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input, per channel."""
    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) input, per channel."""
    _ranks = (5,)


class _InstanceNorm(_NormBase):
    _ranks = ()  # (unbatched rank, batched rank)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input):  # noqa: A002
        _check_rank("instance_norm", input, self._ranks)
        unbatched = input.ndim == self._ranks[0]
        channels = input.shape[0 if unbatched else 1]
        if channels != self.num_features:
            dim = 0 if unbatched else 1
            if self.affine:
                raise ValueError(f"expected input's size at dim={dim} to match num_features "
                                 f"({self.num_features}), but got: {channels}.")
            warnings.warn(f"input's size at dim={dim} does not match num_features. You can silence "
                          "this warning by not passing in num_features, which is not used because "
                          "affine=False", stacklevel=2)
        x = input.unsqueeze(0) if unbatched else input
        # momentum=None is 0 here, as in PyTorch (no cumulative average)
        out = N.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or unbatched (C, L) input."""
    _ranks = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or unbatched (C, H, W) input."""
    _ranks = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (N, C, D, H, W) or unbatched (C, D, H, W) input."""
    _ranks = (4, 5)


class LayerNorm(Module):
    """Normalizes over the trailing `normalized_shape` dims of each sample;
    elementwise weight (ones) and bias (zeros) of that shape."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=None):
        super().__init__()
        self.normalized_shape = N.normalized_shape_of("LayerNorm", normalized_shape)
        _check_hyperparameters("LayerNorm", eps)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine_params(self, self.normalized_shape, elementwise_affine, elementwise_affine and bias,
                       device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):  # noqa: A002
        return N.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) * weight over the trailing normalized_shape
    dims; eps=None uses the input dtype's machine epsilon."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = N.normalized_shape_of("RMSNorm", normalized_shape)
        _check_hyperparameters("RMSNorm", eps)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine_params(self, self.normalized_shape, elementwise_affine, False, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, input):  # noqa: A002
        return N.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Splits the C channels into num_groups groups and normalizes each
    group of each sample; per-channel weight (ones) and bias (zeros)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        self.num_groups = _positive_int("GroupNorm", "num_groups", num_groups)
        self.num_channels = _positive_int("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(f"num_channels must be divisible by num_groups (got num_channels="
                             f"{num_channels}, num_groups={num_groups})")
        _check_hyperparameters("GroupNorm", eps)
        self.eps, self.affine = eps, affine
        _affine_params(self, (self.num_channels,), affine, affine, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):  # noqa: A002
        N.check_tensor("group_norm", input)
        if input.ndim >= 2 and input.shape[1] != self.num_channels:
            raise RuntimeError(f"GroupNorm: expected input with num_channels={self.num_channels} "
                               f"channels (dim 1), got input of shape {tuple(input.shape)}")
        return N.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LocalResponseNorm(Module):
    """Divides each element by (k + alpha/size * sum of squares over `size`
    neighbouring channels)^beta."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _positive_int("LocalResponseNorm", "size", size)
        for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            N.check_real("LocalResponseNorm", name, value)
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, input):  # noqa: A002
        return N.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


# ---------------------------------------------------------------- beyond PyTorch

class SwitchableNorm2d(_NormBase):
    """Switchable Normalization (Luo et al., 2019) of (N, C, H, W) input:
    normalizes with learned softmax mixes (`mean_weight`, `var_weight`, three
    logits each, initialized equal) of instance, layer and batch statistics.
    Running batch statistics (PyTorch's momentum convention) replace the
    batch ones in eval mode."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.mean_weight = Parameter(ones(3, device=device, dtype=dtype))
        self.var_weight = Parameter(ones(3, device=device, dtype=dtype))

    def reset_parameters(self):
        super().reset_parameters()
        if "mean_weight" in self._parameters:
            init.ones_(self.mean_weight)
            init.ones_(self.var_weight)

    def forward(self, input):  # noqa: A002
        _check_rank("switchable_norm", input, (4,))
        self._check_channels(input)
        factor = self._momentum_step()
        return N.switchable_norm(input, self.mean_weight, self.var_weight, self.running_mean,
                                 self.running_var, self.weight, self.bias, self.training, factor,
                                 self.eps)


class _BatchRenorm(_NormBase):
    """Batch Renormalization (Ioffe, 2017): BatchNorm whose training output is
    corrected towards the running statistics by r = clip(sigma_B / sigma,
    1/rmax, rmax) and d = clip((mu_B - mu) / sigma, -dmax, dmax), both
    constants for the gradient. rmax = 1 and dmax = 0 give BatchNorm; the
    paper raises them from there during training (set the attributes)."""
    _ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, rmax=3.0, dmax=5.0,
                 device=None, dtype=None):
        if not (rmax >= 1 and dmax >= 0):  # written so that nan fails it
            raise ValueError(f"{type(self).__name__}: expected rmax >= 1 and dmax >= 0, got "
                             f"rmax={rmax}, dmax={dmax}")
        super().__init__(num_features, eps, momentum, affine, True, device, dtype)
        self.rmax, self.dmax = float(rmax), float(dmax)

    def forward(self, input):  # noqa: A002
        _check_rank("batch_renorm", input, self._ranks)
        self._check_channels(input)
        factor = self._momentum_step()
        return N.batch_renorm(input, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training, factor, self.eps, self.rmax, self.dmax)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"rmax={self.rmax}, dmax={self.dmax}")


class BatchRenorm1d(_BatchRenorm):
    """Batch Renormalization of (N, C) or (N, C, L) input."""
    _ranks = (2, 3)


class BatchRenorm2d(_BatchRenorm):
    """Batch Renormalization of (N, C, H, W) input."""
    _ranks = (4,)
