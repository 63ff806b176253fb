"""Compiled normalization kernels: the fused core behind every norm layer.

Same functions, arguments and results as minigrad/backend/reference/norm.py
(without `xp`); the layouts and formulas are documented there. float32 and
float64 inputs run here; anything else falls back to the reference.

Accuracy: batch-norm sums run in float64; group-norm rows (the C functions
mg_gn_*) sum in lanes of the input's type over short blocks (a few terms per
lane), each block added in float64. The forward statistics take one pass
over the data, summing x - shift and (x - shift)^2 with the shift set to the
first element of each reduction set: being one of the data, the shift lies
a few std from the mean, so the variance does not cancel even when the mean
is large against the std. Outputs are computed from x - shift (exact for
nearby values) minus mean - shift, so a large mean is never rounded into
them: batch norm in float64 rounded once, group norm in the input's type.

Memory traffic: forward reads x twice and writes y once per reduction set,
backward reads (dy, x) twice and writes dx once; batch norm works block by
block of channels and group norm row by row, so the second read mostly hits
cache. Parallelism (OpenMP): batch norm over blocks of channels, group norm
over (n, g) rows; inputs below PARALLEL_MIN elements run on one thread.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt

import numpy as np
cimport numpy as cnp

from minigrad._core.arrays cimport data_of as _data, empty_like_c, empty_vector, narrow_to_float

from minigrad.backend.reference import norm as _ref

__all__ = list(_ref.__all__)

cnp.import_array()

cdef extern from *:
    """
    #include "blocksum.h"
    #include "parallel.h"
    static int minigrad_norm_max_threads(void) { return mg_max_threads(); }
    static Py_ssize_t minigrad_norm_parallel_min(void) { return MG_PARALLEL_MIN; }

    /* Group-norm rows in C, compiled per ISA (MG_CLONES) and for the input's
       own type T: sums in lanes of T folded into double (blocksum.h);
       elementwise work runs in T on data shifted by the row's first
       element, so that a large mean never meets a rounding. */
    #define MG_DEFINE_NORM(SFX, T) \\
    /* One (n, g) row of K members of S elements: statistics, then \\
       y = (x - mean) * rstd * w[k] + b[k], computed as ((x - shift) - d) ... \\
       with d = mean - shift, so that a large mean never meets a rounding. */ \\
    MG_CLONES static void mg_gn_forward_row_##SFX(const T *restrict x, T *restrict y, \\
            Py_ssize_t K, Py_ssize_t S, const T *restrict w, const T *restrict b, \\
            double eps, int center, double *mean, double *rstd) { \\
        const Py_ssize_t n = K * S; \\
        const T shift = center ? x[0] : (T)0; \\
        double s1, s2, var, mu, r; \\
        MG_SUM2_T(T, SFX, n, s1, s2, T v = x[k] - shift, v, v * v); \\
        if (center) { \\
            double d = s1 / n; \\
            mu = shift + d; \\
            var = s2 / n - d * d; \\
            var = var > 0.0 ? var : 0.0; \\
        } else { \\
            mu = 0.0; \\
            var = s2 / n; \\
        } \\
        r = 1.0 / sqrt(var + eps); \\
        *mean = mu; \\
        *rstd = r; \\
        const T d_t = (T)(mu - (double)shift), r_t = (T)r; \\
        if (S == 1) { \\
            for (Py_ssize_t k = 0; k < K; k++) \\
                y[k] = (((x[k] - shift) - d_t) * r_t) * w[k] + b[k]; \\
        } else { \\
            for (Py_ssize_t k = 0; k < K; k++) { \\
                const T a = (T)(r * (double)w[k]), c = b[k]; \\
                const T *restrict xk = x + k * S; \\
                T *restrict yk = y + k * S; \\
                for (Py_ssize_t s = 0; s < S; s++) \\
                    yk[s] = ((xk[s] - shift) - d_t) * a + c; \\
            } \\
        } \\
    } \\
    /* Backward of rows row0..row1-1 of (N * G) rows: dx, and their share of \\
       dweight/dbias added into dw/db (G * K doubles each). With S == 1 the \\
       per-element shares go through T partials in sc (2 * G * K) first, flushed \\
       at the end, so the caller keeps blocks short (a few rows per (g, k)). */ \\
    MG_CLONES static void mg_gn_backward_rows_##SFX(const T *restrict dy, \\
            const T *restrict x, T *restrict dx, Py_ssize_t row0, Py_ssize_t row1, \\
            Py_ssize_t G, Py_ssize_t K, Py_ssize_t S, const T *restrict wt, \\
            const double *mean, const double *rstd, int center, \\
            double *dw, double *db, T *restrict sc) { \\
        const Py_ssize_t n = K * S; \\
        T *restrict fdw = sc, *restrict fdb = sc + G * K; \\
        if (S == 1) \\
            for (Py_ssize_t i = 0; i < 2 * G * K; i++) sc[i] = 0; \\
        for (Py_ssize_t row = row0; row < row1; row++) { \\
            const Py_ssize_t g = row % G; \\
            const T *restrict xr = x + row * n, *restrict gr = dy + row * n; \\
            T *restrict dr = dx + row * n; \\
            const T *restrict w = wt + g * K; \\
            const double mu = center ? mean[row] : 0.0, r = rstd[row]; \\
            const T shift = center ? xr[0] : (T)0; \\
            const T d_t = (T)(mu - (double)shift), r_t = (T)r; \\
            double s1, s2; \\
            if (S == 1) { \\
                T *restrict pw = fdw + g * K, *restrict pb = fdb + g * K; \\
                MG_SUM2_T(T, SFX, K, s1, s2, \\
                          T xc = (xr[k] - shift) - d_t; T gk = gr[k]; T wg = w[k] * gk; \\
                          pw[k] += (gk * xc) * r_t; pb[k] += gk, \\
                          wg, wg * xc); \\
            } else { \\
                s1 = 0.0; s2 = 0.0; \\
                for (Py_ssize_t m = 0; m < K; m++) { \\
                    const T *restrict xk = xr + m * S, *restrict gk = gr + m * S; \\
                    double sdy, sdx; \\
                    MG_SUM2_T(T, SFX, S, sdy, sdx, T xc = (xk[k] - shift) - d_t, \\
                              gk[k], gk[k] * xc); \\
                    dw[g * K + m] += sdx * r; \\
                    db[g * K + m] += sdy; \\
                    s1 += (double)w[m] * sdy; \\
                    s2 += (double)w[m] * sdx; \\
                } \\
            } \\
            /* dx = r * (dy' - mean(dy') - xhat * mean(dy' * xhat)), dy' = dy * w */ \\
            const T off = (T)(center ? -r * s1 / n : 0.0); \\
            const T slope = (T)(-r * r * r * s2 / n); \\
            if (S == 1) { \\
                for (Py_ssize_t k = 0; k < K; k++) \\
                    dr[k] = (r_t * w[k]) * gr[k] + (slope * ((xr[k] - shift) - d_t) + off); \\
            } else { \\
                for (Py_ssize_t m = 0; m < K; m++) { \\
                    const T a = (T)(r * (double)w[m]); \\
                    const T *restrict xk = xr + m * S, *restrict gk = gr + m * S; \\
                    T *restrict dk = dr + m * S; \\
                    for (Py_ssize_t s = 0; s < S; s++) \\
                        dk[s] = a * gk[s] + (slope * ((xk[s] - shift) - d_t) + off); \\
                } \\
            } \\
        } \\
        if (S == 1) \\
            for (Py_ssize_t i = 0; i < G * K; i++) { dw[i] += fdw[i]; db[i] += fdb[i]; } \\
    } \\
    /* Batch-norm segments (one (n, c) run of S elements), the same way: sums \
       in lanes of T folded into double, elementwise work in T around the \
       segment's shift (x[0, c, 0] for the sums; the mean rounded to T, with \
       the remainder d, for the rest). */ \
    MG_CLONES static void mg_bn_moments_##SFX(const T *restrict x, Py_ssize_t n, T shift, \
            double *s1, double *s2) { \
        double t1, t2; \
        MG_SUM2_T(T, SFX, n, t1, t2, T v = x[k] - shift, v, v * v); \
        *s1 += t1; *s2 += t2; \
    } \
    MG_CLONES static void mg_bn_dot_##SFX(const T *restrict dy, const T *restrict x, \
            Py_ssize_t n, T shift, T d, double *sdy, double *sdx) { \
        double t1, t2; \
        MG_SUM2_T(T, SFX, n, t1, t2, T xc = (x[k] - shift) - d, dy[k], dy[k] * xc); \
        *sdy += t1; *sdx += t2; \
    } \
    MG_CLONES static void mg_bn_affine_##SFX(const T *restrict x, T *restrict y, Py_ssize_t n, \
            T shift, T d, T a, T b, int relu) { \
        if (relu) /* the relu kernel's formula, on the rounded value */ \
            for (Py_ssize_t k = 0; k < n; k++) { \
                const T v = ((x[k] - shift) - d) * a + b; \
                y[k] = v <= 0 ? (T)0 : v; \
            } \
        else \
            for (Py_ssize_t k = 0; k < n; k++) y[k] = ((x[k] - shift) - d) * a + b; \
    } \
    MG_CLONES static void mg_bn_grad_##SFX(const T *restrict dy, const T *restrict x, \
            T *restrict dx, Py_ssize_t n, T shift, T d, T a, T off, T slope) { \
        for (Py_ssize_t k = 0; k < n; k++) \
            dx[k] = a * dy[k] + (slope * ((x[k] - shift) - d) + off); \
    } \
    /* S == 1 (BatchNorm1d): N samples (rows `stride` apart) of K channels, \
       one element each, with per-channel float64 coefficients; the loops run \
       across channels, four rows at a time, so that each per-channel sum is \
       read and written once per four elements (once per element, those \
       updates cost more than the arithmetic). */ \
    MG_CLONES static void mg_bn1_moments_##SFX(const T *restrict x, Py_ssize_t stride, \
            Py_ssize_t N, Py_ssize_t K, const double *restrict shift, double *restrict s1, \
            double *restrict s2) { \
        Py_ssize_t n = 0; \
        for (; n + 4 <= N; n += 4) { \
            const T *restrict x0 = x + n * stride, *restrict x1 = x0 + stride, \
                    *restrict x2 = x1 + stride, *restrict x3 = x2 + stride; \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const double c = shift[k]; \
                const double v0 = (double)x0[k] - c, v1 = (double)x1[k] - c, \
                             v2 = (double)x2[k] - c, v3 = (double)x3[k] - c; \
                s1[k] += (v0 + v1) + (v2 + v3); \
                s2[k] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3); \
            } \
        } \
        for (; n < N; n++) { \
            const T *restrict xn = x + n * stride; \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const double v = (double)xn[k] - shift[k]; \
                s1[k] += v; s2[k] += v * v; \
            } \
        } \
    } \
    MG_CLONES static void mg_bn1_dot_##SFX(const T *restrict dy, const T *restrict x, \
            Py_ssize_t stride, Py_ssize_t N, Py_ssize_t K, const double *restrict m, \
            double *restrict sdy, double *restrict sdx) { \
        Py_ssize_t n = 0; \
        for (; n + 4 <= N; n += 4) { \
            const T *restrict d0 = dy + n * stride, *restrict d1 = d0 + stride, \
                    *restrict d2 = d1 + stride, *restrict d3 = d2 + stride; \
            const T *restrict x0 = x + n * stride, *restrict x1 = x0 + stride, \
                    *restrict x2 = x1 + stride, *restrict x3 = x2 + stride; \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const double c = m[k]; \
                const double g0 = d0[k], g1 = d1[k], g2 = d2[k], g3 = d3[k]; \
                sdy[k] += (g0 + g1) + (g2 + g3); \
                sdx[k] += (g0 * ((double)x0[k] - c) + g1 * ((double)x1[k] - c)) \
                        + (g2 * ((double)x2[k] - c) + g3 * ((double)x3[k] - c)); \
            } \
        } \
        for (; n < N; n++) { \
            const T *restrict dn = dy + n * stride, *restrict xn = x + n * stride; \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const double g = dn[k]; \
                sdy[k] += g; sdx[k] += g * ((double)xn[k] - m[k]); \
            } \
        } \
    } \
    /* The forward's elementwise pass takes per-channel coefficients in T, \
       as the segment kernels above: the mean rounded to T (shift) and its \
       remainder d (in double it ran at half the vector width on AVX2 and \
       paid two conversions per element). The gradient stays in double: \
       a * dy + off cancels exactly when the batch has one sample. */ \
    MG_CLONES static void mg_bn1_affine_##SFX(const T *restrict x, T *restrict y, Py_ssize_t K, \
            const T *restrict shift, const T *restrict d, const T *restrict a, \
            const T *restrict b, int relu) { \
        if (relu) \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const T v = ((x[k] - shift[k]) - d[k]) * a[k] + b[k]; \
                y[k] = v <= 0 ? (T)0 : v; \
            } \
        else \
            for (Py_ssize_t k = 0; k < K; k++) \
                y[k] = ((x[k] - shift[k]) - d[k]) * a[k] + b[k]; \
    } \
    /* The same over an array that holds the input and receives the output, \
       with a per-channel `pre` added to the input first (a linear layer's \
       bias, rounded as its own pass would): Linear then BatchNorm1d in \
       evaluation runs as one pass after the product. */ \
    MG_CLONES static void mg_bn1_affine_pre_inplace_##SFX(T *restrict xy, Py_ssize_t K, \
            const T *restrict pre, const T *restrict shift, const T *restrict d, \
            const T *restrict a, const T *restrict b, int relu) { \
        if (relu) \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const T z = xy[k] + pre[k]; \
                const T v = ((z - shift[k]) - d[k]) * a[k] + b[k]; \
                xy[k] = v <= 0 ? (T)0 : v; \
            } \
        else \
            for (Py_ssize_t k = 0; k < K; k++) { \
                const T z = xy[k] + pre[k]; \
                xy[k] = ((z - shift[k]) - d[k]) * a[k] + b[k]; \
            } \
    } \
    MG_CLONES static void mg_bn1_grad_##SFX(const T *restrict dy, const T *restrict x, \
            T *restrict dx, Py_ssize_t K, const double *restrict m, const double *restrict a, \
            const double *restrict off, const double *restrict slope) { \
        for (Py_ssize_t k = 0; k < K; k++) \
            dx[k] = (T)(a[k] * dy[k] + off[k] + slope[k] * ((double)x[k] - m[k])); \
    }
    MG_DEFINE_NORM(f32, float)
    MG_DEFINE_NORM(f64, double)
    """
    void mg_bn_moments_f32(const float* x, Py_ssize_t n, float shift, double* s1, double* s2) noexcept nogil
    void mg_bn_moments_f64(const double* x, Py_ssize_t n, double shift, double* s1, double* s2) noexcept nogil
    void mg_bn_dot_f32(const float* dy, const float* x, Py_ssize_t n, float shift, float d,
                       double* sdy, double* sdx) noexcept nogil
    void mg_bn_dot_f64(const double* dy, const double* x, Py_ssize_t n, double shift, double d,
                       double* sdy, double* sdx) noexcept nogil
    void mg_bn_affine_f32(const float* x, float* y, Py_ssize_t n, float shift, float d,
                          float a, float b, int relu) noexcept nogil
    void mg_bn_affine_f64(const double* x, double* y, Py_ssize_t n, double shift, double d,
                          double a, double b, int relu) noexcept nogil
    void mg_bn_grad_f32(const float* dy, const float* x, float* dx, Py_ssize_t n, float shift,
                        float d, float a, float off, float slope) noexcept nogil
    void mg_bn_grad_f64(const double* dy, const double* x, double* dx, Py_ssize_t n, double shift,
                        double d, double a, double off, double slope) noexcept nogil
    void mg_bn1_moments_f32(const float* x, Py_ssize_t stride, Py_ssize_t N, Py_ssize_t K,
                            const double* shift, double* s1, double* s2) noexcept nogil
    void mg_bn1_dot_f32(const float* dy, const float* x, Py_ssize_t stride, Py_ssize_t N,
                        Py_ssize_t K, const double* m, double* sdy, double* sdx) noexcept nogil
    void mg_bn1_affine_f32(const float* x, float* y, Py_ssize_t K, const float* shift,
                           const float* d, const float* a, const float* b,
                           int relu) noexcept nogil
    void mg_bn1_affine_pre_inplace_f32(float* xy, Py_ssize_t K, const float* pre, const float* shift,
                                    const float* d, const float* a, const float* b,
                                    int relu) noexcept nogil
    void mg_bn1_grad_f32(const float* dy, const float* x, float* dx, Py_ssize_t K, const double* m,
                         const double* a, const double* off, const double* slope) noexcept nogil
    void mg_bn1_moments_f64(const double* x, Py_ssize_t stride, Py_ssize_t N, Py_ssize_t K,
                            const double* shift, double* s1, double* s2) noexcept nogil
    void mg_bn1_dot_f64(const double* dy, const double* x, Py_ssize_t stride, Py_ssize_t N,
                        Py_ssize_t K, const double* m, double* sdy, double* sdx) noexcept nogil
    void mg_bn1_affine_f64(const double* x, double* y, Py_ssize_t K, const double* shift,
                           const double* d, const double* a, const double* b,
                           int relu) noexcept nogil
    void mg_bn1_affine_pre_inplace_f64(double* xy, Py_ssize_t K, const double* pre, const double* shift,
                                    const double* d, const double* a, const double* b,
                                    int relu) noexcept nogil
    void mg_bn1_grad_f64(const double* dy, const double* x, double* dx, Py_ssize_t K, const double* m,
                         const double* a, const double* off, const double* slope) noexcept nogil
    int max_threads "minigrad_norm_max_threads" () noexcept nogil
    Py_ssize_t minigrad_norm_parallel_min() noexcept nogil
    void mg_gn_forward_row_f32(const float* x, float* y, Py_ssize_t K, Py_ssize_t S,
                               const float* w, const float* b, double eps, int center,
                               double* mean, double* rstd) noexcept nogil
    void mg_gn_forward_row_f64(const double* x, double* y, Py_ssize_t K, Py_ssize_t S,
                               const double* w, const double* b, double eps, int center,
                               double* mean, double* rstd) noexcept nogil
    void mg_gn_backward_rows_f32(const float* dy, const float* x, float* dx,
                                 Py_ssize_t row0, Py_ssize_t row1, Py_ssize_t G,
                                 Py_ssize_t K, Py_ssize_t S, const float* w,
                                 const double* mean, const double* rstd, int center,
                                 double* dw, double* db, float* sc) noexcept nogil
    void mg_gn_backward_rows_f64(const double* dy, const double* x, double* dx,
                                 Py_ssize_t row0, Py_ssize_t row1, Py_ssize_t G,
                                 Py_ssize_t K, Py_ssize_t S, const double* w,
                                 const double* mean, const double* rstd, int center,
                                 double* dw, double* db, double* sc) noexcept nogil

# Below this many elements a kernel runs on one thread (thread start-up
# would cost more than it saves).
cdef Py_ssize_t PARALLEL_MIN = minigrad_norm_parallel_min()  # see parallel.h
# A batch-norm block of channels spans at least this many elements of each
# sample (as far as C and the thread count allow), so that small S (S == 1
# for BatchNorm1d) still gives long contiguous runs.
cdef Py_ssize_t BLOCK_MIN = 1024


# ---------------------------------------------------------------- batch norm segments
# K consecutive segments of S elements with per-segment float64 coefficients:
# the channels first..stop-1 of one sample. Segments go to the C kernels
# mg_bn_* above; S == 1 (BatchNorm1d) gets its own loops (mg_bn1_*), which
# vectorize across channels and, for the sums, take four samples at a time.

cdef inline void seg_moments(const floating* x, Py_ssize_t K, Py_ssize_t S,
                             const double* shift, double* s1, double* s2) noexcept nogil:
    """Per segment k (S > 1): s1[k] += sum(x - shift[k]), s2[k] += sum((x - shift[k])^2)."""
    cdef Py_ssize_t k
    if floating is float:
        for k in range(K):
            mg_bn_moments_f32(x + k * S, S, <float>shift[k], s1 + k, s2 + k)
    else:
        for k in range(K):
            mg_bn_moments_f64(x + k * S, S, shift[k], s1 + k, s2 + k)


cdef inline void seg_dot(const floating* dy, const floating* x, Py_ssize_t K,
                         Py_ssize_t S, const double* m, double* sdy,
                         double* sdx) noexcept nogil:
    """Per segment k (S > 1): sdy[k] += sum(dy), sdx[k] += sum(dy * (x - m[k]))."""
    cdef Py_ssize_t k
    cdef floating around
    for k in range(K):
        around = <floating>m[k]  # the mean rounded to the data's type, and its remainder
        if floating is float:
            mg_bn_dot_f32(dy + k * S, x + k * S, S, around, <float>(m[k] - around),
                          sdy + k, sdx + k)
        else:
            mg_bn_dot_f64(dy + k * S, x + k * S, S, around, m[k] - around, sdy + k, sdx + k)


cdef inline void seg_affine(const floating* x, floating* y, Py_ssize_t K,
                            Py_ssize_t S, const double* m, const double* a,
                            const double* b, bint relu) noexcept nogil:
    """Per segment k (S > 1): y = (x - m[k]) * a[k] + b[k], then relu(y) when `relu`."""
    cdef Py_ssize_t k
    cdef floating around
    for k in range(K):
        around = <floating>m[k]
        if floating is float:
            mg_bn_affine_f32(x + k * S, y + k * S, S, around, <float>(m[k] - around),
                             <float>a[k], <float>b[k], relu)
        else:
            mg_bn_affine_f64(x + k * S, y + k * S, S, around, m[k] - around, a[k], b[k], relu)


cdef inline void seg_grad(const floating* dy, const floating* x, floating* dx,
                          Py_ssize_t K, Py_ssize_t S, const double* m,
                          const double* a, const double* off,
                          const double* slope) noexcept nogil:
    """Per segment k: dx = a[k] * dy + off[k] + slope[k] * (x - m[k])."""
    cdef Py_ssize_t k
    cdef floating around
    if S == 1:
        if floating is float:
            mg_bn1_grad_f32(dy, x, dx, K, m, a, off, slope)
        else:
            mg_bn1_grad_f64(dy, x, dx, K, m, a, off, slope)
    else:
        for k in range(K):
            around = <floating>m[k]
            if floating is float:
                mg_bn_grad_f32(dy + k * S, x + k * S, dx + k * S, S, around, <float>(m[k] - around),
                               <float>a[k], <float>off[k], <float>slope[k])
            else:
                mg_bn_grad_f64(dy + k * S, x + k * S, dx + k * S, S, around, m[k] - around,
                               a[k], off[k], slope[k])


cdef inline void narrow_rows(floating* ft, Py_ssize_t C, Py_ssize_t first, Py_ssize_t stop,
                             const double* m, const double* a, const double* b) noexcept nogil:
    """mg_bn1_affine's coefficients in the data's type, channels first..stop-1
    of `ft` (FT_ROWS, C): the mean rounded, its remainder, a and b rounded."""
    cdef Py_ssize_t c
    cdef floating around
    for c in range(first, stop):
        around = <floating>m[c]
        ft[c] = around
        ft[C + c] = <floating>(m[c] - around)
        ft[2 * C + c] = <floating>a[c]
        ft[3 * C + c] = <floating>b[c]


cdef inline double stats_from_moments(double s1, double s2, double shift,
                                      Py_ssize_t count, bint center,
                                      double* mean) noexcept nogil:
    """From shifted sums over `count` elements: store the mean (0 without
    centering, where shift is 0 too) and return the biased variance (the mean
    of squares without centering)."""
    cdef double d = s1 / count, var
    if not center:
        mean[0] = 0.0
        return s2 / count
    mean[0] = shift + d
    var = s2 / count - d * d
    return var if var > 0.0 else 0.0


# ---------------------------------------------------------------- batch norm
# Per-channel float64 table (TABLE_ROWS, C): the rows below. Each block of
# channels reads and writes only its own columns, so threads never collide.

cdef enum:
    T_W, T_B, T_MEAN, T_VAR, T_RSTD, T_A, T_SUM1, T_SUM2, T_OFF, T_SLOPE, TABLE_ROWS

# BatchNorm1d's (S == 1) forward pass runs across channels with coefficients
# in the data's type: a (FT_ROWS, C) table that each block fills for its
# channels (narrow_rows); its row FT_PRE holds the per-channel values added to
# the input first (batch_norm_apply's pre_bias), when there are some.
cdef enum:
    FT_PRE = 4
    FT_ROWS = 5


def _narrow_table(x):
    """mg_bn1_affine's table for x (N, C, S); a stub when S > 1."""
    return np.empty((FT_ROWS, x.shape[1] if x.shape[2] == 1 else 1), dtype=x.dtype)


