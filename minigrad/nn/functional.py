"""minigrad.nn.functional: the functional form of every layer, PyTorch's names
and defaults. One group per kind of layer, each importing from the op module
that implements it; the elementwise activations are defined at the end."""
import numbers

from ..ops.activation import activation as _activation

# linear(input, weight, bias=None)
from ..ops.linear import linear  # noqa: F401

# softmax(input, dim=None, dtype=None), log_softmax(input, dim=None, dtype=None)
from ..ops.softmax import log_softmax, softmax  # noqa: F401

# dropout(input, p=0.5, training=True, inplace=False)
from ..ops.dropout import dropout  # noqa: F401

# conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1), pad(input, pad, mode, value)
from ..ops.conv import conv2d  # noqa: F401
from ..ops.pad import pad  # noqa: F401

# max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d
from ..ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d  # noqa: F401

# batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
#            momentum=0.1, eps=1e-5), instance_norm, layer_norm, group_norm,
# rms_norm (eps=None: the dtype's machine epsilon), local_response_norm
from ..ops.norm import (batch_norm, group_norm, instance_norm, layer_norm,  # noqa: F401
                        local_response_norm, rms_norm)

# losses, each with reduction='mean' | 'sum' | 'none'
from ..ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                        cross_entropy, l1_loss, mse_loss, nll_loss)


# ----------------------------------------------------------- activations
# Elementwise activations run the backend's fused kernels. `inplace=True`
# writes the result into the input when no graph is being recorded for it;
# otherwise the result is a new tensor (always use the return value).

def check_real(owner, name, value):
    """A hyper-parameter must be a real number and not nan (a nan slope or bound
    would silently turn every output into nan). Returns it."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    if value != value:
        raise ValueError(f"{owner}: {name} must be a number, got nan")
    return value


def _elementwise(x, kind, alpha=0.0, beta=0.0, inplace=False):
    out = _activation(x, kind, alpha, beta)
    if inplace and out._node is None:
        x._data[...] = out._data
        return x
    return out


def relu(input, inplace=False):  # noqa: A002  (PyTorch's argument names)
    return _elementwise(input, "relu", inplace=inplace)


def relu6(input, inplace=False):  # noqa: A002
    return _elementwise(input, "hardtanh", 0.0, 6.0, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    check_real("leaky_relu", "negative_slope", negative_slope)
    return _elementwise(input, "leaky_relu", negative_slope, inplace=inplace)


def elu(input, alpha=1.0, inplace=False):  # noqa: A002
    check_real("elu", "alpha", alpha)
    return _elementwise(input, "elu", alpha, inplace=inplace)


def selu(input, inplace=False):  # noqa: A002
    return _elementwise(input, "selu", inplace=inplace)


GELU_APPROXIMATIONS = {"none": "gelu", "tanh": "gelu_tanh"}


def gelu_kind(approximate):
    try:
        return GELU_APPROXIMATIONS[approximate]
    except (KeyError, TypeError):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}") from None


def gelu(input, approximate="none"):  # noqa: A002
    return _elementwise(input, gelu_kind(approximate))


def silu(input, inplace=False):  # noqa: A002
    return _elementwise(input, "silu", inplace=inplace)


def sigmoid(input):  # noqa: A002
    return _elementwise(input, "sigmoid")


def tanh(input):  # noqa: A002
    return _elementwise(input, "tanh")


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002
    """log(1 + exp(beta * x)) / beta; x itself where beta * x > threshold."""
    check_softplus_args("softplus", beta, threshold)
    return _elementwise(input, "softplus", beta, threshold)


def check_softplus_args(owner, beta, threshold):
    check_real(owner, "threshold", threshold)
    if check_real(owner, "beta", beta) == 0:
        raise ValueError(f"{owner}: beta must be nonzero, got {beta}")


def check_hardtanh_range(min_val, max_val):
    check_real("hardtanh", "min_val", min_val)
    check_real("hardtanh", "max_val", max_val)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must be less than or equal to max_val ({max_val})")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # noqa: A002
    check_hardtanh_range(min_val, max_val)
    return _elementwise(input, "hardtanh", min_val, max_val, inplace)
