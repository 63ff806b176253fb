"""Optimizers (`SGD`, `Adam`, `AdamW`, `RMSprop`, `Adagrad`) and `lr_scheduler`,
with PyTorch's names, defaults and update formulas. Updates run as fused
in-place kernels of each parameter's backend."""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
