"""Compiled row kernels over logits: softmax/log_softmax and softmax
cross-entropy, one pass per row forward, one backward.

Same names, arguments and results as minigrad.backend.reference.loss (without
`xp`); the formulas are documented there. Cross-entropy rows are reduced
in double: the maximum, then sum_c exp(z_c - max) and sum_c w_c (z_c - max)
in a single sweep over a row that stays in cache. softmax/log_softmax rows of
float32 take exp in float (exp(z - max) of the exact difference) and add it
up in double; the results are within 3 ulp of float32 (log_softmax also
within C * 2^-53 absolute, the resolution of the double sum), the backward
passes within 3 ulp of the size of their terms (tests/test_kernels_loss.py).
exp is the branch-free polynomial of vecmath.h (shared with activation.pyx)
so that the row loops vectorize; on x86-64 with GCC they are compiled for
AVX-512, AVX2 and baseline and the best one the CPU has is picked at load
time. Rows are shared among OpenMP threads when the logits are large.
"""
import numpy
cimport numpy as cnp

from cython.parallel cimport prange
from libc.stdint cimport int64_t

from minigrad._core.arrays cimport data_of as _data, empty_like_c, empty_vector

from minigrad.backend.reference import loss as _ref

cnp.import_array()

cdef extern from *:
    """
    #include "vecmath.h"

    /* exp limits, set when the module loads: bounds the compiler cannot see
       keep it from turning the clamps into branches it cannot vectorize */
    typedef struct { double exp_lo, exp_hi; float exp_lo_f32, exp_hi_f32; } mg_ce_consts;
    static mg_ce_consts mg_ce_c;

    MG_INLINE double mg_ce_exp(double x, const mg_ce_consts *c) {
        return mg_exp_clamped(x, c->exp_lo, c->exp_hi);
    }

    /* One row of n logits z with target t (t < 0: ignored row), weights w
       summing to w_sum, label smoothing eps: writes the loss and lse. */
    #define MG_CE_FORWARD(SUFFIX, T) \\
    MG_CLONES static void mg_ce_forward_##SUFFIX(const T *restrict z, Py_ssize_t n, \\
            const T *restrict w, double w_sum, int64_t t, double eps, T *loss, T *lse) { \\
        const mg_ce_consts cc = mg_ce_c, *c = &cc; \\
        double m = z[0], s = 0.0, wz = 0.0; \\
        _Pragma("omp simd reduction(max: m)") \\
        for (Py_ssize_t j = 1; j < n; j++) m = z[j] > m ? z[j] : m; \\
        _Pragma("omp simd reduction(+: s, wz)") \\
        for (Py_ssize_t j = 0; j < n; j++) { \\
            double d = (double)z[j] - m; \\
            s += mg_ce_exp(d, c); \\
            wz += (double)w[j] * d; \\
        } \\
        double log_s = log(s); \\
        *lse = (T)(m + log_s); \\
        /* sum_c w_c * (-logp_c) = w_sum * log_s - sum_c w_c (z_c - m) */ \\
        *loss = t < 0 ? (T)0 : (T)((1.0 - eps) * w[t] * (log_s - ((double)z[t] - m)) \\
                                   + (eps / n) * (w_sum * log_s - wz)); \\
    }

    /* Gradient of g * loss for one row, given its lse */
    #define MG_CE_BACKWARD(SUFFIX, T) \\
    MG_CLONES static void mg_ce_backward_##SUFFIX(const T *restrict z, Py_ssize_t n, \\
            const T *restrict w, double w_sum, int64_t t, double eps, double lse, double g, \\
            T *restrict dz) { \\
        const mg_ce_consts cc = mg_ce_c, *c = &cc; \\
        if (t < 0) { \\
            for (Py_ssize_t j = 0; j < n; j++) dz[j] = 0; \\
            return; \\
        } \\
        double hit = (1.0 - eps) * w[t] * g, smooth = (eps / n) * g; \\
        double p_scale = hit + smooth * w_sum; \\
        for (Py_ssize_t j = 0; j < n; j++) \\
            dz[j] = (T)(mg_ce_exp((double)z[j] - lse, c) * p_scale - smooth * w[j]); \\
        dz[t] = (T)(mg_ce_exp((double)z[t] - lse, c) * p_scale - smooth * w[t] - hit); \\
    }

    /* exp(x) in T */
    MG_INLINE double mg_exp_of_f64(double x, const mg_ce_consts *c) { return mg_ce_exp(x, c); }
    MG_INLINE float mg_exp_of_f32(float x, const mg_ce_consts *c) {
        return mg_exp_clamped_f32(x, c->exp_lo_f32, c->exp_hi_f32);
    }

    /* exp(z - m) for the row maximum m >= z, accurate to the last bits of
       z - m. float: z - m = d + d_lo exactly (two-sum); the rounded d alone
       would cost up to |z - m| 2^-24 relative. d_lo is 0 where z - m is not
       finite (its two-sum is NaN there). double: the difference rounds at
       2^-53 relative, which is as good. */
    MG_INLINE double mg_exp_diff_f64(double z, double m, const mg_ce_consts *c) {
        return mg_ce_exp(z - m, c);
    }
    MG_INLINE float mg_exp_diff_f32(float z, float m, const mg_ce_consts *c) {
        float d = z - m, zz = d + m, mm = d - zz;
        float d_lo = (z - zz) - (m + mm);
        d_lo = d > c->exp_lo_f32 ? d_lo : 0.0f;
        return mg_exp_split_f32(d, d_lo, c->exp_lo_f32, c->exp_hi_f32);
    }

    /* softmax (log = 0) or log_softmax (log = 1) of one row: max, then the
       sum of exp(z - max) in T (8 float lanes with AVX2), added up in
       double, then the outputs: (z - max) - log(sum), or exp(z - max) / sum.
       Both passes need the exact z - max: log_softmax of the largest logit
       is -log(sum), about -(sum - 1) when the others are far below, so it is
       only as accurate, relatively, as their exps. */
    #define MG_SOFTMAX(SUFFIX, T) \\
    MG_CLONES static void mg_softmax_forward_##SUFFIX(const T *restrict z, Py_ssize_t n, \\
            int log_out, T *restrict y) { \\
        const mg_ce_consts cc = mg_ce_c, *c = &cc; \\
        T m = z[0]; \\
        double s = 0.0; \\
        _Pragma("omp simd reduction(max: m)") \\
        for (Py_ssize_t j = 1; j < n; j++) m = z[j] > m ? z[j] : m; \\
        _Pragma("omp simd reduction(+: s)") \\
        for (Py_ssize_t j = 0; j < n; j++) s += (double)mg_exp_diff_##SUFFIX(z[j], m, c); \\
        if (log_out) { \\
            const T log_s = (T)log(s); \\
            for (Py_ssize_t j = 0; j < n; j++) y[j] = (z[j] - m) - log_s; \\
        } else { \\
            const T inv_s = (T)(1.0 / s); \\
            for (Py_ssize_t j = 0; j < n; j++) y[j] = mg_exp_diff_##SUFFIX(z[j], m, c) * inv_s; \\
        } \\
    } \\
    /* dx of one row from the output y and its gradient g */ \\
    MG_CLONES static void mg_softmax_backward_##SUFFIX(const T *restrict y, const T *restrict g, \\
            Py_ssize_t n, int log_out, T *restrict dx) { \\
        const mg_ce_consts cc = mg_ce_c, *c = &cc; \\
        double s = 0.0; \\
        if (log_out) { \\
            _Pragma("omp simd reduction(+: s)") \\
            for (Py_ssize_t j = 0; j < n; j++) s += g[j]; \\
            const T s_t = (T)s; \\
            for (Py_ssize_t j = 0; j < n; j++) \\
                dx[j] = g[j] - mg_exp_of_##SUFFIX(y[j], c) * s_t; \\
        } else { \\
            _Pragma("omp simd reduction(+: s)") \\
            for (Py_ssize_t j = 0; j < n; j++) s += (double)g[j] * y[j]; \\
            for (Py_ssize_t j = 0; j < n; j++) dx[j] = (T)((double)y[j] * ((double)g[j] - s)); \\
        } \\
    }

    MG_SOFTMAX(f64, double)
    MG_SOFTMAX(f32, float)
    MG_CE_FORWARD(f64, double)
    MG_CE_FORWARD(f32, float)
    MG_CE_BACKWARD(f64, double)
    MG_CE_BACKWARD(f32, float)
    """
    ctypedef struct mg_ce_consts:
        double exp_lo, exp_hi
        float exp_lo_f32, exp_hi_f32
    mg_ce_consts mg_ce_c
    void mg_ce_forward_f64(const double* z, Py_ssize_t n, const double* w, double w_sum,
                           int64_t t, double eps, double* loss, double* lse) noexcept nogil
    void mg_ce_forward_f32(const float* z, Py_ssize_t n, const float* w, double w_sum,
                           int64_t t, double eps, float* loss, float* lse) noexcept nogil
    void mg_ce_backward_f64(const double* z, Py_ssize_t n, const double* w, double w_sum,
                            int64_t t, double eps, double lse, double g,
                            double* dz) noexcept nogil
    void mg_ce_backward_f32(const float* z, Py_ssize_t n, const float* w, double w_sum,
                            int64_t t, double eps, double lse, double g,
                            float* dz) noexcept nogil
    void mg_softmax_forward_f32(const float* z, Py_ssize_t n, int log_out, float* y) noexcept nogil
    void mg_softmax_forward_f64(const double* z, Py_ssize_t n, int log_out, double* y) noexcept nogil
    void mg_softmax_backward_f32(const float* y, const float* g, Py_ssize_t n, int log_out,
                                 float* dx) noexcept nogil
    void mg_softmax_backward_f64(const double* y, const double* g, Py_ssize_t n, int log_out,
                                 double* dx) noexcept nogil

