"""Fused im2col/col2im and 2-d pooling on CUDA: one CuPy elementwise kernel
per call, where the reference (reference/conv.py run on CuPy) loops over the
kh*kw kernel offsets in Python, launching a few array operations for each.

Every kernel is a gather: a thread owns one element of the result and reads
what it needs, so none needs atomics and every result is deterministic. The
backward kernels (col2im, pooling gradients) find, for their input pixel and
each kernel offset, the one output whose window reads it there:
o*s - p + k*d == pos, i.e. pos + p - k*d divisible by s, 0 <= o < n_out.

The arithmetic is the reference's, element by element and in its order:
col2im and average pooling add the kernel offsets in row-major order in the
array's dtype, max-pool gradients are summed in float64 in the order of the
outputs (as the reference's bincount), so results match the numpy reference
bit for bit. Inputs outside the fast path (other dtypes, empty arrays, a
max-pool backward without its window geometry or with windows that miss the
image, see _some_window_misses_image) go to the reference.
Adaptive average pooling stays on the reference (two matrix products).
"""
import functools

import numpy as np

from .cuda import fusable
from .reference import conv as _ref

_OPTIONS = ("--fmad=false",)

# The geometry every kernel takes, as in reference/conv.py; images are
# (batch, channels, height, width) and outputs (batch, channels, oh, ow).
_GEOMETRY = ("int64 batch, int64 channels, int64 height, int64 width, int64 kh, int64 kw, "
             "int64 sh, int64 sw, int64 ph, int64 pw, int64 dh, int64 dw, int64 oh, int64 ow")

_HELPERS = r"""
// The position along the last axis (of length `size`) of the flat index
// `rest`; `rest` becomes the flat index over the axes before it.
__device__ inline long long mg_split(long long &rest, long long size) {
    const long long pos = rest % size;
    rest /= size;
    return pos;
}

__device__ inline bool mg_inside(long long h, long long w, long long height, long long width) {
    return h >= 0 && h < height && w >= 0 && w < width;
}

// The output along one axis whose window reads position `pos` at kernel
// offset `k`: o with o*s - p + k*d == pos and 0 <= o < n_out, or -1.
__device__ inline long long mg_window_at(long long pos, long long k, long long s, long long p,
                                         long long d, long long n_out) {
    const long long t = pos + p - k * d;
    if (t < 0 || t % s != 0 || t / s >= n_out) return -1;
    return t / s;
}

// The first window position start + k*step (k >= 0) past the leading padding.
__device__ inline long long mg_first_inside(long long start, long long step) {
    const long long behind = start < 0 ? -start : 0;
    return start + (behind + step - 1) / step * step;
}

// Average pooling's divisor factor along one axis (reference pool_bounds).
__device__ inline long long mg_avg_count(long long o, long long size, long long k, long long s,
                                         long long p, int count_include_pad) {
    const long long lo = o * s - p;
    const long long hi = lo + k < size + p ? lo + k : size + p;
    if (count_include_pad) return hi - lo;
    const long long start = lo > 0 ? lo : 0, end = hi < size ? hi : size;
    return end - start;
}

// Where im2col puts channel-row `row` (c*kh*kw + ki*kw + kj) of output
// (oy, ox) of image `image`, in either layout.
__device__ inline long long mg_col_index(int merged, long long image, long long row, long long oy,
                                         long long ox, long long batch, long long rows,
                                         long long oh, long long ow) {
    const long long column = oy * ow + ox;
    return merged ? (row * batch + image) * (oh * ow) + column
                  : (image * rows + row) * (oh * ow) + column;
}
"""

# A thread per output (image, channel, oy, ox) of a pooling: its coordinates
# and the top-left corner of its window.
_POOL_OUTPUT = """
long long rest = i;
const long long ox = mg_split(rest, ow);
const long long oy = mg_split(rest, oh);
const long long plane = rest * height * width;
const long long h0 = oy * sh - ph, w0 = ox * sw - pw;
"""

# A thread per input pixel (image, channel, h, w) of a gradient.
_INPUT_PIXEL = """
long long rest = i;
const long long w = mg_split(rest, width);
const long long h = mg_split(rest, height);
"""

_IM2COL = """
long long rest = i;
const long long ox = mg_split(rest, ow);
const long long oy = mg_split(rest, oh);
const long long rows = channels * kh * kw;
const long long image = merged ? mg_split(rest, batch) : rest / rows;
long long row = merged ? rest : rest % rows;
const long long kj = mg_split(row, kw);
const long long ki = mg_split(row, kh);
const long long h = oy * sh - ph + ki * dh, w = ox * sw - pw + kj * dw;
col = mg_inside(h, w, height, width) ? x[((image * channels + row) * height + h) * width + w]
                                     : (T)0;
"""

