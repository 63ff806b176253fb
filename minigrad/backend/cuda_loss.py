"""Fused row kernels on CUDA: softmax and log_softmax over the last axis
(forward and backward) and softmax cross-entropy (per-sample losses forward,
logits gradient backward), one thread block per row, where the reference
(reference/loss.py run on CuPy) makes six to a dozen array operations.

The formulas are the reference's. Each row is reduced in double in a fixed
order (its maximum, then the sums), and every result is computed in double
and rounded once to the logits' dtype, as the CPU's compiled kernels do
(_core/loss.pyx); float32 results below 2**-126 become zero, as in all of
CuPy's kernels (compiled with -ftz=true). softmax over another axis, arrays that are not
C-contiguous, and inputs of other types go to the reference; cross-entropy
takes the reference's shape and target checks first, so its errors are the
reference's.
"""
import functools

import numpy as np

from .cuda import fusable
from .reference import loss as _ref

_OPTIONS = ("--fmad=false",)
_MAX_THREADS = 256  # per block: one block per row, threads striding over its columns

_SOURCE = r"""
#define MG_FULL_MASK 0xffffffffu
#define MG_NEG_INF (-__longlong_as_double(0x7ff0000000000000LL))

/* max that keeps a NaN from either side, as numpy's max does */
__device__ __forceinline__ double mg_max_nan(double a, double b) {
    return (a > b || a != a) ? a : b;
}

/* The maximum (is_max) or the sum of v over the block, returned to every
   thread, in a fixed order. blockDim.x is a multiple of 32, at most 1024;
   buf holds 32 doubles of shared memory. */
__device__ double mg_block_reduce(double v, bool is_max, double* buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1) {
        double other = __shfl_down_sync(MG_FULL_MASK, v, offset);
        v = is_max ? mg_max_nan(v, other) : v + other;
    }
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x >> 5;
        v = lane < warps ? buf[lane] : (is_max ? buf[0] : 0.0);
        for (int offset = 16; offset > 0; offset >>= 1) {
            double other = __shfl_down_sync(MG_FULL_MASK, v, offset);
            v = is_max ? mg_max_nan(v, other) : v + other;
        }
        if (lane == 0) buf[0] = v;
    }
    __syncthreads();
    v = buf[0];
    __syncthreads();  /* buf is free for the next reduction */
    return v;
}

/* The maximum of a row of n, in double */
template <typename T>
__device__ double mg_row_max(const T* z, long long n, double* buf) {
    double m = MG_NEG_INF;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) m = mg_max_nan(m, (double)z[j]);
    return mg_block_reduce(m, true, buf);
}

/* y = (z - m) - log(s) (log_out) or exp(z - m) / s, m = max z, s = sum exp(z - m) */
template <typename T>
__global__ void minigrad_softmax_forward(const T* __restrict__ z, T* __restrict__ y,
                                         long long n, int log_out) {
    __shared__ double buf[32];
    z += (long long)blockIdx.x * n;
    y += (long long)blockIdx.x * n;
    const double m = mg_row_max(z, n, buf);
    double s = 0.0;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) s += exp((double)z[j] - m);
    s = mg_block_reduce(s, false, buf);
    if (log_out) {
        const double log_s = log(s);
        for (long long j = threadIdx.x; j < n; j += blockDim.x)
            y[j] = (T)(((double)z[j] - m) - log_s);
    } else {
        for (long long j = threadIdx.x; j < n; j += blockDim.x)
            y[j] = (T)(exp((double)z[j] - m) / s);
    }
}

/* dx = g - exp(y) sum(g) (log_out), or y (g - sum(g y)) */
template <typename T>
__global__ void minigrad_softmax_backward(const T* __restrict__ y, const T* __restrict__ g,
                                          T* __restrict__ dx, long long n, int log_out) {
    __shared__ double buf[32];
    const long long row = (long long)blockIdx.x * n;
    y += row;
    g += row;
    dx += row;
    double s = 0.0;
    for (long long j = threadIdx.x; j < n; j += blockDim.x)
        s += log_out ? (double)g[j] : (double)g[j] * (double)y[j];
    s = mg_block_reduce(s, false, buf);
    for (long long j = threadIdx.x; j < n; j += blockDim.x) {
        dx[j] = log_out ? (T)((double)g[j] - exp((double)y[j]) * s)
                        : (T)((double)y[j] * ((double)g[j] - s));
    }
}

/* Row i: lse = m + log(s), m = max z, s = sum exp(z - m);
   loss = (1 - eps) w_t (log(s) - (z_t - m)) + (eps / n) (W log(s) - sum_c w_c (z_c - m)),
   W = sum_c w_c, w all ones unless weighted; loss = 0 where the row is not valid. */
template <typename T>
__global__ void minigrad_ce_forward(const T* __restrict__ z, const long long* __restrict__ target,
                                    const bool* __restrict__ valid, const T* __restrict__ weight,
                                    int weighted, long long n, double eps,
                                    T* __restrict__ losses, T* __restrict__ lse) {
    __shared__ double buf[32];
    const long long i = blockIdx.x;
    z += i * n;
    const double m = mg_row_max(z, n, buf);
    double s = 0.0, w_sum = 0.0, wz = 0.0;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) {
        const double d = (double)z[j] - m;
        s += exp(d);
        if (eps != 0.0) {
            const double w = weighted ? (double)weight[j] : 1.0;
            w_sum += w;
            wz += w * d;
        }
    }
    s = mg_block_reduce(s, false, buf);
    if (eps != 0.0) {
        w_sum = mg_block_reduce(w_sum, false, buf);
        wz = mg_block_reduce(wz, false, buf);
    }
    if (threadIdx.x == 0) {
        const double log_s = log(s);
        lse[i] = (T)(m + log_s);
        double loss = 0.0;
        if (valid[i]) {
            const long long t = target[i];
            const double w_t = weighted ? (double)weight[t] : 1.0;
            loss = ((1.0 - eps) * w_t) * (log_s - ((double)z[t] - m));
            if (eps != 0.0) loss += (eps / (double)n) * (w_sum * log_s - wz);
        }
        losses[i] = (T)loss;
    }
}

/* Row i, g = dlosses[i]: dz_c = exp(z_c - lse) p - [c == t] hit - (eps / n) g w_c,
   hit = (1 - eps) w_t g, p = hit + (eps / n) g W; zeros where the row is not valid. */
template <typename T>
__global__ void minigrad_ce_backward(const T* __restrict__ z, const long long* __restrict__ target,
                                     const bool* __restrict__ valid, const T* __restrict__ weight,
                                     int weighted, long long n, double eps,
                                     const T* __restrict__ lse, const T* __restrict__ dlosses,
                                     T* __restrict__ dz) {
    __shared__ double buf[32];
    const long long i = blockIdx.x;
    z += i * n;
    dz += i * n;
    if (!valid[i]) {  /* the same for the whole block */
        for (long long j = threadIdx.x; j < n; j += blockDim.x) dz[j] = (T)0;
        return;
    }
    double w_sum = (double)n;
    if (eps != 0.0 && weighted) {
        w_sum = 0.0;
        for (long long j = threadIdx.x; j < n; j += blockDim.x) w_sum += (double)weight[j];
        w_sum = mg_block_reduce(w_sum, false, buf);
    }
    const long long t = target[i];
    const double g = (double)dlosses[i], shift = (double)lse[i];
    const double hit = ((1.0 - eps) * (weighted ? (double)weight[t] : 1.0)) * g;
    const double smooth = (eps / (double)n) * g;
    const double p = hit + smooth * w_sum;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) {
        double d = exp((double)z[j] - shift) * p;
        if (j == t) d -= hit;
        dz[j] = (T)(d - smooth * (weighted ? (double)weight[j] : 1.0));
    }
}
"""

