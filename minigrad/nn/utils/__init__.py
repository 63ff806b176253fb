"""nn.utils: gradient clipping and parametrizations (weight_norm, spectral_norm)."""
from .clip_grad import clip_grad_adaptive_, clip_grad_norm_, clip_grad_value_
from .spectral_norm import remove_spectral_norm, spectral_norm
from .weight_norm import remove_weight_norm, weight_norm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grad_adaptive_", "weight_norm",
           "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]
