"""Compiled normalization kernels: the fused core behind every norm layer.

Same functions, arguments and results as minigrad/backend/reference/norm.py
(without `xp`); the layouts and formulas are documented there. float32 and
float64 inputs run here; anything else falls back to the reference.

Accuracy: every sum runs in float64. The forward statistics take one pass
over the data, summing x - shift and (x - shift)^2 with the shift set to the
first element of each reduction set: being one of the data, the shift lies
a few std from the mean, so the variance does not cancel even when the mean
is large against the std. Outputs are computed as (x - mean) * a + b in
float64 and rounded once.

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

from minigrad.backend.reference import norm as _ref

__all__ = list(_ref.__all__)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int minigrad_norm_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int minigrad_norm_max_threads(void) { return 1; }
    #endif
    """
    int max_threads "minigrad_norm_max_threads" () noexcept nogil

# Below this many elements a kernel runs on one thread (thread start-up
# would cost more than it saves).
cdef Py_ssize_t PARALLEL_MIN = 1 << 15
# A batch-norm block of channels spans at least this many elements of each
# sample (as far as C and the thread count allow), so that small S (S == 1
# for BatchNorm1d) still gives long contiguous runs.
cdef Py_ssize_t BLOCK_MIN = 1024


# ---------------------------------------------------------------- primitives
# A "row" is a contiguous run of elements with scalar float64 coefficients.
# Reductions keep LANES independent float64 partial sums, lane j taking
# elements i + j, so that successive adds do not wait on each other (the
# compiler may not reorder one running sum itself; it may pack lanes into
# SIMD registers).

cdef enum:
    LANES = 4


cdef inline double lane_total(const double* lanes) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t j
    for j in range(LANES):
        total += lanes[j]
    return total


cdef inline void row_moments(const floating* x, Py_ssize_t n, double shift,
                             double* s1, double* s2) noexcept nogil:
    """s1 += sum(x - shift), s2 += sum((x - shift)^2)."""
    cdef double a[LANES]
    cdef double q[LANES]
    cdef double v, sa, sq
    cdef Py_ssize_t i = 0, j
    for j in range(LANES):
        a[j] = 0.0
        q[j] = 0.0
    while i + LANES <= n:
        for j in range(LANES):
            v = x[i + j] - shift
            a[j] += v
            q[j] += v * v
        i += LANES
    sa = lane_total(a)
    sq = lane_total(q)
    while i < n:  # the tail, fewer than LANES elements
        v = x[i] - shift
        sa += v
        sq += v * v
        i += 1
    s1[0] += sa
    s2[0] += sq


cdef inline void row_dot(const floating* dy, const floating* x, Py_ssize_t n,
                         double m, double* sdy, double* sdx) noexcept nogil:
    """sdy += sum(dy), sdx += sum(dy * (x - m))."""
    cdef double a[LANES]
    cdef double q[LANES]
    cdef double d, sa, sq
    cdef Py_ssize_t i = 0, j
    for j in range(LANES):
        a[j] = 0.0
        q[j] = 0.0
    while i + LANES <= n:
        for j in range(LANES):
            d = dy[i + j]
            a[j] += d
            q[j] += d * (x[i + j] - m)
        i += LANES
    sa = lane_total(a)
    sq = lane_total(q)
    while i < n:
        d = dy[i]
        sa += d
        sq += d * (x[i] - m)
        i += 1
    sdy[0] += sa
    sdx[0] += sq


cdef inline void row_affine(const floating* x, floating* y, Py_ssize_t n,
                            double m, double a, double b) noexcept nogil:
    """y = (x - m) * a + b."""
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = <floating>((x[i] - m) * a + b)


cdef inline void row_grad(const floating* dy, const floating* x, floating* dx,
                          Py_ssize_t n, double m, double a, double off,
                          double slope) noexcept nogil:
    """dx = a * dy + off + slope * (x - m): the shape every closed-form norm
    backward takes once its sums are known."""
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] = <floating>(a * dy[i] + off + slope * (x[i] - m))


