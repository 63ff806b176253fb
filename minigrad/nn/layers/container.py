"""Containers and shape helpers: Sequential, ModuleList, ModuleDict, Identity, Flatten."""
import collections
import operator

from ...autograd import is_grad_enabled
from ...tensor import Tensor
from ..module import Module
from .activation import ReLU
from .linear import Linear
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .pool import MaxPool2d

# layers with a _forward_relu (relu of their output, fused where it pays)
_FUSES_RELU = (BatchNorm1d, BatchNorm2d, BatchNorm3d, Linear)


def _index(idx, size, kind):
    """A non-negative index into a container of `size` entries."""
    idx = operator.index(idx)
    if not -size <= idx < size:
        raise IndexError(f"index {idx} is out of range for a {kind} of length {size}")
    return idx % size


def _renumber(container, modules):
    """Re-registers `modules` under the names "0", "1", ... (after a deletion)."""
    for key in list(container._modules):
        delattr(container, key)
    for i, m in enumerate(modules):
        container.add_module(str(i), m)


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: length, iteration, append, extend."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self


def _hooked(module):
    return bool(module._forward_pre_hooks or module._forward_hooks)


def _plain_relu(module):
    return type(module) is ReLU and not _hooked(module)


def _fuses_relu(module):
    return type(module) in _FUSES_RELU and not _hooked(module)


def _linear_into_frozen_batch_norm(module, after, x):
    """A Linear (with a bias) then a BatchNorm1d that normalizes a batch of
    vectors with its running statistics, with no graph to record: the
    product can go straight into one in-place normalization pass."""
    return (type(module) is Linear and type(after) is BatchNorm1d and not is_grad_enabled()
            and not after.training and after.running_mean is not None
            and module.bias is not None and isinstance(x, Tensor) and x.ndim == 2
            and not _hooked(module) and not _hooked(after))


def _relu_fuses_at(modules, j):
    """modules[j] is a plain ReLU that the layer before it may apply itself
    (not one that a max pooling after it takes on first)."""
    return (j < len(modules) and _plain_relu(modules[j])
            and not (j + 1 < len(modules) and _commutes_with_relu(modules[j + 1])))


def _commutes_with_relu(module):
    """A max pooling whose every window holds input elements (no padding: a
    window made of padding alone gives -inf, which relu would turn into 0),
    returning no indices (those of relu(x) may differ where relu ties)."""
    return (type(module) is MaxPool2d and not module.return_indices and not _hooked(module)
            and module._params.padding == (0, 0))


class Sequential(_ModuleSequence):
    """Modules called in order, each on the previous one's output.
    `Sequential(m0, m1, ...)` names them "0", "1", ...; an OrderedDict gives names."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def forward(self, x):
        # Rewrites with the same values and gradients, where no hook could
        # see the difference:
        # - ReLU then an unpadded max pooling runs as pooling then ReLU (max
        #   commutes with a monotone function, and a window whose maximum is
        #   <= 0 passes no gradient either way): the ReLU and its backward
        #   work on the pooled, smaller tensor;
        # - BatchNorm then ReLU (not followed by such a pooling) runs as one
        #   fused pass and one graph node;
        # - Linear then ReLU runs as one graph node (the same kernels);
        # - Linear then BatchNorm1d (then ReLU) in evaluation without a graph
        #   runs the product, then one pass in place for the rest.
        modules = list(self._modules.values())
        i, n = 0, len(modules)
        while i < n:
            module = modules[i]
            after = modules[i + 1] if i + 1 < n else None
            if after is not None and _plain_relu(module) and _commutes_with_relu(after):
                x = module(after(x))
                i += 2
            elif after is not None and _linear_into_frozen_batch_norm(module, after, x):
                relu = _relu_fuses_at(modules, i + 2)
                x = after._forward_linear(x, module, relu)
                i += 3 if relu else 2
            elif after is not None and _fuses_relu(module) and _relu_fuses_at(modules, i + 1):
                x = module._forward_relu(x)
                i += 2
            else:
                x = module(x)
                i += 1
        return x


    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(collections.OrderedDict(list(self._modules.items())[idx]))
        keys = list(self._modules)
        return self._modules[keys[_index(idx, len(keys), "Sequential")]]

    def __setitem__(self, idx, module):
        keys = list(self._modules)
        setattr(self, keys[_index(idx, len(keys), "Sequential")], module)

    def __delitem__(self, idx):
        keys = list(self._modules)
        for key in (keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(keys), "Sequential")]]):
            delattr(self, key)
        _renumber(self, list(self._modules.values()))  # as PyTorch: names stay 0..n-1



class ModuleList(_ModuleSequence):
    """A list of modules whose parameters belong to the owner (no forward)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)


    def __getitem__(self, idx):
        values = list(self._modules.values())
        if isinstance(idx, slice):
            return type(self)(values[idx])
        return values[_index(idx, len(values), "ModuleList")]

    def __setitem__(self, idx, module):
        setattr(self, str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx):
        values = list(self._modules.values())
        if isinstance(idx, slice):
            del values[idx]
        else:
            del values[_index(idx, len(values), "ModuleList")]
        _renumber(self, values)

    def __iadd__(self, modules):
        return self.extend(modules)


    def insert(self, index, module):
        values = list(self._modules.values())
        values.insert(index, module)
        _renumber(self, values)


class ModuleDict(Module):
    """Modules by name, in insertion order (no forward)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        delattr(self, key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, module in items:
            self[key] = module


class Identity(Module):
    """Returns its input (arguments are accepted and ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one (keeps the batch dim by default)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not isinstance(d, int):
                raise TypeError(f"Flatten: {name} must be an int, got {type(d).__name__} {d!r}")
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"Flatten: expected a Tensor input, got {type(x).__name__}")
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
