"""minigrad: a small, fast, honest deep-learning framework.

Tensors with reverse-mode autograd, compiled kernels on the CPU, CuPy on
NVIDIA GPUs, and PyTorch's names and defaults throughout.
"""
# How idle OpenMP workers wait, chosen before the OpenMP runtime loads: with
# numpy's OpenBLAS running its products on the same threads (installed below)
# they spin a while; with two pools they sleep (see _blas_pool.py).
from . import _blas_pool

_blas_pool.plan()

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

_blas_pool.install()  # the compiled kernels have loaded the OpenMP runtime
_blas_pool.install_batched_products()

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