cdef void bn1_affine_rows(const floating* x, floating* y, Py_ssize_t N, Py_ssize_t C,
                          Py_ssize_t first, Py_ssize_t stop, floating* ft, bint relu,
                          bint pre) noexcept nogil:
    """BatchNorm1d's (S == 1) output for channels first..stop-1 of N rows, from
    the narrowed table `ft` (narrow_rows); see bn_affine_block."""
    cdef Py_ssize_t n
    for n in range(N):
        if pre:
            if floating is float:
                mg_bn1_affine_pre_inplace_f32(y + n * C + first, stop - first,
                                              ft + FT_PRE * C + first, ft + first,
                                              ft + C + first, ft + 2 * C + first,
                                              ft + 3 * C + first, relu)
            else:
                mg_bn1_affine_pre_inplace_f64(y + n * C + first, stop - first,
                                              ft + FT_PRE * C + first, ft + first,
                                              ft + C + first, ft + 2 * C + first,
                                              ft + 3 * C + first, relu)
            continue
        if floating is float:
            mg_bn1_affine_f32(x + n * C + first, y + n * C + first, stop - first,
                              ft + first, ft + C + first, ft + 2 * C + first,
                              ft + 3 * C + first, relu)
        else:
            mg_bn1_affine_f64(x + n * C + first, y + n * C + first, stop - first,
                              ft + first, ft + C + first, ft + 2 * C + first,
                              ft + 3 * C + first, relu)


