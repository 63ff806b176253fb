"""Training utilities: diagnostics of activations and gradients."""
from .stats import ActivationStats, plot_histograms  # noqa: F401