_COL2IM = _INPUT_PIXEL + """
const long long channel = mg_split(rest, channels);
const long long image = rest;
const long long rows = channels * kh * kw;
T sum = (T)0;
for (long long ki = 0; ki < kh; ki++) {
    const long long oy = mg_window_at(h, ki, sh, ph, dh, oh);
    if (oy < 0) continue;
    for (long long kj = 0; kj < kw; kj++) {
        const long long ox = mg_window_at(w, kj, sw, pw, dw, ow);
        if (ox < 0) continue;
        sum += col[mg_col_index(merged, image, (channel * kh + ki) * kw + kj, oy, ox, batch,
                                rows, oh, ow)];
    }
}
dx = sum;
"""

# Padding is -inf, so only image positions can take the maximum; until one
# does, the index is the window's first position past the leading padding.
_MAX_POOL = _POOL_OUTPUT + """
T best = lowest;
long long best_at = mg_first_inside(h0, dh) * width + mg_first_inside(w0, dw);
for (long long ki = 0; ki < kh; ki++) {
    const long long h = h0 + ki * dh;
    for (long long kj = 0; kj < kw; kj++) {
        const long long w = w0 + kj * dw;
        if (!mg_inside(h, w, height, width)) continue;
        const T v = x[plane + h * width + w];
        if (v > best || isnan(v)) {
            best = v;
            best_at = h * width + w;
        }
    }
}
y = best;
argmax = best_at;
"""

# Descending offsets meet the outputs in ascending (oy, ox) order, the order
# in which the reference's bincount adds them (in float64).
_MAX_POOL_GRAD = _INPUT_PIXEL + """
const long long outputs = rest * oh * ow;
const long long here = h * width + w;
double sum = 0.0;
for (long long ki = kh - 1; ki >= 0; ki--) {
    const long long oy = mg_window_at(h, ki, sh, ph, dh, oh);
    if (oy < 0) continue;
    for (long long kj = kw - 1; kj >= 0; kj--) {
        const long long ox = mg_window_at(w, kj, sw, pw, dw, ow);
        if (ox < 0) continue;
        const long long o = outputs + oy * ow + ox;
        if (argmax[o] == here) sum += (double)dy[o];
    }
}
dx = (T)sum;
"""

# Padding adds zeros, which leave the sum as it is.
_AVG_POOL = _POOL_OUTPUT + """
T sum = (T)0;
for (long long ki = 0; ki < kh; ki++) {
    const long long h = h0 + ki * dh;
    for (long long kj = 0; kj < kw; kj++) {
        const long long w = w0 + kj * dw;
        if (mg_inside(h, w, height, width)) sum += x[plane + h * width + w];
    }
}
y = sum / (T)(mg_avg_count(oy, height, kh, sh, ph, count_include_pad)
              * mg_avg_count(ox, width, kw, sw, pw, count_include_pad));
"""

_AVG_POOL_GRAD = _INPUT_PIXEL + """
const long long outputs = rest * oh * ow;
T sum = (T)0;
for (long long ki = 0; ki < kh; ki++) {
    const long long oy = mg_window_at(h, ki, sh, ph, dh, oh);
    if (oy < 0) continue;
    const long long rcount = mg_avg_count(oy, height, kh, sh, ph, count_include_pad);
    for (long long kj = 0; kj < kw; kj++) {
        const long long ox = mg_window_at(w, kj, sw, pw, dw, ow);
        if (ox < 0) continue;
        sum += dy[outputs + oy * ow + ox]
               / (T)(rcount * mg_avg_count(ox, width, kw, sw, pw, count_include_pad));
    }
}
dx = sum;
"""


@functools.lru_cache(maxsize=None)
def _kernels(cupy):
    def kernel(inputs, outputs, body, name):
        return cupy.ElementwiseKernel(f"{inputs}, {_GEOMETRY}", outputs, body, name,
                                      preamble=_HELPERS, options=_OPTIONS)
    return {
        "im2col": kernel("raw T x, int32 merged", "T col", _IM2COL, "minigrad_im2col"),
        "col2im": kernel("raw T col, int32 merged", "T dx", _COL2IM, "minigrad_col2im"),
        "max_pool": kernel("raw T x, T lowest", "T y, int64 argmax", _MAX_POOL,
                           "minigrad_max_pool2d"),
        "max_pool_grad": kernel("raw T dy, raw int64 argmax", "T dx", _MAX_POOL_GRAD,
                                "minigrad_max_pool2d_grad"),
        "avg_pool": kernel("raw T x, int32 count_include_pad", "T y", _AVG_POOL,
                           "minigrad_avg_pool2d"),
        "avg_pool_grad": kernel("raw T dy, int32 count_include_pad", "T dx", _AVG_POOL_GRAD,
                                "minigrad_avg_pool2d_grad"),
    }


