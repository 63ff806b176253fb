"""Weight normalization (Salimans & Kingma, 2016), PyTorch's classic
`torch.nn.utils.weight_norm` API: the parameter `name` is replaced by a
magnitude `name_g` and a direction `name_v`, and a forward pre-hook recomputes
`name = name_v * (name_g / ||name_v||)` before every forward pass, so
gradients reach g and v."""
from ..parameter import Parameter

__all__ = ["weight_norm", "remove_weight_norm"]


def norm_except_dim(v, dim):
    """The 2-norm of v over every dim except `dim`, keeping v's rank (so it
    broadcasts against v); the norm of the whole tensor (0-d) when dim is -1."""
    if dim == -1:
        # reduced with keepdim, then reshaped: elementwise ops on 0-d arrays
        # may hand back numpy scalars, which a Parameter cannot hold
        return (v * v).sum(tuple(range(v.ndim)), keepdim=True).sqrt().reshape(())
    axes = tuple(d for d in range(v.ndim) if d != dim)
    sq = v * v
    return (sq.sum(axes, keepdim=True) if axes else sq).sqrt()


class WeightNorm:
    """The forward pre-hook that recomputes the weight from g and v."""

    def __init__(self, name, dim):
        self.name, self.dim = name, dim

    def compute_weight(self, module):
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return v * (g / norm_except_dim(v, self.dim))

    @staticmethod
    def apply(module, name, dim):
        _refuse_second_hook(module, name, WeightNorm, "weight_norm")
        weight = _own_parameter(module, name, "weight_norm")
        # dim=None, like PyTorch's dim=-1, means the norm of the whole tensor
        dim = -1 if dim is None or dim == -1 else _dim_index(dim, weight.ndim, "weight_norm")
        fn = WeightNorm(name, dim)
        delattr(module, name)
        module.register_parameter(name + "_g", Parameter(norm_except_dim(weight, dim).detach()))
        module.register_parameter(name + "_v", Parameter(weight.detach()))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        weight = self.compute_weight(module)
        delattr(module, self.name)
        delattr(module, self.name + "_g")
        delattr(module, self.name + "_v")
        setattr(module, self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module))


def _refuse_second_hook(module, name, kind, fn):
    for hook, _ in module._forward_pre_hooks.values():
        if isinstance(hook, kind) and hook.name == name:
            raise RuntimeError(f"Cannot register two {fn} hooks on the same parameter {name}")


def _own_parameter(module, name, fn):
    weight = module._parameters.get(name)
    if weight is None:
        names = sorted(k for k, p in module._parameters.items() if p is not None)
        raise ValueError(f"{fn}: {type(module).__name__} has no parameter named {name!r} "
                         f"(its parameters: {names})")
    return weight


def _dim_index(dim, ndim, fn):
    if not -ndim <= dim < ndim:
        raise IndexError(f"{fn}: dim {dim} is out of range for a weight with {ndim} dimensions")
    return dim % ndim


def _remove_hook(module, name, kind, fn):
    for key, (hook, _) in list(module._forward_pre_hooks.items()):
        if isinstance(hook, kind) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"{fn} of '{name}' not found in {module}")


def weight_norm(module, name="weight", dim=0):
    """Reparametrizes module.<name> as g * v / ||v||, the norm taken over
    every dim except `dim` (dim=None: over the whole tensor). Adds the
    parameters <name>_g and <name>_v; returns the module."""
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name="weight"):
    """Undoes weight_norm: <name> becomes a plain parameter again, holding the
    current g * v / ||v||."""
    return _remove_hook(module, name, WeightNorm, "weight_norm")
