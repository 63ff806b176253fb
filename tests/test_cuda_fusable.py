"""Which arrays the fused CUDA kernels take (backend/cuda.py fusable, and
the normalization layouts): checked here without a GPU, with numpy playing
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


def test_fused_norm_takes_its_layouts_rank_only():
    x = np.zeros((8, 5, 3), np.float32)
    assert cuda_norm._fast(np, 3, x, x.copy())                         # batch norm (N, C, S)
    assert cuda_norm._fast(np, 4, np.zeros((8, 2, 3, 1), np.float64))  # group norm (N, G, K, S)
    assert not cuda_norm._fast(np, 4, x)                               # another layout
    assert not cuda_norm._fast(np, 3, np.zeros((0, 5, 1), np.float32))  # empty
    assert not cuda_norm._fast(np, 3, x, np.zeros((8, 5, 3), np.float64))


def test_norm_sums_over_batch_and_last_axis_in_two_stages_when_it_is_long():
    calls = []

    def reduce(axis):
        calls.append(axis)
        return np.ones((4, 3)) if axis == 2 else np.ones(3)
    assert cuda_norm._over_batch_and_last(reduce, (4, 3, 7)).tolist() == [4.0] * 3
    assert cuda_norm._over_batch_and_last(reduce, (4, 3, 1)).tolist() == [1.0] * 3
    assert calls == [2, (0, 2)]