cdef inline void pair_sums(const double* u, const double* t, Py_ssize_t n,
                           double* su, double* st) noexcept nogil:
    """su = sum(u), st = sum(t)."""
    cdef double a[LANES]
    cdef double q[LANES]
    cdef double sa, sq
    cdef Py_ssize_t i = 0, j
    for j in range(LANES):
        a[j] = 0.0
        q[j] = 0.0
    while i + LANES <= n:
        for j in range(LANES):
            a[j] += u[i + j]
            q[j] += t[i + j]
        i += LANES
    sa = lane_total(a)
    sq = lane_total(q)
    while i < n:
        sa += u[i]
        sq += t[i]
        i += 1
    su[0] = sa
    st[0] = sq


# Segment rows (batch norm): K consecutive segments of S elements with
# per-segment float64 coefficients, the channels first..stop-1 of one sample.
# S == 1 (BatchNorm1d) gets its own loop, which vectorizes across channels.

cdef inline void seg_moments(const floating* x, Py_ssize_t K, Py_ssize_t S,
                             const double* shift, double* s1, double* s2) noexcept nogil:
    """Per segment k: s1[k] += sum(x - shift[k]), s2[k] += sum((x - shift[k])^2)."""
    cdef Py_ssize_t k
    cdef double v
    if S == 1:
        for k in range(K):
            v = x[k] - shift[k]
            s1[k] += v
            s2[k] += v * v
    else:
        for k in range(K):
            row_moments(x + k * S, S, shift[k], s1 + k, s2 + k)


cdef inline void seg_dot(const floating* dy, const floating* x, Py_ssize_t K,
                         Py_ssize_t S, const double* m, double* sdy,
                         double* sdx) noexcept nogil:
    """Per segment k: sdy[k] += sum(dy), sdx[k] += sum(dy * (x - m[k]))."""
    cdef Py_ssize_t k
    cdef double d
    if S == 1:
        for k in range(K):
            d = dy[k]
            sdy[k] += d
            sdx[k] += d * (x[k] - m[k])
    else:
        for k in range(K):
            row_dot(dy + k * S, x + k * S, S, m[k], sdy + k, sdx + k)


cdef inline void seg_affine(const floating* x, floating* y, Py_ssize_t K,
                            Py_ssize_t S, const double* m, const double* a,
                            const double* b) noexcept nogil:
    """Per segment k: y = (x - m[k]) * a[k] + b[k]."""
    cdef Py_ssize_t k
    if S == 1:
        for k in range(K):
            y[k] = <floating>((x[k] - m[k]) * a[k] + b[k])
    else:
        for k in range(K):
            row_affine(x + k * S, y + k * S, S, m[k], a[k], b[k])


cdef inline void seg_grad(const floating* dy, const floating* x, floating* dx,
                          Py_ssize_t K, Py_ssize_t S, const double* m,
                          const double* a, const double* off,
                          const double* slope) noexcept nogil:
    """Per segment k: dx = a[k] * dy + off[k] + slope[k] * (x - m[k])."""
    cdef Py_ssize_t k
    if S == 1:
        for k in range(K):
            dx[k] = <floating>(a[k] * dy[k] + off[k] + slope[k] * (x[k] - m[k]))
    else:
        for k in range(K):
            row_grad(dy + k * S, x + k * S, dx + k * S, S, m[k], a[k], off[k], slope[k])


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


cdef void bn_affine_block(const floating* x, floating* y, Py_ssize_t N,
                          Py_ssize_t C, Py_ssize_t S, Py_ssize_t first,
                          Py_ssize_t stop, double* tab) noexcept nogil:
    """y = (x - mean) * a + b for channels first..stop-1 of every sample."""
    cdef Py_ssize_t n, base = first * S
    for n in range(N):
        seg_affine(x + n * C * S + base, y + n * C * S + base, stop - first, S,
                   tab + T_MEAN * C + first, tab + T_A * C + first,
                   tab + T_B * C + first)