mg_ce_c.exp_lo = -746.0  # exp(-746) < 2**-1075 rounds to 0
mg_ce_c.exp_hi = 710.0   # exp(710) > max double
mg_ce_c.exp_lo_f32 = -104.0  # exp(-104) < 2**-150 rounds to 0 in float
mg_ce_c.exp_hi_f32 = 89.0    # exp(89) > max float

ctypedef fused floating:
    float
    double

# Logits per chunk of rows handed to a thread, and the size below which
# threads cost more than they save.
cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN

cdef Py_ssize_t CHUNK = 1 << 14
cdef Py_ssize_t PARALLEL_MIN = MG_PARALLEL_MIN  # see parallel.h


# ------------------------------------------------------------- row loops

cdef void _forward_block(const floating* z, Py_ssize_t c, const int64_t* t, const floating* w,
                         double w_sum, double eps, floating* losses, floating* lse,
                         Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(r0, r1):
        if floating is float:
            mg_ce_forward_f32(z + i * c, c, w, w_sum, t[i], eps, losses + i, lse + i)
        else:
            mg_ce_forward_f64(z + i * c, c, w, w_sum, t[i], eps, losses + i, lse + i)


cdef void _backward_block(const floating* z, Py_ssize_t c, const int64_t* t, const floating* w,
                          double w_sum, double eps, const floating* lse, const floating* g,
                          floating* dz, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(r0, r1):
        if floating is float:
            mg_ce_backward_f32(z + i * c, c, w, w_sum, t[i], eps, lse[i], g[i], dz + i * c)
        else:
            mg_ce_backward_f64(z + i * c, c, w, w_sum, t[i], eps, lse[i], g[i], dz + i * c)


cdef inline Py_ssize_t _rows_per_chunk(Py_ssize_t c) noexcept nogil:
    return max(1, CHUNK // max(1, c))


# The runs below take raw pointers of C-contiguous arrays of one float dtype
# (the callers make them so): a fused `def` with typed memoryviews spent
# microseconds per call choosing its specialization and acquiring the views,
# more than the work on a small batch.



cdef inline bint _single(a):
    return cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32


cdef void _forward_run(const floating* z, Py_ssize_t n, Py_ssize_t c, const int64_t* t,
                       const floating* w, double w_sum, double eps, floating* losses,
                       floating* lse) noexcept nogil:
    cdef Py_ssize_t k, step = _rows_per_chunk(c)
    if n * c < PARALLEL_MIN:
        _forward_block(z, c, t, w, w_sum, eps, losses, lse, 0, n)
    else:
        for k in prange(0, n, step, schedule="dynamic"):
            _forward_block(z, c, t, w, w_sum, eps, losses, lse, k, min(k + step, n))


cdef void _backward_run(const floating* z, Py_ssize_t n, Py_ssize_t c, const int64_t* t,
                        const floating* w, double w_sum, double eps, const floating* lse,
                        const floating* g, floating* dz) noexcept nogil:
    cdef Py_ssize_t k, step = _rows_per_chunk(c)
    if n * c < PARALLEL_MIN:
        _backward_block(z, c, t, w, w_sum, eps, lse, g, dz, 0, n)
    else:
        for k in prange(0, n, step, schedule="dynamic"):
            _backward_block(z, c, t, w, w_sum, eps, lse, g, dz, k, min(k + step, n))


cdef void _ce_run(z, t, w, double w_sum, double eps, a, b, dz, bint backward):
    """z (n, c), t (n,) int64, w (c,), all C-contiguous of z's dtype (t int64).
    Forward: writes losses a and lse b (n,). Backward: reads lse a and the
    row gradients b (n,), writes dz (n, c)."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>z, 0), c = cnp.PyArray_DIM(<cnp.ndarray>z, 1)
    cdef bint single = _single(z)
    cdef void *pz = _data(z)
    cdef void *pw = _data(w)
    cdef void *pa = _data(a)
    cdef void *pb = _data(b)
    cdef void *pd = _data(dz) if backward else NULL
    cdef const int64_t* pt = <const int64_t*>_data(t)
    if n == 0:
        return
    with nogil:
        if backward and single:
            _backward_run(<const float*>pz, n, c, pt, <const float*>pw, w_sum, eps,
                          <const float*>pa, <const float*>pb, <float*>pd)
        elif backward:
            _backward_run(<const double*>pz, n, c, pt, <const double*>pw, w_sum, eps,
                          <const double*>pa, <const double*>pb, <double*>pd)
        elif single:
            _forward_run(<const float*>pz, n, c, pt, <const float*>pw, w_sum, eps,
                         <float*>pa, <float*>pb)
        else:
            _forward_run(<const double*>pz, n, c, pt, <const double*>pw, w_sum, eps,
                         <double*>pa, <double*>pb)


cdef void _softmax_rows(const floating* a, const floating* b, floating* out, Py_ssize_t c,
                        bint log_out, bint backward, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Rows r0..r1-1: forward from logits a, or backward from output a and gradient b."""
    cdef Py_ssize_t i
    for i in range(r0, r1):
        if backward:
            if floating is float:
                mg_softmax_backward_f32(a + i * c, b + i * c, c, log_out, out + i * c)
            else:
                mg_softmax_backward_f64(a + i * c, b + i * c, c, log_out, out + i * c)
        elif floating is float:
            mg_softmax_forward_f32(a + i * c, c, log_out, out + i * c)
        else:
            mg_softmax_forward_f64(a + i * c, c, log_out, out + i * c)


cdef void _softmax_all(const floating* a, const floating* b, floating* out, Py_ssize_t n,
                       Py_ssize_t c, bint log_out, bint backward) noexcept nogil:
    cdef Py_ssize_t k, step = _rows_per_chunk(c)
    if n * c < PARALLEL_MIN:
        _softmax_rows(a, b, out, c, log_out, backward, 0, n)
    else:
        for k in prange(0, n, step, schedule="dynamic"):
            _softmax_rows(a, b, out, c, log_out, backward, k, min(k + step, n))


cdef void _softmax_run(a, b, out, bint log_out, bint backward):
    """a, b and out (n, c), C-contiguous, one float dtype; n * c > 0."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>a, 0), c = cnp.PyArray_DIM(<cnp.ndarray>a, 1)
    cdef bint single = _single(a)
    cdef void *pa = _data(a)
    cdef void *pb = _data(b)
    cdef void *po = _data(out)
    with nogil:
        if single:
            _softmax_all(<const float*>pa, <const float*>pb, <float*>po, n, c, log_out, backward)
        else:
            _softmax_all(<const double*>pa, <const double*>pb, <double*>po, n, c, log_out,
                         backward)


def _softmax_rows_of(dim, *arrays):
    """The arrays as (M, C) rows when dim is the last axis, they are C-contiguous
    float32/float64 of one dtype and not empty; else None (the reference runs)."""
    first = arrays[0]
    if not isinstance(first, numpy.ndarray) or first.ndim == 0 or first.size == 0:
        return None
    last = first.ndim - 1
    if first.dtype != numpy.float32 and first.dtype != numpy.float64:
        return None
    if dim != last and dim != -1:
        return None
    for a in arrays:
        if not isinstance(a, numpy.ndarray) or a.dtype != first.dtype or not a.flags.c_contiguous:
            return None
    width = first.shape[last]
    return [a.reshape(a.size // width, width) for a in arrays]


def losses_sum(losses):
    """See minigrad.backend.reference.loss.losses_sum. Summed in double and
    rounded once: a C loop, where numpy's reduction machinery cost several
    microseconds for a batch of losses (more right after a large product)."""
    cdef Py_ssize_t i, n
    cdef double acc = 0.0
    cdef int t
    if (not isinstance(losses, numpy.ndarray) or cnp.PyArray_NDIM(<cnp.ndarray>losses) != 1
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>losses)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>losses)):
        return _ref.losses_sum(numpy, losses)
    t = cnp.PyArray_TYPE(<cnp.ndarray>losses)
    n = cnp.PyArray_DIM(<cnp.ndarray>losses, 0)
    if t == cnp.NPY_FLOAT32:
        for i in range(n):
            acc += (<const float*>_data(losses))[i]
    elif t == cnp.NPY_FLOAT64:
        for i in range(n):
            acc += (<const double*>_data(losses))[i]
    else:
        return _ref.losses_sum(numpy, losses)
    out = cnp.PyArray_EMPTY(0, NULL, t, 0)
    if t == cnp.NPY_FLOAT32:
        (<float*>_data(out))[0] = <float>acc
    else:
        (<double*>_data(out))[0] = acc
    return out


def softmax_forward(x, dim, log):
    """See minigrad.backend.reference.loss.softmax_forward."""
    rows = _softmax_rows_of(dim, x)
    if rows is None:
        return _ref.softmax_forward(numpy, x, dim, log)
    y = numpy.empty_like(x)
    _softmax_run(rows[0], rows[0], y.reshape(rows[0].shape), bool(log), False)
    return y


def softmax_backward(y, g, dim, log):
    """See minigrad.backend.reference.loss.softmax_backward. A gradient g
    that is not C-contiguous (the broadcast gradient of a sum, say) is copied
    once and takes the compiled rows, as y would."""
    if (isinstance(g, numpy.ndarray) and isinstance(y, numpy.ndarray) and g.dtype == y.dtype
            and g.shape == y.shape and not g.flags.c_contiguous):
        g = numpy.ascontiguousarray(g)
    rows = _softmax_rows_of(dim, y, g)
    if rows is None or y.shape != g.shape:
        return _ref.softmax_backward(numpy, y, g, dim, log)
    dx = numpy.empty_like(y)
    _softmax_run(rows[0], rows[1], dx.reshape(rows[0].shape), bool(log), True)
    return dx


# ------------------------------------------------------------ Python API

_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1

cdef bint _compilable(logits, target, weight):
    """numpy inputs of the compiled dtypes, with shapes the kernels accept
    (type numbers, not dtype objects: this runs twice per training step)."""
    if not isinstance(logits, numpy.ndarray) or not isinstance(target, numpy.ndarray):
        return False
    cdef cnp.ndarray z = logits, t = target
    if cnp.PyArray_TYPE(z) != cnp.NPY_FLOAT32 and cnp.PyArray_TYPE(z) != cnp.NPY_FLOAT64:
        return False
    if not cnp.PyArray_ISINTEGER(t) or (cnp.PyArray_ISUNSIGNED(t) and cnp.PyArray_ITEMSIZE(t) >= 8):
        return False
    if weight is not None and (not isinstance(weight, numpy.ndarray)
                               or not cnp.PyArray_ISFLOAT(<cnp.ndarray>weight)):
        return False
    return cnp.PyArray_NDIM(z) == 2 and cnp.PyArray_DIM(z, 1) > 0


cdef void _check_shapes(logits, target, weight) except *:
    """The reference's shape checks (its errors), skipped when they pass."""
    cdef cnp.ndarray z = logits, t = target
    if (cnp.PyArray_NDIM(t) == 1 and cnp.PyArray_DIM(t, 0) == cnp.PyArray_DIM(z, 0)
            and (weight is None or (cnp.PyArray_NDIM(<cnp.ndarray>weight) == 1
                                    and cnp.PyArray_DIM(<cnp.ndarray>weight, 0)
                                    == cnp.PyArray_DIM(z, 1)))):
        return
    _ref.check_shapes(logits, target, weight)


cdef object _row_targets(target, Py_ssize_t c, ignore_index):
    """Targets as int64 with ignored rows set to -1; raises the reference's
    error for the first target that is neither a class nor ignore_index."""
    src = target
    if (cnp.PyArray_TYPE(<cnp.ndarray>target) != cnp.NPY_INT64
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>target)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>target)):
        src = numpy.ascontiguousarray(target, dtype=numpy.int64)
    out = empty_vector(cnp.PyArray_DIM(<cnp.ndarray>src, 0), cnp.NPY_INT64)
    cdef const int64_t* tv = <const int64_t*>_data(src)
    cdef int64_t* ov = <int64_t*>_data(out)
    cdef Py_ssize_t i, n = cnp.PyArray_DIM(<cnp.ndarray>src, 0)
    cdef int64_t v, ignore = 0
    cdef bint can_ignore = _INT64_MIN <= ignore_index <= _INT64_MAX
    if can_ignore:
        ignore = ignore_index
    for i in range(n):
        v = tv[i]
        if can_ignore and v == ignore:
            ov[i] = -1
        elif 0 <= v < c:
            ov[i] = v
        else:
            raise _ref.target_out_of_bounds(int(v), c)
    return out


_UNIT_WEIGHTS = {}  # (C, dtype) -> read-only ones: no per-call allocation for the usual case


cdef tuple _weights(weight, Py_ssize_t c, dtype):
    """Per-class weights as a contiguous array of the logits' dtype (ones
    when weight is None), and their sum."""
    if weight is None:
        key = (c, dtype)
        w = _UNIT_WEIGHTS.get(key)
        if w is None:
            w = numpy.ones(c, dtype=dtype)
            w.setflags(write=False)
            _UNIT_WEIGHTS[key] = w
        return w, float(c)
    w = numpy.ascontiguousarray(weight, dtype=dtype)
    return w, float(w.sum(dtype=numpy.float64))


cdef inline object _c_contiguous(a):
    return a if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) else numpy.ascontiguousarray(a)


