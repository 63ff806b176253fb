"""The CUDA backend: CuPy's numpy-compatible API for every kernel.

Made lazily by minigrad.cuda when the first cuda tensor is created, so CuPy is
never imported otherwise. Every kernel is the reference implementation run
with xp=cupy (cuBLAS behind matmul), except where the CPU side has compiled
kernels: there fused CuPy kernels take their place, for the inputs they
cover (the rest still go to the reference): the optimizer updates SGD and
Adam/AdamW (cuda_optim.py), normalization (cuda_norm.py), activations
(cuda_activation.py), softmax and cross-entropy (cuda_loss.py), im2col/
col2im and pooling (cuda_conv.py).
"""
import numpy as np

from . import Backend


def fusable(cupy, *arrays):
    """Whether the fused CuPy kernels (cuda_*.py) take these
    arrays: all CuPy arrays of one float dtype (float32/float64) and one
    shape. Anything else goes to the reference kernels."""
    first = arrays[0]
    return (all(isinstance(a, cupy.ndarray) for a in arrays)
            and first.dtype in (np.float32, np.float64)
            and all(a.dtype == first.dtype and a.shape == first.shape for a in arrays))


class CudaBackend(Backend):
    def __init__(self, cupy, device_index):
        super().__init__("cuda", cupy, compiled_package=None)
        from . import cuda_activation, cuda_conv, cuda_loss, cuda_norm, cuda_optim
        for fused in (cuda_optim, cuda_norm, cuda_activation, cuda_loss, cuda_conv):
            fused.install(self, cupy)
        self.cupy = cupy
        self.device_index = device_index
        self._generator = None

    def to_host(self, arr):
        return self.cupy.asnumpy(arr)

    def from_host(self, arr):
        with self.cupy.cuda.Device(self.device_index):
            return self.cupy.asarray(arr)

    def seed(self, seed):
        self._generator = self.cupy.random.default_rng(seed)

    def sample(self, kind, shape, dtype, a=0.0, b=1.0):
        """Random draws made on the device from CuPy's generator (seeded by mg.manual_seed)."""
        cp = self.cupy
        if self._generator is None:
            self._generator = cp.random.default_rng()
        gen = self._generator
        dtype = np.dtype(dtype)
        with cp.cuda.Device(self.device_index):
            if kind == "normal":
                draw_dtype = dtype if dtype.kind == "f" else np.float64
                return (gen.standard_normal(shape, dtype=draw_dtype) * b + a).astype(dtype, copy=False)
            if kind == "uniform":
                draw_dtype = dtype if dtype.kind == "f" else np.float64
                return (gen.random(shape, dtype=draw_dtype) * (b - a) + a).astype(dtype, copy=False)
            if kind == "integers":
                return gen.integers(a, b, size=shape).astype(dtype, copy=False)
            if kind == "permutation":
                return gen.permutation(shape[0]).astype(dtype, copy=False)
            if kind == "bernoulli":
                return gen.random(shape) < a
        raise ValueError(f"unknown random kind {kind!r}")


_backends = {}


def make_backend(cupy, dev):
    index = dev.index or 0
    count = cupy.cuda.runtime.getDeviceCount()
    if index >= count:
        raise RuntimeError(f"cannot use device '{dev}': only {count} CUDA device(s) are visible")
    be = _backends.get(index)
    if be is None:
        be = _backends[index] = CudaBackend(cupy, index)
        from .. import random as _random
        _random.on_manual_seed(be.seed)
        if _random.initial_seed() is not None:
            be.seed(_random.initial_seed())
    return be