_KERNELS = ("minigrad_softmax_forward", "minigrad_softmax_backward",
            "minigrad_ce_forward", "minigrad_ce_backward")
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _expression(kernel, dtype):
    return f"{kernel}<{_CTYPES[np.dtype(dtype)]}>"


@functools.lru_cache(maxsize=None)
def _kernels(cupy):
    """(kernel name, dtype) -> the template kernel instantiated for that dtype."""
    names = [_expression(k, d) for k in _KERNELS for d in _CTYPES]
    module = cupy.RawModule(code=_SOURCE, options=_OPTIONS, name_expressions=names)
    return {(k, d): module.get_function(_expression(k, d)) for k in _KERNELS for d in _CTYPES}


@functools.lru_cache(maxsize=None)
def _target_check(cupy):
    """One pass over the targets: which rows count, and which are neither a
    class nor ignore_index (the reference's check_targets takes six)."""
    return cupy.ElementwiseKernel(
        "I t, int64 ignore, int64 classes", "bool valid, bool bad",
        "valid = t != ignore; bad = valid && (t < 0 || t >= classes);",
        "minigrad_ce_targets")


def block_threads(width):
    """Threads per row's block: a multiple of 32 (the reductions need whole
    warps), no more than the row has columns past one warp, at most _MAX_THREADS."""
    threads = 32
    while threads < width and threads < _MAX_THREADS:
        threads *= 2
    return threads


def softmax_rows(cupy, dim, *arrays):
    """(rows, width) when the fused softmax kernels take these arrays: dim is
    the last axis, they are C-contiguous CuPy arrays of one float dtype and
    shape, and not empty; else None (the reference runs)."""
    first = arrays[0]
    if not fusable(cupy, *arrays) or first.ndim == 0 or first.size == 0:
        return None
    if dim not in (first.ndim - 1, -1) or isinstance(dim, bool):
        return None
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    width = first.shape[-1]
    return first.size // width, width


