"""nn.utils: gradient clipping and parametrizations (weight_norm, spectral_norm)."""
from .clip_grad import clip_grad_adaptive_, clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grad_adaptive_"]
