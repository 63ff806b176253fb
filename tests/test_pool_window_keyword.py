"""max_pool2d_backward's optional `window` (the forward's geometry): the CPU
kernels accept it and give the same result without it, the ops pass it; and
plain-loop versions of the CUDA kernels' gathers (backend/cuda_conv.py), which
find for each input pixel the outputs whose windows read it, against the
reference's scatters, so their index arithmetic is checked without a GPU."""
import functools
import itertools

import numpy as np
import pytest

import minigrad as mg
from minigrad.backend.cuda_conv import _some_window_misses_image
from minigrad.backend.reference import conv as ref
from minigrad.ops.pool import adaptive_max_pool2d, max_pool2d
from minigrad.ops.window import pool_out_size


def random_geometry(seed, dilation=True):
    """(N, C, H, W) and the window (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow);
    padding up to half the dilated kernel, ceil_mode at random."""
    rng = np.random.default_rng(seed)
    while True:
        n, c, h, w = (int(v) for v in rng.integers(1, 4, 2).tolist() + rng.integers(1, 10, 2).tolist())
        kh, kw, sh, sw = (int(v) for v in rng.integers(1, 4, 4))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2)) if dilation else (1, 1)
        ph = int(rng.integers(0, (dh * (kh - 1) + 1) // 2 + 1))
        pw = int(rng.integers(0, (dw * (kw - 1) + 1) // 2 + 1))
        ceil = bool(rng.integers(0, 2))
        oh, ow = pool_out_size(h, kh, sh, ph, dh, ceil), pool_out_size(w, kw, sw, pw, dw, ceil)
        if oh >= 1 and ow >= 1:
            return (n, c, h, w), (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def pool_case(seed, dtype=np.float64):
    """x (with ties, and all -inf planes now and then), its geometry, the
    reference's forward indices and a gradient dy."""
    shape, window = random_geometry(seed)
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape)).astype(dtype)
    if seed % 5 == 0:
        x[:, 0] = -np.inf  # nothing beats the initial -inf: the index convention decides
    _, idx = ref.max_pool2d_forward(np, x, *window)
    dy = rng.standard_normal(idx.shape).astype(dtype)
    return shape, window, idx, dy


def _backends():
    out = [pytest.param(functools.partial(ref.max_pool2d_backward, np), id="reference")]
    try:
        from minigrad._core import conv as core
        out.append(pytest.param(core.max_pool2d_backward, id="compiled"))
    except ImportError:
        pass
    return out


# ---------------------------------------------------------------- the keyword

@pytest.mark.parametrize("backward", _backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(40))
def test_max_pool_backward_gives_the_same_result_with_and_without_window(backward, dtype, seed):
    (_, _, h, w), window, idx, dy = pool_case(seed, dtype)
    without = backward(dy, idx, h, w)
    with_window = backward(dy, idx, h, w, window=window)
    assert with_window.dtype == without.dtype == dtype
    np.testing.assert_array_equal(with_window, without)


@pytest.fixture
def backward_calls(monkeypatch):
    """The `window` of every max_pool2d_backward call on the CPU."""
    backend = mg.device("cpu").backend
    kernel, calls = backend.max_pool2d_backward, []

    def spy(dy, indices, h, w, window=None):
        calls.append(window)
        return kernel(dy, indices, h, w, window=window)
    monkeypatch.setattr(backend, "max_pool2d_backward", spy)
    return calls


def test_max_pool_op_passes_its_geometry(backward_calls):
    x = mg.randn(2, 3, 9, 8, dtype=mg.float64, requires_grad=True)
    max_pool2d(x, (3, 2), (2, 1), 1, (1, 2), ceil_mode=True).sum().backward()
    oh, ow = pool_out_size(9, 3, 2, 1, 1, True), pool_out_size(8, 2, 1, 1, 2, True)
    assert backward_calls == [(3, 2, 2, 1, 1, 1, 1, 2, oh, ow)]


def test_max_pool_op_passes_its_geometry_when_differentiating_twice(backward_calls):
    x = mg.randn(1, 2, 6, 6, dtype=mg.float64, requires_grad=True)
    (g,) = mg.autograd.grad((max_pool2d(x, 2) ** 2).sum(), [x], create_graph=True)
    g.sum().backward()
    assert backward_calls and all(c == (2, 2, 2, 2, 0, 0, 1, 1, 3, 3) for c in backward_calls)


@pytest.mark.parametrize("size, window", [((3, 2), (2, 3, 2, 3, 0, 0, 1, 1, 3, 2)),
                                          ((4, 4), None)])
def test_adaptive_max_pool_passes_a_geometry_only_for_equal_windows(backward_calls, size, window):
    x = mg.randn(2, 3, 6, 6, dtype=mg.float64, requires_grad=True)
    adaptive_max_pool2d(x, size).sum().backward()
    assert backward_calls == [window]


# ---------------------------------------------------------------- the CUDA kernels' gathers

def window_at(pos, k, s, p, d, n_out):
    """The output whose window reads `pos` at kernel offset k (o*s - p + k*d
    == pos, 0 <= o < n_out), or -1: the kernels' mg_window_at."""
    t = pos + p - k * d
    if t < 0 or t % s != 0 or t // s >= n_out:
        return -1
    return t // s


def gather_col2im(cols, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged):
    """col2im as the kernel computes it: per pixel, the offsets in row-major
    order, summed in the array's dtype."""
    rows = cols.shape[0] if merged else cols.shape[1]
    n = cols.shape[1] // (oh * ow) if merged else cols.shape[0]
    flat, dx = cols.ravel(), np.zeros((n, rows // (kh * kw), H, W), cols.dtype)
    for image, channel, h, w in itertools.product(*map(range, dx.shape)):
        total = cols.dtype.type(0)
        for ki, kj in itertools.product(range(kh), range(kw)):
            oy, ox = window_at(h, ki, sh, ph, dh, oh), window_at(w, kj, sw, pw, dw, ow)
            if oy < 0 or ox < 0:
                continue
            row, column = (channel * kh + ki) * kw + kj, oy * ow + ox
            at = ((row * n + image) if merged else (image * rows + row)) * (oh * ow) + column
            total += flat[at]
        dx[image, channel, h, w] = total
    return dx


def gather_max_pool_grad(dy, indices, H, W, window):
    """max_pool2d_backward as the kernel computes it: per pixel, the outputs
    that recorded it, in ascending (oy, ox) order, summed in float64."""
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = window
    dx = np.zeros(dy.shape[:2] + (H, W), dy.dtype)
    for image, channel, h, w in itertools.product(*map(range, dx.shape)):
        total = 0.0
        for ki, kj in itertools.product(reversed(range(kh)), reversed(range(kw))):
            oy, ox = window_at(h, ki, sh, ph, dh, oh), window_at(w, kj, sw, pw, dw, ow)
            if oy >= 0 and ox >= 0 and indices[image, channel, oy, ox] == h * W + w:
                total += float(dy[image, channel, oy, ox])
        dx[image, channel, h, w] = total
    return dx


def gather_avg_pool_grad(dy, H, W, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """avg_pool2d_backward as the kernel computes it."""
    def count(o, size, k, s, p):  # the kernels' mg_avg_count
        lo = o * s - p
        hi = min(lo + k, size + p)
        return hi - lo if count_include_pad else min(hi, size) - max(lo, 0)
    dx = np.zeros(dy.shape[:2] + (H, W), dy.dtype)
    for image, channel, h, w in itertools.product(*map(range, dx.shape)):
        total = dy.dtype.type(0)
        for ki, kj in itertools.product(range(kh), range(kw)):
            oy, ox = window_at(h, ki, sh, ph, 1, oh), window_at(w, kj, sw, pw, 1, ow)
            if oy >= 0 and ox >= 0:
                divisor = dy.dtype.type(count(oy, H, kh, sh, ph) * count(ox, W, kw, sw, pw))
                total += dy[image, channel, oy, ox] / divisor
        dx[image, channel, h, w] = total
    return dx


@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(30))
def test_col2im_gather_matches_reference(seed, dtype, merged):
    (n, c, h, w), window = random_geometry(seed)
    rng = np.random.default_rng(seed)
    cols = rng.standard_normal(ref.im2col(np, np.zeros((n, c, h, w)), *window, merged).shape)
    cols = cols.astype(dtype)
    np.testing.assert_array_equal(gather_col2im(cols, h, w, *window, merged),
                                  ref.col2im(np, cols, h, w, *window, merged))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(60))
def test_max_pool_grad_gather_matches_reference_unless_a_window_misses_the_image(seed, dtype):
    """Where a window holds no image element its index is a convention, not
    a position it reads, and may alias another pixel: the gather cannot find
    it, so the CUDA kernel leaves those geometries to the reference."""
    (_, _, h, w), window, idx, dy = pool_case(seed, dtype)
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = window
    misses = (_some_window_misses_image(h, kh, sh, ph, dh, oh)
              or _some_window_misses_image(w, kw, sw, pw, dw, ow))
    y, _ = ref.max_pool2d_forward(np, np.zeros((1, 1, h, w)), *window)
    assert misses == bool(np.isneginf(y).any())
    if not misses:
        np.testing.assert_array_equal(gather_max_pool_grad(dy, idx, h, w, window),
                                      ref.max_pool2d_backward(np, dy, idx, h, w))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(30))
def test_avg_pool_grad_gather_matches_reference(seed, dtype, count_include_pad):
    (n, c, h, w), (kh, kw, sh, sw, ph, pw, _, _, oh, ow) = random_geometry(seed, dilation=False)
    args = (kh, kw, sh, sw, ph, pw, oh, ow)
    dy = np.random.default_rng(seed).standard_normal((n, c, oh, ow)).astype(dtype)
    np.testing.assert_array_equal(gather_avg_pool_grad(dy, h, w, *args, count_include_pad),
                                  ref.avg_pool2d_backward(np, dy, h, w, *args, count_include_pad))


def test_a_window_missing_the_image_can_alias_another_pixel():
    """Width 1, windows at columns -1 and 1: none reads the image, and the
    convention index h*W + 1 names pixel (h + 1, 0), which the reference
    routes the gradient to. The gather would drop it; the fallback keeps it."""
    h, w, window = 2, 1, (1, 2, 1, 1, 0, 1, 1, 2, 2, 1)
    _, idx = ref.max_pool2d_forward(np, np.full((1, 1, h, w), -np.inf), *window)
    dy = np.ones(idx.shape)
    assert idx.ravel().tolist() == [1, 2]
    assert ref.max_pool2d_backward(np, dy, idx, h, w).ravel().tolist() == [0, 1]
    assert gather_max_pool_grad(dy, idx, h, w, window).ravel().tolist() == [0, 0]
    assert _some_window_misses_image(w, 2, 1, 1, 2, 1)
