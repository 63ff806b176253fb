"""Spectral normalization (Miyato et al., 2018), PyTorch's classic
`torch.nn.utils.spectral_norm` API: the parameter `name` becomes
`name_orig`, two buffers `name_u` and `name_v` hold the power-iteration
estimates of its top singular vectors, and a forward pre-hook sets
`name = name_orig / sigma`, sigma = u^T W v, before every forward pass.
In training mode each forward first runs n_power_iterations steps of power
iteration (updating u and v in place); u and v are constants for the
gradient, as in the paper."""
from ...autograd import no_grad
from ...tensor import empty
from ..parameter import Parameter
from .weight_norm import _dim_index, _own_parameter, _refuse_second_hook, _remove_hook

__all__ = ["spectral_norm", "remove_spectral_norm"]


def _normalize(x, eps):
    """x / max(||x||, eps)."""
    return x / max(float((x * x).sum().sqrt().item()), eps)


class SpectralNorm:
    """The forward pre-hook that divides the weight by its spectral norm."""

    def __init__(self, name, n_power_iterations, dim, eps):
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def weight_matrix(self, weight):
        """The weight as a (size along dim, everything else) matrix."""
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        mat = self.weight_matrix(weight)
        if do_power_iteration:
            with no_grad():
                for _ in range(self.n_power_iterations):
                    v.copy_(_normalize(mat.T @ u, self.eps))
                    u.copy_(_normalize(mat @ v, self.eps))
        # copies: a later forward's in-place power iteration must not change
        # the constants this forward's graph holds
        with no_grad():
            u, v = u.clone(), v.clone()
        sigma = u @ (mat @ v)
        return weight / sigma

    @staticmethod
    def apply(module, name, n_power_iterations, dim, eps):
        _refuse_second_hook(module, name, SpectralNorm, "spectral_norm")
        if not isinstance(n_power_iterations, int) or n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        weight = _own_parameter(module, name, "spectral_norm")
        if weight.ndim == 0:
            raise ValueError(f"spectral_norm: {name} must have at least one dimension, got a 0-d tensor")
        if dim is None:  # PyTorch's default: the output dim (1 for transposed convolutions)
            dim = 1 if type(module).__name__.startswith("ConvTranspose") else 0
        fn = SpectralNorm(name, n_power_iterations, _dim_index(dim, weight.ndim, "spectral_norm"), eps)
        with no_grad():
            h, w = fn.weight_matrix(weight).shape
            u = _normalize(empty(h, dtype=weight.dtype, device=weight.device).normal_(0.0, 1.0), eps)
            v = _normalize(empty(w, dtype=weight.dtype, device=weight.device).normal_(0.0, 1.0), eps)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        setattr(module, name, weight.detach())
        module.register_buffer(name + "_u", u)
        module.register_buffer(name + "_v", v)
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        for suffix in ("", "_u", "_v", "_orig"):
            delattr(module, self.name + suffix)
        module.register_parameter(self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Reparametrizes module.<name> as <name>_orig / sigma, sigma its largest
    singular value estimated by power iteration (one step per training
    forward by default). dim=None means 0 (1 for ConvTranspose modules): the
    weight is viewed as a matrix with that dim as its rows. Returns the module."""
    SpectralNorm.apply(module, name, n_power_iterations, dim, eps)
    return module


def remove_spectral_norm(module, name="weight"):
    """Undoes spectral_norm: <name> becomes a plain parameter holding the
    current normalized weight."""
    return _remove_hook(module, name, SpectralNorm, "spectral_norm")