cdef void bn_affine_block(const floating* x, floating* y, Py_ssize_t N,
                          Py_ssize_t C, Py_ssize_t S, Py_ssize_t first,
                          Py_ssize_t stop, double* tab, bint relu, floating* ft,
                          bint pre) noexcept nogil:
    """y = (x - mean) * a + b for channels first..stop-1 of every sample
    (then relu(y) when `relu`). With `pre` (S == 1, y is x): x + ft[FT_PRE]
    in place of x."""
    cdef Py_ssize_t n, base = first * S
    if S == 1:
        narrow_rows(ft, C, first, stop, tab + T_MEAN * C, tab + T_A * C, tab + T_B * C)
        bn1_affine_rows(x, y, N, C, first, stop, ft, relu, pre)
        return
    for n in range(N):
        seg_affine(x + n * C * S + base, y + n * C * S + base, stop - first, S,
                   tab + T_MEAN * C + first, tab + T_A * C + first,
                   tab + T_B * C + first, relu)


cdef void bn_forward_block(const floating* x, floating* y, Py_ssize_t N,
                           Py_ssize_t C, Py_ssize_t S, Py_ssize_t first,
                           Py_ssize_t stop, double eps, double* tab, floating* ft,
                           bint relu) noexcept nogil:
    """Statistics of channels first..stop-1 over (n, s), then their output
    (relu of it when `relu`)."""
    cdef Py_ssize_t n, c, base = first * S
    cdef double* mean = tab + T_MEAN * C
    cdef double* s1 = tab + T_SUM1 * C
    cdef double* s2 = tab + T_SUM2 * C
    cdef double var, r
    for c in range(first, stop):
        mean[c] = x[c * S]  # the shift: element (0, c, 0)
    if S == 1:
        if floating is float:
            mg_bn1_moments_f32(x + base, C, N, stop - first, mean + first, s1 + first,
                               s2 + first)
        else:
            mg_bn1_moments_f64(x + base, C, N, stop - first, mean + first, s1 + first,
                               s2 + first)
    else:
        for n in range(N):
            seg_moments(x + n * C * S + base, stop - first, S, mean + first,
                        s1 + first, s2 + first)
    for c in range(first, stop):
        var = stats_from_moments(s1[c], s2[c], mean[c], N * S, True, mean + c)
        r = 1.0 / sqrt(var + eps)
        tab[T_VAR * C + c] = var
        tab[T_RSTD * C + c] = r
        tab[T_A * C + c] = r * tab[T_W * C + c]
    bn_affine_block(x, y, N, C, S, first, stop, tab, relu, ft, False)