cdef void bn_forward_block(const floating* x, floating* y, Py_ssize_t N,
                           Py_ssize_t C, Py_ssize_t S, Py_ssize_t first,
                           Py_ssize_t stop, double eps, double* tab) noexcept nogil:
    """Statistics of channels first..stop-1 over (n, s), then their output."""
    cdef Py_ssize_t n, c, base = first * S
    cdef double* mean = tab + T_MEAN * C
    cdef double* s1 = tab + T_SUM1 * C
    cdef double* s2 = tab + T_SUM2 * C
    cdef double var, r
    for c in range(first, stop):
        mean[c] = x[c * S]  # the shift: element (0, c, 0)
    for n in range(N):
        seg_moments(x + n * C * S + base, stop - first, S, mean + first,
                    s1 + first, s2 + first)
    for c in range(first, stop):
        var = stats_from_moments(s1[c], s2[c], mean[c], N * S, True, mean + c)
        r = 1.0 / sqrt(var + eps)
        tab[T_VAR * C + c] = var
        tab[T_RSTD * C + c] = r
        tab[T_A * C + c] = r * tab[T_W * C + c]
    bn_affine_block(x, y, N, C, S, first, stop, tab)


cdef void bn_backward_block(const floating* dy, const floating* x, floating* dx,
                            Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                            Py_ssize_t first, Py_ssize_t stop, bint batch_stats,
                            bint need_sums, double* tab) noexcept nogil:
    """Sums of dy and dy * (x - mean) for channels first..stop-1 (when the
    gradient needs them), then dx for those channels."""
    cdef Py_ssize_t n, c, base = first * S, count = N * S
    cdef double r, a
    if need_sums:
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


def _bn_forward_kernel(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                       double eps, double[:, ::1] tab, Py_ssize_t bs,
                       Py_ssize_t nb, int nt):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2], blk
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* py = &y[0, 0, 0]
    cdef double* pt = &tab[0, 0]
    for blk in prange(nb, nogil=True, num_threads=nt, schedule='static'):
        bn_forward_block(px, py, N, C, S, blk * bs, min(C, (blk + 1) * bs), eps, pt)


def _bn_affine_kernel(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                      double[:, ::1] tab, Py_ssize_t bs, Py_ssize_t nb, int nt):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2], blk
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* py = &y[0, 0, 0]
    cdef double* pt = &tab[0, 0]
    for blk in prange(nb, nogil=True, num_threads=nt, schedule='static'):
        bn_affine_block(px, py, N, C, S, blk * bs, min(C, (blk + 1) * bs), pt)


def _bn_backward_kernel(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
                        floating[:, :, ::1] dx, bint batch_stats, bint need_sums,
                        double[:, ::1] tab, Py_ssize_t bs, Py_ssize_t nb, int nt):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2], blk
    cdef const floating* pdy = &dy[0, 0, 0]
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* pdx = &dx[0, 0, 0]
    cdef double* pt = &tab[0, 0]
    for blk in prange(nb, nogil=True, num_threads=nt, schedule='static'):
        bn_backward_block(pdy, px, pdx, N, C, S, blk * bs, min(C, (blk + 1) * bs),
                          batch_stats, need_sums, pt)


# ---------------------------------------------------------------- group norm
# One (n, g) row: K members of S elements each, one mean/rstd for the row and
# per-member weight/bias (K = 1, S = K * S when there are none: the row is
# then one run with constant coefficients). S == 1 (LayerNorm, RMSNorm) gets
# its own loops, which vectorize across members. In the backward each thread
# owns a slice of `scratch` and of the partial parameter sums, by thread id.