cdef object _per_row(a, Py_ssize_t n, dtype):
    """a (a scalar, (1,) or (n,)) as a contiguous (n,) array of dtype."""
    if isinstance(a, numpy.ndarray) and a.shape == (n,) and a.dtype == dtype and a.flags.c_contiguous:
        return a
    return numpy.ascontiguousarray(numpy.broadcast_to(a, (n,)), dtype=dtype)


def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """logits (N, C) float, target (N,) int, weight (C,) or None.

    Returns (losses, lse): per-sample losses (N,) and the log-sum-exp of each
    row (N,), both in logits' dtype; lse is what the backward pass needs.
    """
    if not _compilable(logits, target, weight):
        return _ref.cross_entropy_forward(numpy, logits, target, weight, ignore_index,
                                          label_smoothing)
    _check_shapes(logits, target, weight)
    z = _c_contiguous(logits)
    n, c = z.shape
    t = _row_targets(target, c, ignore_index)
    w, w_sum = _weights(weight, c, z.dtype)
    losses = empty_vector(n, cnp.PyArray_TYPE(<cnp.ndarray>z))
    lse = empty_vector(n, cnp.PyArray_TYPE(<cnp.ndarray>z))
    _ce_run(z, t, w, w_sum, float(label_smoothing), losses, lse, None, False)
    return losses, lse


def cross_entropy_backward(logits, target, weight, ignore_index, label_smoothing, lse, dlosses):
    """Gradient of sum_i dlosses[i] * losses[i] with respect to logits (N, C).

    lse is the (N,) log-sum-exp returned by cross_entropy_forward.
    """
    if not _compilable(logits, target, weight):
        return _ref.cross_entropy_backward(numpy, logits, target, weight, ignore_index,
                                           label_smoothing, lse, dlosses)
    _check_shapes(logits, target, weight)
    z = _c_contiguous(logits)
    n, c = z.shape
    t = _row_targets(target, c, ignore_index)
    w, w_sum = _weights(weight, c, z.dtype)
    lse = _per_row(lse, n, z.dtype)
    g = _per_row(dlosses, n, z.dtype)
    dz = empty_like_c(z)
    _ce_run(z, t, w, w_sum, float(label_smoothing), lse, g, dz, True)
    return dz