cdef void bn_backward_block(const floating* dy, const floating* x, floating* dx,
                            Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                            Py_ssize_t first, Py_ssize_t stop, bint batch_stats,
                            bint need_sums, double* tab) noexcept nogil:
    """Sums of dy and dy * (x - mean) for channels first..stop-1 (when the
    gradient needs them), then dx for those channels."""
    cdef Py_ssize_t n, c, base = first * S, count = N * S
    cdef double r, a
    if need_sums and S == 1:
        if floating is float:
            mg_bn1_dot_f32(dy + base, x + base, C, N, stop - first, tab + T_MEAN * C + first,
                           tab + T_SUM1 * C + first, tab + T_SUM2 * C + first)
        else:
            mg_bn1_dot_f64(dy + base, x + base, C, N, stop - first, tab + T_MEAN * C + first,
                           tab + T_SUM1 * C + first, tab + T_SUM2 * C + first)
    elif need_sums:
        for n in range(N):
            seg_dot(dy + n * C * S + base, x + n * C * S + base, stop - first, S,
                    tab + T_MEAN * C + first, tab + T_SUM1 * C + first,
                    tab + T_SUM2 * C + first)
    for c in range(first, stop):
        r = tab[T_RSTD * C + c]
        a = r * tab[T_W * C + c]
        tab[T_A * C + c] = a
        if batch_stats:
            # dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * r
            tab[T_OFF * C + c] = -a * tab[T_SUM1 * C + c] / count
            tab[T_SLOPE * C + c] = -a * r * r * tab[T_SUM2 * C + c] / count
    for n in range(N):
        seg_grad(dy + n * C * S + base, x + n * C * S + base, dx + n * C * S + base,
                 stop - first, S, tab + T_MEAN * C + first, tab + T_A * C + first,
                 tab + T_OFF * C + first, tab + T_SLOPE * C + first)