def cross_entropy_fusable(cupy, logits, target, weight):
    """Whether the fused cross-entropy takes these inputs: float logits (N, C)
    with N, C > 0, integer targets, weight None or of the logits' dtype, all
    CuPy arrays. Shapes are checked afterwards by the reference's check."""
    if not (fusable(cupy, logits) and isinstance(target, cupy.ndarray)
            and target.dtype.kind in "iu"):
        return False
    if weight is not None and not (isinstance(weight, cupy.ndarray)
                                   and weight.dtype == logits.dtype):
        return False
    return logits.ndim == 2 and logits.shape[0] > 0 and logits.shape[1] > 0


def install(backend, cupy):
    """Puts the fused softmax and cross-entropy kernels in place of the reference ones."""
    kernels = functools.partial(_kernels, cupy)

    def launch(name, dtype, rows, width, args):
        kernels()[name, np.dtype(dtype)]((rows,), (block_threads(width),), args)

    def softmax_forward(x, dim, log):
        shape = softmax_rows(cupy, dim, x)
        if shape is None:
            return _ref.softmax_forward(cupy, x, dim, log)
        y = cupy.empty_like(x)
        launch("minigrad_softmax_forward", x.dtype, *shape,
               (x, y, np.int64(shape[1]), np.int32(bool(log))))
        return y

    def softmax_backward(y, g, dim, log):
        if isinstance(g, cupy.ndarray) and g.shape == y.shape and g.dtype == y.dtype:
            g = cupy.ascontiguousarray(g)  # a broadcast gradient, say: one copy, then fused
        shape = softmax_rows(cupy, dim, y, g)
        if shape is None:
            return _ref.softmax_backward(cupy, y, g, dim, log)
        dx = cupy.empty_like(y)
        launch("minigrad_softmax_backward", y.dtype, *shape,
               (y, g, dx, np.int64(shape[1]), np.int32(bool(log))))
        return dx

    def prepared(logits, target, weight, ignore_index):
        """The reference's checks, then the kernels' operands: contiguous
        logits, int64 targets, the valid-row mask, and the weight operand
        (the logits, never read, when weight is None)."""
        _ref.check_shapes(logits, target, weight)
        z = cupy.ascontiguousarray(logits)
        if -2**63 <= ignore_index < 2**63:
            valid, bad = _target_check(cupy)(target, np.int64(ignore_index), np.int64(z.shape[1]))
            if bool(bad.any()):  # the reference's check names the first bad target
                _ref.check_targets(cupy, target, z.shape[1], ignore_index)
        else:
            valid = cupy.ascontiguousarray(
                _ref.check_targets(cupy, target, z.shape[1], ignore_index), dtype=cupy.bool_)
        t = cupy.ascontiguousarray(target, dtype=cupy.int64)
        w = z if weight is None else cupy.ascontiguousarray(weight)
        return z, t, valid, w, np.int32(weight is not None)

    def per_row(a, n, dtype):
        """a (a scalar, (1,) or (n,)) as a contiguous (n,) array of dtype."""
        return cupy.ascontiguousarray(cupy.broadcast_to(cupy.asarray(a, dtype=dtype), (n,)))

    def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
        if not cross_entropy_fusable(cupy, logits, target, weight):
            return _ref.cross_entropy_forward(cupy, logits, target, weight, ignore_index,
                                              label_smoothing)
        z, t, valid, w, weighted = prepared(logits, target, weight, ignore_index)
        n, c = z.shape
        losses = cupy.empty(n, z.dtype)
        lse = cupy.empty(n, z.dtype)
        launch("minigrad_ce_forward", z.dtype, n, c,
               (z, t, valid, w, weighted, np.int64(c), np.float64(label_smoothing), losses, lse))
        return losses, lse

    def cross_entropy_backward(logits, target, weight, ignore_index, label_smoothing, lse,
                               dlosses):
        if not cross_entropy_fusable(cupy, logits, target, weight):
            return _ref.cross_entropy_backward(cupy, logits, target, weight, ignore_index,
                                               label_smoothing, lse, dlosses)
        z, t, valid, w, weighted = prepared(logits, target, weight, ignore_index)
        n, c = z.shape
        dz = cupy.empty_like(z)
        launch("minigrad_ce_backward", z.dtype, n, c,
               (z, t, valid, w, weighted, np.int64(c), np.float64(label_smoothing),
                per_row(lse, n, z.dtype), per_row(dlosses, n, z.dtype), dz))
        return dz

    for name, fused in (("softmax_forward", softmax_forward),
                        ("softmax_backward", softmax_backward),
                        ("cross_entropy_forward", cross_entropy_forward),
                        ("cross_entropy_backward", cross_entropy_backward)):
        setattr(backend, name, fused)
        backend.compiled[name] = fused
