"""minigrad: a small, fast, honest deep-learning framework.

Tensors with reverse-mode autograd, compiled kernels on the CPU, CuPy on
NVIDIA GPUs, and PyTorch's names and defaults throughout.
"""
import os as _os

# Compiled kernels (OpenMP) and numpy's BLAS keep separate thread pools that
# alternate every op. Spinning OpenMP workers steal the cores BLAS needs (tens
# of ms lost per op on 2 cores), so idle OpenMP threads sleep instead. Must be
# set before the OpenMP runtime loads; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The same for OpenBLAS's workers (numpy's BLAS), which otherwise spin long
# after each product; takes effect when minigrad is imported before numpy.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from ._malloc import tune_malloc as _tune_malloc

_tune_malloc()  # freed activations stay on the heap for the next step (see _malloc.py)

from . import autograd, cuda, data, nn, optim, utils
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .device import device, get_default_device, set_default_device
from .dtypes import bool_ as bool, dtype, double, float, float32, float64, int64, long  # noqa: A004
from .gradcheck import gradcheck, gradcheck_module, gradgradcheck
from .ops.elementwise import where
from .ops.shape import cat, stack
from .random import get_rng_state, initial_seed, manual_seed, set_rng_state
from .serialization import load, save
from .threads import get_num_threads, set_num_threads
from .tensor import (Tensor, arange, empty, empty_like, eye, from_numpy, full, full_like, linspace,
                     ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor,
                     zeros, zeros_like)

__version__ = "0.1.0"


def _tensor_fn(name):
    def fn(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"Functional form of Tensor.{name}."
    return fn


for _name in ("exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "clamp",
              "maximum", "minimum", "sum", "mean", "var", "std", "amax", "amin", "max", "min",
              "argmax", "argmin", "logsumexp", "reshape", "flatten", "transpose", "permute",
              "unsqueeze", "squeeze", "matmul", "softmax", "log_softmax", "square", "rsqrt",
              "clip", "neg"):
    globals()[_name] = _tensor_fn(_name)
del _name