def _bn_blocks(Py_ssize_t size, Py_ssize_t C, Py_ssize_t S):
    """(channels per block, number of blocks, threads)."""
    cdef int nt = 1 if size < PARALLEL_MIN else max(1, min(max_threads(), C))
    cdef Py_ssize_t bs = min(C, (BLOCK_MIN + S - 1) // S)
    bs = max(1, min(bs, (C + nt - 1) // nt))
    return bs, (C + bs - 1) // bs, nt


# The kernels' entry points take raw pointers of C-contiguous arrays (the
# entry points below make them so): a fused `def` with typed memoryviews spent
# about 8 us per call choosing its specialization and acquiring the views.

cdef void _bn_output_blocks(const floating* x, floating* y, Py_ssize_t N, Py_ssize_t C,
                            Py_ssize_t S, bint stats, double eps, double* tab, floating* ft,
                            bint relu, bint pre, Py_ssize_t bs, Py_ssize_t nb,
                            int nt) noexcept nogil:
    """y for every block of channels: with batch statistics (stats, the
    training forward) or from the table's (apply); relu(y) when `relu`;
    `pre`: see bn_affine_block."""
    cdef Py_ssize_t blk, first, stop, rows
    if not stats and S == 1 and nt > 1:
        # no statistic joins the rows: each thread takes whole rows (one
        # contiguous run) rather than a slice of every row
        narrow_rows(ft, C, 0, C, tab + T_MEAN * C, tab + T_A * C, tab + T_B * C)
        rows = (N + nt - 1) // nt
        for blk in prange(nt, num_threads=nt, schedule='static'):
            first = blk * rows
            stop = min(N, first + rows)
            if first < stop:
                bn1_affine_rows(x + first * C, y + first * C, stop - first, C, 0, C, ft,
                                relu, pre)
        return
    for blk in prange(nb, num_threads=nt, schedule='static'):
        first = blk * bs
        stop = min(C, (blk + 1) * bs)
        if stats:
            bn_forward_block(x, y, N, C, S, first, stop, eps, tab, ft, relu)
        else:
            bn_affine_block(x, y, N, C, S, first, stop, tab, relu, ft, pre)


cdef void _bn_backward_blocks(const floating* dy, const floating* x, floating* dx, Py_ssize_t N,
                              Py_ssize_t C, Py_ssize_t S, bint batch_stats, bint need_sums,
                              double* tab, Py_ssize_t bs, Py_ssize_t nb, int nt) noexcept nogil:
    cdef Py_ssize_t blk
    for blk in prange(nb, num_threads=nt, schedule='static'):
        bn_backward_block(dy, x, dx, N, C, S, blk * bs, min(C, (blk + 1) * bs),
                          batch_stats, need_sums, tab)


cdef void _bn_output_kernel(x, y, bint stats, double eps, tab, ft, bint relu, bint pre,
                            Py_ssize_t bs, Py_ssize_t nb, int nt):
    """x and y (N, C, S), ft of x's dtype, tab float64: all C-contiguous."""
    cdef cnp.ndarray a = x
    cdef Py_ssize_t N = a.shape[0], C = a.shape[1], S = a.shape[2]
    cdef bint single = cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
    cdef void *px = _data(x)
    cdef void *py = _data(y)
    cdef void *pf = _data(ft)
    cdef double* pt = <double*>_data(tab)
    with nogil:
        if single:
            _bn_output_blocks(<const float*>px, <float*>py, N, C, S, stats, eps, pt,
                              <float*>pf, relu, pre, bs, nb, nt)
        else:
            _bn_output_blocks(<const double*>px, <double*>py, N, C, S, stats, eps, pt,
                              <double*>pf, relu, pre, bs, nb, nt)


cdef void _bn_backward_kernel(dy, x, dx, bint batch_stats, bint need_sums, tab,
                              Py_ssize_t bs, Py_ssize_t nb, int nt):
    """dy, x and dx (N, C, S) of one dtype, tab float64: all C-contiguous."""
    cdef cnp.ndarray a = x
    cdef Py_ssize_t N = a.shape[0], C = a.shape[1], S = a.shape[2]
    cdef bint single = cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
    cdef void *pdy = _data(dy)
    cdef void *px = _data(x)
    cdef void *pdx = _data(dx)
    cdef double* pt = <double*>_data(tab)
    with nogil:
        if single:
            _bn_backward_blocks(<const float*>pdy, <const float*>px, <float*>pdx, N, C, S,
                                batch_stats, need_sums, pt, bs, nb, nt)
        else:
            _bn_backward_blocks(<const double*>pdy, <const double*>px, <double*>pdx, N, C, S,
                                batch_stats, need_sums, pt, bs, nb, nt)


# ---------------------------------------------------------------- group norm
# One (n, g) row: K members of S elements each, one mean/rstd for the row and
# per-member weight/bias (K = 1, S = K * S when there are none: the row is
# then one run with constant coefficients); the row loops are the C functions
# mg_gn_* above. The backward walks blocks of `rb` rows; each thread owns a
# slice of `scratch` and of the partial parameter sums, by thread id.

def _gn_forward_kernel(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                       const floating[:, ::1] w, const floating[:, ::1] b, double eps,
                       bint center, double[:, ::1] mean, double[:, ::1] rstd, int nt):
    cdef Py_ssize_t G = x.shape[1], K = x.shape[2], S = x.shape[3], row, n, g
    for row in prange(x.shape[0] * G, nogil=True, num_threads=nt, schedule='static'):
        n = row // G
        g = row % G
        if floating is float:
            mg_gn_forward_row_f32(&x[n, g, 0, 0], &y[n, g, 0, 0], K, S, &w[g, 0],
                                  &b[g, 0], eps, center, &mean[n, g], &rstd[n, g])
        else:
            mg_gn_forward_row_f64(&x[n, g, 0, 0], &y[n, g, 0, 0], K, S, &w[g, 0],
                                  &b[g, 0], eps, center, &mean[n, g], &rstd[n, g])


def _gn_backward_kernel(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
                        floating[:, :, :, ::1] dx, const floating[:, ::1] w,
                        const double[:, ::1] mean, const double[:, ::1] rstd,
                        bint center, double[:, :, ::1] partial,
                        floating[:, ::1] scratch, Py_ssize_t rb, int nt):
    cdef Py_ssize_t G = x.shape[1], K = x.shape[2], S = x.shape[3]
    cdef Py_ssize_t rows = x.shape[0] * G, blk, r0, r1
    cdef const floating* pdy = &dy[0, 0, 0, 0]
    cdef const floating* px = &x[0, 0, 0, 0]
    cdef floating* pdx = &dx[0, 0, 0, 0]
    cdef const floating* pw = &w[0, 0]
    cdef const double* pm = &mean[0, 0]
    cdef const double* pr = &rstd[0, 0]
    cdef int tid
    for blk in prange((rows + rb - 1) // rb, nogil=True, num_threads=nt, schedule='static'):
        tid = threadid()
        r0 = blk * rb
        r1 = min(rows, r0 + rb)
        if floating is float:
            mg_gn_backward_rows_f32(pdy, px, pdx, r0, r1, G, K, S, pw, pm, pr, center,
                                    &partial[tid, 0, 0], &partial[tid, 1, 0],
                                    &scratch[tid, 0])
        else:
            mg_gn_backward_rows_f64(pdy, px, pdx, r0, r1, G, K, S, pw, pm, pr, center,
                                    &partial[tid, 0, 0], &partial[tid, 1, 0],
                                    &scratch[tid, 0])


# ---------------------------------------------------------------- entry points

def _compiled_dtype(x, *others):
    """True when x (and every array in others) is a non-empty float32/float64
    numpy array of one dtype: the inputs these kernels take."""
    return (isinstance(x, np.ndarray) and x.size > 0
            and x.dtype in (np.float32, np.float64)
            and all(isinstance(o, np.ndarray) and o.dtype == x.dtype for o in others))


def _threads(Py_ssize_t size, Py_ssize_t units):
    return 1 if size < PARALLEL_MIN else max(1, min(max_threads(), units))


cdef object _channel_table(Py_ssize_t C, weight, bias=None, mean=None, rstd=None):
    """The (TABLE_ROWS, C) float64 batch-norm table with the given rows set
    (weight 1 where there is none, every other row 0). Filled by C loops:
    numpy's row assignments cost about 6 us per call, four calls per
    BatchNorm layer and training step."""
    cdef cnp.npy_intp dims[2]
    dims[0] = TABLE_ROWS
    dims[1] = C
    tab = cnp.PyArray_ZEROS(2, dims, cnp.NPY_FLOAT64, 0)
    _set_row(tab, T_W, C, weight, 1.0)
    for row, values in ((T_B, bias), (T_MEAN, mean), (T_RSTD, rstd)):
        if values is not None:
            _set_row(tab, row, C, values, 0.0)
    return tab


cdef void _set_row(tab, int row, Py_ssize_t C, values, double fill) except *:
    """tab[row] = values, or `fill` where values is None."""
    cdef double* r = <double*>cnp.PyArray_DATA(<cnp.ndarray>tab) + row * C
    cdef Py_ssize_t c
    cdef int t
    if values is None:
        for c in range(C):
            r[c] = fill
        return
    if (isinstance(values, np.ndarray) and cnp.PyArray_NDIM(<cnp.ndarray>values) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>values, 0) == C
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>values)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>values)):
        t = cnp.PyArray_TYPE(<cnp.ndarray>values)
        if t == cnp.NPY_FLOAT32:
            for c in range(C):
                r[c] = (<const float*>cnp.PyArray_DATA(<cnp.ndarray>values))[c]
            return
        if t == cnp.NPY_FLOAT64:
            for c in range(C):
                r[c] = (<const double*>cnp.PyArray_DATA(<cnp.ndarray>values))[c]
            return
    tab[row] = values  # any other array: numpy's conversion


cdef object _table_row(tab, int row, dtype):
    """Row `row` of the table as a new (C,) array of dtype (float32/64: a C
    loop; numpy's astype otherwise)."""
    cdef cnp.npy_intp C = cnp.PyArray_DIM(<cnp.ndarray>tab, 1)
    cdef const double* r = <const double*>cnp.PyArray_DATA(<cnp.ndarray>tab) + row * C
    if dtype == np.float32:
        out = empty_vector(C, cnp.NPY_FLOAT32)
        narrow_to_float(r, <float*>_data(out), C)
        return out
    return tab[row].astype(dtype)


def batch_norm_forward(x, weight, bias, eps, relu=False):
    """See minigrad.backend.reference.norm.batch_norm_forward."""
    if not _compiled_dtype(x):
        return _ref.batch_norm_forward(np, x, weight, bias, eps, relu)
    x = np.ascontiguousarray(x)
    tab = _channel_table(x.shape[1], weight, bias)
    y = empty_like_c(x)
    bs, nb, nt = _bn_blocks(x.size, x.shape[1], x.shape[2])
    _bn_output_kernel(x, y, True, float(eps), tab, _narrow_table(x), bool(relu), False,
                      bs, nb, nt)
    return (y, _table_row(tab, T_MEAN, x.dtype), _table_row(tab, T_VAR, x.dtype),
            _table_row(tab, T_RSTD, x.dtype))


cdef bint _vector_of(a, int t, Py_ssize_t C, bint writable):
    """a is a C-contiguous native (C,) numpy array of type number t."""
    return (isinstance(a, np.ndarray) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>a, 0) == C and cnp.PyArray_TYPE(<cnp.ndarray>a) == t
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and (not writable or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)))


