"""`nn.Module`: parameters, buffers and submodules registered by attribute
assignment, with PyTorch's iteration order, state_dict, hooks and repr.

Registered values live twice: in the ordered registries (`_parameters`,
`_buffers`, `_modules`) that define iteration and state_dict order, and in the
instance `__dict__`, so that reading `self.weight` in `forward` is a plain
attribute lookup (no `__getattr__` detour on every step). `__setattr__` and
`__delattr__` keep the two in step.
"""
import collections
import collections.abc
import copy
import itertools

from .. import autograd
from ..device import device as _device
from ..tensor import Tensor, _parse_to_args
from .parameter import Parameter

IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by the register_*_hook methods: `.remove()` unregisters the hook
    (also usable as a context manager)."""

    _ids = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class _LoadState:
    """What load_state_dict collects while walking the modules."""

    def __init__(self, state_dict):
        self.state_dict = state_dict
        self.seen = set()
        self.missing = []
        self.errors = []
        self.copies = []  # (destination tensor, source value)


def _check_name(module, name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if not name:
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f"{kind} name can't contain \".\", got {name!r}")
    if "_parameters" not in module.__dict__:
        raise AttributeError(f"cannot register a {kind} before Module.__init__() call")


def _taken(module, name):
    return name in module.__dict__ or hasattr(type(module), name)


def _addindent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return lines[0] + "\n" + "\n".join(pad + line for line in lines[1:])


class Module:
    """Base class of every layer and model. Subclasses set up parameters and
    submodules in `__init__` (after `super().__init__()`) and define `forward`."""

    training: bool

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers"] = set()
        d["_modules"] = {}
        d["_forward_pre_hooks"] = {}
        d["_forward_hooks"] = {}

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    # -- calling ------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook, with_kwargs in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook, with_kwargs in list(self._forward_hooks.values()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    def _add_hook(self, table, hook, prepend, with_kwargs):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(table)
        table[handle.id] = (hook, with_kwargs)
        if prepend:
            for key in [k for k in table if k != handle.id]:
                table[key] = table.pop(key)  # move the others behind the new one
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """`hook(module, args)` runs before forward; a non-None result replaces
        the positional args (with_kwargs: `hook(module, args, kwargs)` returning
        `(args, kwargs)`)."""
        return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """`hook(module, args, output)` runs after forward; a non-None result
        replaces the output (with_kwargs: `hook(module, args, kwargs, output)`)."""
        return self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    # -- registration -------------------------------------------------------------
    def register_parameter(self, name, param):
        _check_name(self, name, "parameter")
        if _taken(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(minigrad.nn.Parameter or None required)")
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not a parameter (e.g. running statistics).
        Persistent buffers are part of state_dict."""
        _check_name(self, name, "buffer")
        if _taken(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(minigrad.Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name, module):
        _check_name(self, name, "module")
        if _taken(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def _unregister(self, name, keep=None):
        """Drops `name` from every registry except `keep` (so a replaced value
        keeps its place in the iteration order)."""
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        if keep is not self._buffers:
            self._non_persistent_buffers.discard(name)

    def __setattr__(self, name, value):
        d = self.__dict__
        if isinstance(value, Parameter):
            if "_parameters" not in d:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._unregister(name, keep=self._parameters)
            d.pop(name, None)
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            if "_modules" not in d:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._unregister(name, keep=self._modules)
            d.pop(name, None)
            self.add_module(name, value)
        elif "_parameters" in d and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(minigrad.nn.Parameter or None expected)")
            self.register_parameter(name, None)
        elif "_modules" in d and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(minigrad.nn.Module or None expected)")
            self.add_module(name, None)
        elif "_buffers" in d and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(minigrad.Tensor or None expected)")
            self._buffers[name] = value
            d[name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._unregister(name)
        object.__delattr__(self, name)

    def __getattr__(self, name):
        # only reached when normal lookup failed: registered values are in __dict__
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    # -- iteration ----------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse, remove_duplicate):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in module.__dict__[registry].items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs in registration order; a parameter
        shared by several modules is listed once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        module = self
        if target == "":
            return module
        for item in target.split("."):
            child = module._modules.get(item)
            if child is None:
                raise AttributeError(f"{module._get_name()} has no submodule `{item}` (looking up {target!r})")
            module = child
        return module

    def get_parameter(self, target):
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if name not in module._parameters:
            raise AttributeError(f"{module._get_name()} has no parameter `{name}` (looking up {target!r})")
        return module._parameters[name]

    def get_buffer(self, target):
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if name not in module._buffers:
            raise AttributeError(f"{module._get_name()} has no buffer `{name}` (looking up {target!r})")
        return module._buffers[name]

    # -- modes and bulk changes ---------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {type(mode).__name__}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn):
        """Calls fn on every submodule (children first) and then on self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            g = p._grad
            if g is None:
                continue
            if set_to_none:
                p._grad = None
            else:
                g = g.detach()  # a grad built with create_graph must not keep its graph
                with autograd.no_grad():
                    g.zero_()
                p._grad = g

    def _apply_to_tensors(self, convert):
        """Replaces the data of every parameter, its grad and every buffer by
        convert(tensor), keeping the tensor objects: optimizers and other
        holders of these tensors see the change."""
        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is None:
                    continue
                _replace_data(t, convert(t))
                if t._grad is not None:
                    _replace_data(t._grad, convert(t._grad))
        return self

    def to(self, *args, **kwargs):
        """`to(device)`, `to(dtype)`, `to(device, dtype)`, `to(tensor)` or
        keywords, as in PyTorch. dtype changes only floating point tensors."""
        dev, dtype = _parse_to_args(args, kwargs)
        if dtype is not None:
            from ..dtypes import to_numpy_dtype
            nd = to_numpy_dtype(dtype)
            if nd.kind != "f":
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")

        def convert(t):
            out = t.detach()
            if dtype is not None and t.is_floating_point():
                out = out.to(dtype)
            if dev is not None:
                out = out.to(dev)
            return out

        return self._apply_to_tensors(convert)

    def float(self):
        from ..dtypes import float32
        return self.to(float32)

    def double(self):
        from ..dtypes import float64
        return self.to(float64)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        if device is None:
            return self.to("cuda")
        return self.to(device if isinstance(device, (str, _device)) else f"cuda:{device}")

    # -- state --------------------------------------------------------------------
    def _own_state(self):
        """(name, tensor) of this module's parameters and persistent buffers."""
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield name, b

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Ordered mapping of dotted names to tensors (parameters, then
        persistent buffers, module by module). Tensors share storage with the
        module; keep_vars=False returns them detached."""
        if destination is None:
            destination = collections.OrderedDict()
        for name, t in self._own_state():
            destination[prefix + name] = t if keep_vars else t.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
        return destination

    def _load_from_state_dict(self, load, prefix):
        """Collects this module's part of a load (without recursing): marks the
        keys it consumes in `load.seen`, records missing keys and shape errors,
        and queues the copies. Override to accept older key layouts."""
        sd = load.state_dict
        for name, t in self._own_state():
            key = prefix + name
            if key not in sd:
                load.missing.append(key)
                continue
            load.seen.add(key)
            value = sd[key]
            shape = getattr(value, "shape", None)
            if shape is None:
                load.errors.append(f'While copying the parameter named "{key}", expected a Tensor or '
                                   f"array from checkpoint but received {type(value).__name__}")
            elif tuple(shape) != tuple(t.shape):
                load.errors.append(f"size mismatch for {key}: copying a param with shape {tuple(shape)} "
                                   f"from checkpoint, the shape in current model is {tuple(t.shape)}.")
            else:
                load.copies.append((t, value))

    def load_state_dict(self, state_dict, strict=True):
        """Copies values into this module's parameters and buffers, in place.

        With strict=True, missing or unexpected keys are errors; shape
        mismatches always are. All problems are reported in one RuntimeError
        and nothing is copied when there is one. Returns
        IncompatibleKeys(missing_keys, unexpected_keys)."""
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        load = _LoadState(collections.OrderedDict(state_dict))
        for prefix, module in self.named_modules():
            module._load_from_state_dict(load, f"{prefix}." if prefix else "")
        unexpected = [k for k in load.state_dict if k not in load.seen]
        problems = []
        if strict:
            if load.missing:
                problems.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in load.missing) + ".")
            if unexpected:
                problems.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        problems.extend(load.errors)
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(problems))
        with autograd.no_grad():
            for t, value in load.copies:
                t.copy_(value)
        return IncompatibleKeys(load.missing, unexpected)

    # -- repr -----------------------------------------------------------------------
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The text inside this module's parentheses in repr (override in layers)."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, module in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(module), 2))
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __deepcopy__(self, memo):
        # tensors are not picklable (checkpoints go through safetensors), so
        # copy.deepcopy would fail on them: give it copies of every parameter,
        # buffer and gradient up front, then copy everything else as usual
        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is not None and id(t) not in memo:
                    memo[id(t)] = _copy_tensor(t)
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def __dir__(self):
        return sorted(set(object.__dir__(self)) | set(self._parameters) | set(self._buffers) | set(self._modules))


def _copy_tensor(t):
    data = Tensor._wrap(t._data.copy(), t._device)
    out = Parameter(data, t.requires_grad) if isinstance(t, Parameter) else data
    if t._grad is not None:
        out._grad = Tensor._wrap(t._grad._data.copy(), t._device)
    return out


def _replace_data(t, new):
    t._data = new._data
    t._device = new._device