cdef void gn_forward_row(const floating* x, floating* y, Py_ssize_t K,
                         Py_ssize_t S, const double* w, const double* b,
                         double eps, bint center, double* mean,
                         double* rstd) noexcept nogil:
    """Statistics of one row, then y = (x - mean) * rstd * w[k] + b[k]."""
    cdef Py_ssize_t k
    cdef double shift = x[0] if center else 0.0
    cdef double s1 = 0.0, s2 = 0.0, mu, r
    row_moments(x, K * S, shift, &s1, &s2)
    r = 1.0 / sqrt(stats_from_moments(s1, s2, shift, K * S, center, &mu) + eps)
    mean[0] = mu
    rstd[0] = r
    if S == 1:
        for k in range(K):
            y[k] = <floating>((x[k] - mu) * (r * w[k]) + b[k])
    else:
        for k in range(K):
            row_affine(x + k * S, y + k * S, S, mu, r * w[k], b[k])


cdef inline void member_sums(double sdy, double sdx, double w, double r,
                             double* dw, double* db, double* u,
                             double* t) noexcept nogil:
    """Book one member's sums of dy and dy * (x - mu): its dweight/dbias
    share, and its weighted terms of the row sums."""
    dw[0] += sdx * r
    db[0] += sdy
    u[0] = w * sdy
    t[0] = w * sdx


cdef void gn_backward_row(const floating* dy, const floating* x, floating* dx,
                          Py_ssize_t K, Py_ssize_t S, const double* w,
                          double mu, double r, bint center, double* dw,
                          double* db, double* scratch) noexcept nogil:
    """dx of one row, adding its share of dweight/dbias into dw/db;
    scratch holds 2 * K doubles."""
    cdef Py_ssize_t k, count = K * S
    cdef double* u = scratch       # per member: w * sum(dy)
    cdef double* t = scratch + K   # per member: w * sum(dy * (x - mu))
    cdef double sdy = 0.0, sdx = 0.0, s1, s2, off, slope
    if S == 1:
        for k in range(K):
            member_sums(dy[k], dy[k] * (x[k] - mu), w[k], r, dw + k, db + k, u + k, t + k)
    else:
        for k in range(K):
            sdy = 0.0
            sdx = 0.0
            row_dot(dy + k * S, x + k * S, S, mu, &sdy, &sdx)
            member_sums(sdy, sdx, w[k], r, dw + k, db + k, u + k, t + k)
    # with dy' = dy * w: s1 = sum(dy'), s2 = sum(dy' * (x - mu)), and
    # dx = r * (dy' - mean(dy') - xhat * mean(dy' * xhat)), xhat = (x - mu) * r
    pair_sums(u, t, K, &s1, &s2)
    off = -r * s1 / count if center else 0.0
    slope = -r * r * r * s2 / count
    if S == 1:
        for k in range(K):
            dx[k] = <floating>((r * w[k]) * dy[k] + off + slope * (x[k] - mu))
    else:
        for k in range(K):
            row_grad(dy + k * S, x + k * S, dx + k * S, S, mu, r * w[k], off, slope)


def _gn_forward_kernel(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                       const double[:, ::1] w, const double[:, ::1] b, double eps,
                       bint center, double[:, ::1] mean, double[:, ::1] rstd, int nt):
    cdef Py_ssize_t G = x.shape[1], K = x.shape[2], S = x.shape[3], row, n, g
    for row in prange(x.shape[0] * G, nogil=True, num_threads=nt, schedule='static'):
        n = row // G
        g = row % G
        gn_forward_row(&x[n, g, 0, 0], &y[n, g, 0, 0], K, S, &w[g, 0], &b[g, 0],
                       eps, center, &mean[n, g], &rstd[n, g])