cdef void _running_row(floating* r, const floating* s, Py_ssize_t C, double scale,
                       double momentum) noexcept nogil:
    """r = (1 - momentum) * r + momentum * (scale * s) in double, rounded once."""
    cdef Py_ssize_t c
    cdef double keep = 1.0 - momentum
    for c in range(C):
        r[c] = <floating>(keep * <double>r[c] + momentum * (scale * <double>s[c]))


cdef void _inverse_std_into(const floating* var, float* out, Py_ssize_t C, double eps) noexcept nogil:
    """out = 1 / sqrt(var + eps) in double, rounded once to float32."""
    cdef Py_ssize_t c
    for c in range(C):
        out[c] = <float>(1.0 / sqrt(<double>var[c] + eps))


def inverse_std(var, eps, dtype):
    """See minigrad.backend.reference.norm.inverse_std (one loop instead of
    four numpy operations, per BatchNorm layer in every evaluation step)."""
    if dtype != np.float32 or not isinstance(var, np.ndarray) or cnp.PyArray_NDIM(<cnp.ndarray>var) != 1:
        return _ref.inverse_std(np, var, eps, dtype)
    cdef Py_ssize_t C = cnp.PyArray_DIM(<cnp.ndarray>var, 0)
    out = empty_vector(C, cnp.NPY_FLOAT32)
    if _vector_of(var, cnp.NPY_FLOAT32, C, False):
        _inverse_std_into(<const float*>_data(var), <float*>_data(out), C, float(eps))
    elif _vector_of(var, cnp.NPY_FLOAT64, C, False):
        _inverse_std_into(<const double*>_data(var), <float*>_data(out), C, float(eps))
    else:
        return _ref.inverse_std(np, var, eps, dtype)
    return out


