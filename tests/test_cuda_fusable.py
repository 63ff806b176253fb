"""Which arrays the fused CUDA kernels take (backend/cuda.py fusable, and
batch norm's narrower rule): checked here without a GPU, with numpy playing
the array module, so that a wrong rule cannot hide behind skipped GPU tests."""
import numpy as np

from minigrad.backend import cuda_norm
from minigrad.backend.cuda import fusable


def test_fusable_takes_one_float_dtype_and_shape_only():
    a = np.zeros((3, 4), np.float32)
    assert fusable(np, a, np.ones((4, 3), np.float32).T, a.copy())  # any layout
    assert not fusable(np, a, np.zeros((3, 4), np.float64))        # mixed dtypes
    assert not fusable(np, a, np.zeros((4, 3), np.float32))        # another shape
    assert not fusable(np, np.zeros(3, np.float16), np.zeros(3, np.float16))
    assert not fusable(np, np.zeros(3, np.int64))
    assert not fusable(np, a, [[0.0] * 4] * 3)                     # not an array of the module
    assert fusable(np, np.zeros(5, np.float64))


def test_fused_batch_norm_takes_batchnorm1d_layout_only():
    x = np.zeros((8, 5, 1), np.float32)
    assert cuda_norm._fast(np, x, x.copy())
    assert not cuda_norm._fast(np, np.zeros((8, 5, 3), np.float32))  # BatchNorm2d: reference
    assert not cuda_norm._fast(np, np.zeros((0, 5, 1), np.float32))  # empty
    assert not cuda_norm._fast(np, x, np.zeros((8, 5, 1), np.float64))
