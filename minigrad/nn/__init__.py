"""minigrad.nn: modules, layers, losses, initializers (PyTorch's names and defaults)."""
from . import functional, init, utils  # noqa: F401
from .module import Module, RemovableHandle  # noqa: F401
from .parameter import Parameter  # noqa: F401

# containers
from .layers.container import Flatten, Identity, ModuleDict, ModuleList, Sequential  # noqa: F401

# linear
from .layers.linear import Linear  # noqa: F401

# activations
from .layers.activation import (ELU, GELU, SELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6,  # noqa: F401
                                Sigmoid, SiLU, Softmax, Softplus, Tanh)

# convolution and pooling
from .layers.conv import Conv2d  # noqa: F401
from .layers.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d  # noqa: F401

# normalization
from .layers.normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchRenorm1d,  # noqa: F401
                                   BatchRenorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d,
                                   InstanceNorm3d, LayerNorm, LocalResponseNorm, RMSNorm,
                                   SwitchableNorm2d)

# dropout
from .layers.dropout import Dropout  # noqa: F401

# losses
from .layers.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss  # noqa: F401