def running_stats_update(running_mean, running_var, mean, var, count, momentum):
    """See minigrad.backend.reference.norm.running_stats_update (one call
    instead of seven numpy operations, every training step of every layer)."""
    unbias = count / (count - 1)
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>running_mean) if isinstance(running_mean, np.ndarray) else -1
    cdef Py_ssize_t C = cnp.PyArray_SIZE(<cnp.ndarray>running_mean) if t >= 0 else 0
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64)
            or not _vector_of(running_mean, t, C, True) or not _vector_of(running_var, t, C, True)
            or not _vector_of(mean, t, C, False) or not _vector_of(var, t, C, False)):
        return _ref.running_stats_update(np, running_mean, running_var, mean, var, count, momentum)
    if t == cnp.NPY_FLOAT32:
        _running_row[float](<float*>_data(running_mean), <const float*>_data(mean), C, 1.0, momentum)
        _running_row[float](<float*>_data(running_var), <const float*>_data(var), C, unbias, momentum)
    else:
        _running_row[double](<double*>_data(running_mean), <const double*>_data(mean), C, 1.0,
                     momentum)
        _running_row[double](<double*>_data(running_var), <const double*>_data(var), C, unbias,
                     momentum)


def batch_norm_apply(x, mean, rstd, weight, bias, relu=False, pre_bias=None, out=None):
    """See minigrad.backend.reference.norm.batch_norm_apply."""
    if not _compiled_dtype(x):
        return _ref.batch_norm_apply(np, x, mean, rstd, weight, bias, relu, pre_bias, out)
    # one pass in place: BatchNorm1d's layout, the output over the input
    fused = (pre_bias is not None and out is x and x.shape[2] == 1 and x.flags.c_contiguous
             and x.flags.writeable and isinstance(pre_bias, np.ndarray)
             and pre_bias.dtype == x.dtype)
    if pre_bias is not None and not fused:
        x = x + pre_bias.reshape(1, -1, 1)  # the separate pass, rounded the same way
    x = np.ascontiguousarray(x)
    tab = _channel_table(x.shape[1], weight, bias, mean, rstd)
    tab[T_A] = tab[T_RSTD] * tab[T_W]
    ft = _narrow_table(x)
    if fused:
        ft[FT_PRE] = pre_bias
    y = x if fused else np.empty_like(x)
    bs, nb, nt = _bn_blocks(x.size, x.shape[1], x.shape[2])
    _bn_output_kernel(x, y, False, 0.0, tab, ft, bool(relu), fused, bs, nb, nt)
    if out is not None and out is not y:
        out[...] = y
        return out
    return y


