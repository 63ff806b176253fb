"""The Optimizer base: parameter groups, per-parameter state and state_dict.

Subclasses describe their hyper-parameters (`defaults`), validate a group
(`_check_group`), and update one group in place (`_update_group`) by calling
the fused kernel of each parameter's backend on the raw arrays, so an update
never records a graph. State tensors live on the parameter's device, in its
dtype; `state['step']` is a 0-d float32 tensor on the CPU, as in PyTorch.
"""
import copy
import math
import numbers
from collections import defaultdict
from itertools import chain

from .. import autograd
from ..device import CPU
from ..tensor import Tensor, zeros

__all__ = ["Optimizer"]


class Optimizer:
    """Base class of all optimizers (`Optimizer(params, defaults)`, as in PyTorch).

    params: an iterable of Tensors, of (name, Tensor) pairs, or of dicts with a
    'params' entry and per-group hyper-parameters overriding `defaults`.
    """

    # The state key whose tensor tells whether a parameter's state still sits on
    # the parameter's device and dtype (it moves after `module.to(...)`).
    _anchor = None

    def __init__(self, params, defaults):
        self._check_group(defaults)
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got a Tensor")
        _reject_set(params)
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- hooks for subclasses -----------------------------------------------------
    # (group key, label in PyTorch's error message) of hyper-parameters that must be >= 0
    NON_NEGATIVE = (("lr", "learning rate"),)

    @classmethod
    def _check_group(cls, group):
        """Raises ValueError for invalid hyper-parameters of one group."""
        for key, label in cls.NON_NEGATIVE:
            check_at_least_zero(label, group[key])

    def _init_state(self, p, state, group):
        """Fills the empty `state` dict of parameter `p` before its first update."""

    def _update_group(self, group):
        raise NotImplementedError(f"{type(self).__name__} does not implement _update_group")

    # -- parameter groups ---------------------------------------------------------
    def add_param_group(self, param_group):
        """Adds a group of parameters (a dict with 'params' and optional overrides)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError("param_group must have a 'params' entry holding the tensors to optimize")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        _reject_set(params)
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            params = [p[1] for p in params]
            group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group)
        if len(set(params)) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        taken = set(chain.from_iterable(g["params"] for g in self.param_groups))
        if not taken.isdisjoint(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # -- stepping -----------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Sets every parameter's .grad to None (default) or fills it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    g.detach_()
                    g._data.fill(0)

    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        closure: optional callable that re-evaluates the model and returns the
        loss; it runs with gradient recording enabled and its loss is returned.
        """
        loss = None
        if closure is not None:
            with autograd.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _state_of(self, p, group):
        """`p`'s state dict: initialized on first use, moved to `p`'s device and
        dtype when the parameter has moved since the last step."""
        state = self.state[p]
        if not state:
            self._init_state(p, state, group)
        else:
            anchor = state.get(self._anchor)
            if anchor is not None and (anchor._device is not p._device
                                       or anchor._data.dtype != p._data.dtype):
                for key, value in state.items():
                    if key != "step" and isinstance(value, Tensor):
                        state[key] = _state_like(value, p)
        return state

    # -- serialization ------------------------------------------------------------
    def state_dict(self):
        """A snapshot {'state': {index: {...}}, 'param_groups': [...]} with parameters
        numbered in group order, as PyTorch does. Tensors are copies, so training
        on does not change a state_dict taken earlier."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): _copy_value(v)
                 for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Loads a state_dict made by `state_dict()` (of an optimizer with the same
        group sizes); state tensors are copied onto each parameter's device and
        cast to its dtype ('step' stays as saved)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups: "
                             f"{len(saved_groups)} in the state dict, {len(self.param_groups)} "
                             f"in the optimizer")
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match "
                                 f"the size of optimizer's group: group {i} has "
                                 f"{len(saved['params'])} parameters in the state dict and "
                                 f"{len(group['params'])} in the optimizer")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in self.param_groups)))
        state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            p = id_map.get(key)
            if p is None:
                state[key] = _copy_value(value)
            else:
                state[p] = {k: _loaded_state_value(k, v, p) for k, v in value.items()}
        groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new = {k: _copy_value(v) for k, v in saved.items() if k != "params"}
            new["params"] = group["params"]
            if "param_names" in group and "param_names" not in new:
                new["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                new.setdefault(name, default)
            groups.append(new)
        self.state = state
        self.param_groups = groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        lines.append(")")
        return "\n".join(lines)


# -- shared helpers for subclasses ---------------------------------------------------

def check_at_least_zero(label, value):
    """PyTorch's wording: ValueError('Invalid <label>: <value>') unless 0 <= value."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be a real number, got {type(value).__name__}")
    if not 0.0 <= value:
        raise ValueError(f"Invalid {label}: {value}")


def check_number(label, value):
    """A hyper-parameter that may take any real value except nan."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be a real number, got {type(value).__name__}")
    if value != value:
        raise ValueError(f"Invalid {label}: {value}")


def check_positive_int(label, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{label} must be a positive int, got {value!r}")


def check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not isinstance(beta, numbers.Real) or not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def new_step_count():
    """The 'step' state entry: a 0-d float32 CPU tensor, as PyTorch keeps it."""
    return zeros((), device=CPU)


def advance(step_tensor):
    """Adds one to a 'step' tensor in place and returns the stored count as a float
    (through Python floats: a 0-d array's own += costs ten times more)."""
    data = step_tensor._data
    data[()] = data.item() + 1.0
    return data.item()


def state_zeros(p, fill=0.0):
    """A C-contiguous state tensor shaped like `p`, on its device, in its dtype."""
    xp = p.backend.xp
    arr = xp.zeros(p._data.shape, p._data.dtype) if fill == 0 else \
        xp.full(p._data.shape, fill, p._data.dtype)
    return Tensor._wrap(arr, p._device)


def _state_like(value, p, cast=True):
    """A fresh C-contiguous copy of `value` on `p`'s device (in `p`'s dtype if cast)."""
    arr = value._data
    if value._device is not p._device:
        arr = p.backend.from_host(value._device.backend.to_host(arr))
        if arr is value._data:
            arr = arr.copy()
    else:
        arr = arr.copy()
    if cast and p._data.dtype.kind == "f" and arr.dtype.kind == "f" and arr.dtype != p._data.dtype:
        arr = arr.astype(p._data.dtype)
    return Tensor._wrap(p.backend.xp.ascontiguousarray(arr), p._device)


def _reject_set(params):
    if isinstance(params, (set, frozenset)):
        raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                        "ordering of tensors in sets will change between runs. Please use a list "
                        "instead.")


def _loaded_state_value(key, value, p):
    if key == "step":
        if isinstance(value, Tensor):
            return Tensor._wrap(value._device.backend.to_host(value._data).copy(), CPU)
        if isinstance(value, numbers.Real) and math.isfinite(value):
            step = new_step_count()
            step._data[...] = value
            return step
        return copy.deepcopy(value)
    if isinstance(value, Tensor):
        return _state_like(value, p)
    return _copy_value(value)


def _copy_value(value):
    """A deep copy that also copies Tensors (they refuse pickling, so deepcopy can't)."""
    if isinstance(value, Tensor):
        return Tensor._wrap(value._data.copy(), value._device)
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_value(v) for v in value)
    return copy.deepcopy(value)