def _gn_backward_kernel(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
                        floating[:, :, :, ::1] dx, const double[:, ::1] w,
                        const double[:, ::1] mean, const double[:, ::1] rstd,
                        bint center, double[:, :, ::1] partial,
                        double[:, ::1] scratch, int nt):
    cdef Py_ssize_t G = x.shape[1], K = x.shape[2], S = x.shape[3], row, n, g
    cdef int tid
    for row in prange(x.shape[0] * G, nogil=True, num_threads=nt, schedule='static'):
        n = row // G
        g = row % G
        tid = threadid()
        gn_backward_row(&dy[n, g, 0, 0], &x[n, g, 0, 0], &dx[n, g, 0, 0], K, S,
                        &w[g, 0], mean[n, g], rstd[n, g], center,
                        &partial[tid, 0, g * K], &partial[tid, 1, g * K],
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


def _channel_table(C, weight, bias=None, mean=None, rstd=None):
    """The (TABLE_ROWS, C) float64 batch-norm table with the given rows set."""
    tab = np.zeros((TABLE_ROWS, C))
    tab[T_W] = 1.0 if weight is None else weight
    for row, values in ((T_B, bias), (T_MEAN, mean), (T_RSTD, rstd)):
        if values is not None:
            tab[row] = values
    return tab


def batch_norm_forward(x, weight, bias, eps):
    """See minigrad.backend.reference.norm.batch_norm_forward."""
    if not _compiled_dtype(x):
        return _ref.batch_norm_forward(np, x, weight, bias, eps)
    x = np.ascontiguousarray(x)
    tab = _channel_table(x.shape[1], weight, bias)
    y = np.empty_like(x)
    _bn_forward_kernel(x, y, float(eps), tab, *_bn_blocks(x.size, x.shape[1], x.shape[2]))
    return y, tab[T_MEAN].astype(x.dtype), tab[T_VAR].astype(x.dtype), tab[T_RSTD].astype(x.dtype)


def batch_norm_apply(x, mean, rstd, weight, bias):
    """See minigrad.backend.reference.norm.batch_norm_apply."""
    if not _compiled_dtype(x):
        return _ref.batch_norm_apply(np, x, mean, rstd, weight, bias)
    x = np.ascontiguousarray(x)
    tab = _channel_table(x.shape[1], weight, bias, mean, rstd)
    tab[T_A] = tab[T_RSTD] * tab[T_W]
    y = np.empty_like(x)
    _bn_affine_kernel(x, y, tab, *_bn_blocks(x.size, x.shape[1], x.shape[2]))
    return y


def batch_norm_backward(dy, x, mean, rstd, weight, batch_stats):
    """See minigrad.backend.reference.norm.batch_norm_backward."""
    if not _compiled_dtype(x, dy):
        return _ref.batch_norm_backward(np, dy, x, mean, rstd, weight, batch_stats)
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy)
    tab = _channel_table(x.shape[1], weight, None, mean, rstd)
    dx = np.empty_like(x)
    need_sums = bool(batch_stats) or weight is not None
    _bn_backward_kernel(dy, x, dx, bool(batch_stats), need_sums, tab,
                        *_bn_blocks(x.size, x.shape[1], x.shape[2]))
    if weight is None:
        return dx, None, None
    dweight = tab[T_SUM2] * tab[T_RSTD]
    return dx, dweight.astype(weight.dtype), tab[T_SUM1].astype(weight.dtype)


def _member_table(values, G, K, fill):
    """Per-(g, k) float64 coefficients (G, K); `fill` everywhere when None."""
    if values is None:
        return np.full((G, K), fill)
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(G, K))


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
                       _member_table(weight, G, K, 1.0), _member_table(bias, G, K, 0.0),
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
    # per-thread partial sums of dweight (index 0) and dbias (index 1)
    partial = np.zeros((nt, 2, G * K))
    _gn_backward_kernel(_segments(dy, per_member), _segments(x, per_member),
                        _segments(dx, per_member), _member_table(weight, G, K, 1.0),
                        np.ascontiguousarray(mean.reshape(N, G)),
                        np.ascontiguousarray(np.asarray(rstd, dtype=np.float64).reshape(N, G)),
                        bool(subtract_mean), partial,
                        np.empty((nt, 2 * K)), nt)
    if weight is None:
        return dx, None, None
    dweight, dbias = partial.sum(axis=0).reshape(2, G, K)
    return dx, dweight.astype(weight.dtype), dbias.astype(weight.dtype)