def batch_norm_backward(dy, x, mean, rstd, weight, batch_stats):
    """See minigrad.backend.reference.norm.batch_norm_backward."""
    if not _compiled_dtype(x, dy) or dy.shape != x.shape:
        return _ref.batch_norm_backward(np, dy, x, mean, rstd, weight, batch_stats)
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy)
    tab = _channel_table(x.shape[1], weight, None, mean, rstd)
    dx = empty_like_c(x)
    need_sums = bool(batch_stats) or weight is not None
    bs, nb, nt = _bn_blocks(x.size, x.shape[1], x.shape[2])
    _bn_backward_kernel(dy, x, dx, bool(batch_stats), need_sums, tab, bs, nb, nt)
    if weight is None:
        return dx, None, None
    tab[T_SUM2] *= tab[T_RSTD]  # dweight = sum(dy * xhat)
    return dx, _table_row(tab, T_SUM2, weight.dtype), _table_row(tab, T_SUM1, weight.dtype)


def _member_table(values, G, K, fill, dtype):
    """Per-(g, k) coefficients (G, K) of `dtype`; `fill` everywhere when None."""
    if values is None:
        return np.full((G, K), fill, dtype=dtype)
    return np.ascontiguousarray(np.asarray(values, dtype=dtype).reshape(G, K))


def _segments(x, per_member):
    """x (N, G, K, S) viewed as the rows the kernels walk: K segments of S
    when coefficients vary per member k, else one segment of K * S."""
    N, G, K, S = x.shape
    return x if per_member else x.reshape(N, G, 1, K * S)


def group_norm_forward(x, weight, bias, eps, subtract_mean):
    """See minigrad.backend.reference.norm.group_norm_forward."""
    if not _compiled_dtype(x):
        return _ref.group_norm_forward(np, x, weight, bias, eps, subtract_mean)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    per_member = weight is not None or bias is not None
    N, G, K, S = _segments(x, per_member).shape
    mean = np.empty((N, G))
    rstd = np.empty((N, G))
    nt = _threads(x.size, N * G)
    _gn_forward_kernel(_segments(x, per_member), _segments(y, per_member),
                       _member_table(weight, G, K, 1.0, x.dtype),
                       _member_table(bias, G, K, 0.0, x.dtype),
                       float(eps), bool(subtract_mean), mean, rstd, nt)
    mean = mean.astype(x.dtype) if subtract_mean else None
    return y, mean, rstd.astype(x.dtype)


def group_norm_backward(dy, x, mean, rstd, weight, subtract_mean):
    """See minigrad.backend.reference.norm.group_norm_backward."""
    if not _compiled_dtype(x, dy):
        return _ref.group_norm_backward(np, dy, x, mean, rstd, weight, subtract_mean)
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(x)
    per_member = weight is not None
    N, G, K, S = _segments(x, per_member).shape
    mean = np.asarray(mean, dtype=np.float64) if subtract_mean else np.zeros((N, G))
    nt = _threads(x.size, N * G)
    # rows per block: with S == 1 the dweight/dbias shares gather in x's type
    # over a block, a few rows per (g, k), before they are added in float64
    rb = 16 * G if S == 1 else 1
    # per-thread partial sums of dweight (index 0) and dbias (index 1)
    partial = np.zeros((nt, 2, G * K))
    _gn_backward_kernel(_segments(dy, per_member), _segments(x, per_member),
                        _segments(dx, per_member), _member_table(weight, G, K, 1.0, x.dtype),
                        np.ascontiguousarray(mean.reshape(N, G)),
                        np.ascontiguousarray(np.asarray(rstd, dtype=np.float64).reshape(N, G)),
                        bool(subtract_mean), partial,
                        np.empty((nt, 2 * G * K), dtype=x.dtype), rb, nt)
    if weight is None:
        return dx, None, None
    dweight, dbias = partial.sum(axis=0).reshape(2, G, K)
    return dx, dweight.astype(weight.dtype), dbias.astype(weight.dtype)