def _geometry(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The _GEOMETRY scalars."""
    return tuple(np.int64(v) for v in (n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow))


def _fast(cupy, a, out_shape):
    """A non-empty CuPy float32/float64 array making a non-empty result."""
    return fusable(cupy, a) and a.size > 0 and all(s > 0 for s in out_shape)


@functools.lru_cache(maxsize=256)
def _some_window_misses_image(size, k, s, p, d, n_out):
    """Whether a window along this axis holds no image position (dilation can
    step over a thin image). Its max-pool index is then a convention that
    need not be a position the window reads, so a gather would not find it."""
    return any(all(not 0 <= o * s - p + t * d < size for t in range(k)) for o in range(n_out))


def install(backend, cupy):
    """Puts the fused conv and pooling kernels in place of the reference ones."""
    kernels = functools.partial(_kernels, cupy)

    def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=False):
        n, c, h, w = x.shape
        shape = (c * kh * kw, n * oh * ow) if merged else (n, c * kh * kw, oh * ow)
        if not _fast(cupy, x, shape):
            return _ref.im2col(cupy, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged)
        cols = cupy.empty(shape, dtype=x.dtype)
        kernels()["im2col"](cupy.ascontiguousarray(x), np.int32(bool(merged)),
                            *_geometry(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), cols)
        return cols

    def col2im(cols, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=False):
        c = cols.shape[0 if merged else 1] // (kh * kw)
        n = (cols.shape[1] // (oh * ow) if oh * ow else 0) if merged else cols.shape[0]
        if not _fast(cupy, cols, (n, c, H, W)):
            return _ref.col2im(cupy, cols, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged)
        dx = cupy.empty((n, c, H, W), dtype=cols.dtype)
        kernels()["col2im"](cupy.ascontiguousarray(cols), np.int32(bool(merged)),
                            *_geometry(n, c, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), dx)
        return dx

    def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        n, c, h, w = x.shape
        if not _fast(cupy, x, (n, c, oh, ow)):
            return _ref.max_pool2d_forward(cupy, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
        indices = cupy.empty((n, c, oh, ow), dtype=cupy.int64)
        kernels()["max_pool"](cupy.ascontiguousarray(x), x.dtype.type(-np.inf),
                              *_geometry(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow),
                              y, indices)
        return y, indices

    def max_pool2d_backward(dy, indices, H, W, window=None):
        n, c = dy.shape[:2]
        if not (window is not None and _fast(cupy, dy, (n, c, H, W))
                and isinstance(indices, cupy.ndarray) and indices.shape == dy.shape
                and tuple(window[8:]) == dy.shape[2:]):
            return _ref.max_pool2d_backward(cupy, dy, indices, H, W, window=window)
        kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = window
        if (_some_window_misses_image(H, kh, sh, ph, dh, oh)
                or _some_window_misses_image(W, kw, sw, pw, dw, ow)):
            return _ref.max_pool2d_backward(cupy, dy, indices, H, W, window=window)
        dx = cupy.empty((n, c, H, W), dtype=dy.dtype)
        kernels()["max_pool_grad"](cupy.ascontiguousarray(dy),
                                   cupy.ascontiguousarray(indices, dtype=cupy.int64),
                                   *_geometry(n, c, H, W, *window), dx)
        return dx

    def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
        n, c, h, w = x.shape
        if not _fast(cupy, x, (n, c, oh, ow)):
            return _ref.avg_pool2d_forward(cupy, x, kh, kw, sh, sw, ph, pw, oh, ow,
                                           count_include_pad)
        y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
        kernels()["avg_pool"](cupy.ascontiguousarray(x), np.int32(bool(count_include_pad)),
                              *_geometry(n, c, h, w, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow), y)
        return y

    def avg_pool2d_backward(dy, H, W, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
        n, c = dy.shape[:2]
        if not _fast(cupy, dy, (n, c, H, W)):
            return _ref.avg_pool2d_backward(cupy, dy, H, W, kh, kw, sh, sw, ph, pw, oh, ow,
                                            count_include_pad)
        dx = cupy.empty((n, c, H, W), dtype=dy.dtype)
        kernels()["avg_pool_grad"](cupy.ascontiguousarray(dy), np.int32(bool(count_include_pad)),
                                   *_geometry(n, c, H, W, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow),
                                   dx)
        return dx

    for name, fused in (("im2col", im2col), ("col2im", col2im),
                        ("max_pool2d_forward", max_pool2d_forward),
                        ("max_pool2d_backward", max_pool2d_backward),
                        ("avg_pool2d_forward", avg_pool2d_forward),
                        ("avg_pool2d_backward", avg_pool2d_backward)):
        setattr(backend, name, fused)
        backend.compiled[name] = fused
