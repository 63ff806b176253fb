"""Compiled im2col/col2im and 2-d pooling kernels (float32 and float64).

Same names, arguments and results as minigrad.backend.reference.conv, without
the leading `xp`. Every kernel works plane by plane: an (N, C, H, W) array is
seen as N*C independent (H, W) planes, and OpenMP threads each own whole
planes (and the matching block of the output), so scatters need no atomics
and writes stay contiguous. Other dtypes, and empty arrays, go to the
reference with numpy.
"""
import numpy as np
cimport numpy as cnp

from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY

from minigrad._core.arrays cimport thread_rows
from minigrad.backend.reference import conv as _ref

cnp.import_array()

__all__ = list(_ref.__all__)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int minigrad_conv_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int minigrad_conv_max_threads(void) { return 1; }
    #endif
    """
    int minigrad_conv_max_threads() noexcept nogil

cdef extern from *:
    """
    /* Feature-map rows are short (tens of values): a memcpy or memset call
       per row costs more than the copy itself, and GCC turns plain copy
       loops back into such calls unless told not to. */
    #if defined(__GNUC__) && !defined(__clang__)
    #define MG_PLAIN_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
    #else
    #define MG_PLAIN_LOOPS
    #endif

    /* frame (fr x fc) = the plane img (H x W) placed at (ph, pw) in zeros,
       cut to the rows and columns that windows reach. */
    #define MG_DEFINE_UNFOLD(SFX, T) \
    MG_PLAIN_LOOPS static void mg_frame_fill_##SFX(const T *img, Py_ssize_t H, Py_ssize_t W, \
            Py_ssize_t ph, Py_ssize_t pw, T *frame, Py_ssize_t fr, Py_ssize_t fc) { \
        const Py_ssize_t lo = pw < fc ? pw : fc, hi = pw + W < fc ? pw + W : fc; \
        for (Py_ssize_t y = 0; y < fr; y++) { \
            T *dst = frame + y * fc; \
            const Py_ssize_t h = y - ph; \
            if (h < 0 || h >= H) { \
                for (Py_ssize_t x = 0; x < fc; x++) dst[x] = (T)0; \
                continue; \
            } \
            const T *src = img + h * W - pw; \
            for (Py_ssize_t x = 0; x < lo; x++) dst[x] = (T)0; \
            for (Py_ssize_t x = lo; x < hi; x++) dst[x] = src[x]; \
            for (Py_ssize_t x = hi; x < fc; x++) dst[x] = (T)0; \
        } \
    } \
    /* The kh*kw column rows of one plane and its frame: row (i, j) starts \
       at cols + (i*kw + j)*kstride and holds the oh*ow window values. \
       im2col copies them out of the frame; its adjoint (`fold`) sums them \
       into a zeroed frame, in the order im2col wrote them. */ \
    MG_PLAIN_LOOPS static void mg_frame_rows_##SFX(T *frame, Py_ssize_t fr, Py_ssize_t fc, \
            T *cols, Py_ssize_t kstride, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, \
            Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t oh, Py_ssize_t ow, int fold) { \
        if (fold) \
            for (Py_ssize_t t = 0; t < fr * fc; t++) frame[t] = (T)0; \
        for (Py_ssize_t i = 0; i < kh; i++) \
            for (Py_ssize_t j = 0; j < kw; j++) \
                for (Py_ssize_t oy = 0; oy < oh; oy++) { \
                    T *f = frame + (oy * sh + i * dh) * fc + j * dw; \
                    T *c = cols + (i * kw + j) * kstride + oy * ow; \
                    if (fold && sw == 1) \
                        for (Py_ssize_t ox = 0; ox < ow; ox++) f[ox] += c[ox]; \
                    else if (fold) \
                        for (Py_ssize_t ox = 0; ox < ow; ox++) f[ox * sw] += c[ox]; \
                    else if (sw == 1) \
                        for (Py_ssize_t ox = 0; ox < ow; ox++) c[ox] = f[ox]; \
                    else \
                        for (Py_ssize_t ox = 0; ox < ow; ox++) c[ox] = f[ox * sw]; \
                } \
    } \
    /* The plane cut out of a folded frame; pixels no window reaches get 0. */ \
    MG_PLAIN_LOOPS static void mg_frame_cut_##SFX(const T *frame, Py_ssize_t fr, Py_ssize_t fc, \
            Py_ssize_t ph, Py_ssize_t pw, T *img, Py_ssize_t H, Py_ssize_t W) { \
        for (Py_ssize_t h = 0; h < H; h++) { \
            T *dst = img + h * W; \
            const Py_ssize_t y = h + ph; \
            const Py_ssize_t hi = y >= fr ? 0 : fc - pw < W ? (fc - pw > 0 ? fc - pw : 0) : W; \
            const T *src = frame + y * fc + pw; \
            for (Py_ssize_t w = 0; w < hi; w++) dst[w] = src[w]; \
            for (Py_ssize_t w = hi; w < W; w++) dst[w] = (T)0; \
        } \
    } \
    /* im2col of one plane through its zero-padded frame (every column row \
       is then a plain strided copy, with no bounds to test), or with `fold` \
       the adjoint: the rows summed into the frame, the plane cut out of it. */ \
    static void mg_frame_plane_##SFX(T *img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, \
            Py_ssize_t pw, T *frame, Py_ssize_t fr, Py_ssize_t fc, T *cols, Py_ssize_t kstride, \
            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, \
            Py_ssize_t dw, Py_ssize_t oh, Py_ssize_t ow, int fold) { \
        if (!fold) mg_frame_fill_##SFX(img, H, W, ph, pw, frame, fr, fc); \
        mg_frame_rows_##SFX(frame, fr, fc, cols, kstride, kh, kw, sh, sw, dh, dw, oh, ow, fold); \
        if (fold) mg_frame_cut_##SFX(frame, fr, fc, ph, pw, img, H, W); \
    }

    MG_DEFINE_UNFOLD(f32, float)
    MG_DEFINE_UNFOLD(f64, double)
    """
    void mg_frame_plane_f32(float* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,
                            float* frame, Py_ssize_t fr, Py_ssize_t fc, float* cols,
                            Py_ssize_t kstride, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                            Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t oh,
                            Py_ssize_t ow, int fold) noexcept nogil
    void mg_frame_plane_f64(double* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,
                            double* frame, Py_ssize_t fr, Py_ssize_t fc, double* cols,
                            Py_ssize_t kstride, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                            Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t oh,
                            Py_ssize_t ow, int fold) noexcept nogil


cdef extern from *:
    """
    #include "vecmath.h"
    /* MaxPool2d(2) of one plane whose windows all lie inside it: output t's
       window starts at plane offset corner[t] (one table for every plane).
       The loop runs over the plane's outputs, not row by row, because rows
       of outputs are often shorter than a vector (7 in a 14x14 plane): the
       candidates are loaded by offset instead. Candidates in row-major
       order; PyTorch's rule: a larger value or a NaN replaces the maximum. */
    #define MG_DEFINE_MAX_POOL_2X2(SFX, T) \\
    MG_CLONES static void mg_max_pool_2x2_##SFX(const T *restrict x, T *restrict y, \\
            int64_t *restrict arg, Py_ssize_t n, Py_ssize_t W, const int32_t *restrict corner) { \\
        const int32_t w = (int32_t)W; \\
        for (Py_ssize_t t = 0; t < n; t++) { \\
            const int32_t o = corner[t]; \\
            T best = x[o], v; \\
            int32_t at = o; \\
            int take; \\
            v = x[o + 1]; take = (v > best) | (v != v); \\
            best = take ? v : best; at = take ? o + 1 : at; \\
            v = x[o + w]; take = (v > best) | (v != v); \\
            best = take ? v : best; at = take ? o + w : at; \\
            v = x[o + w + 1]; take = (v > best) | (v != v); \\
            best = take ? v : best; at = take ? o + w + 1 : at; \\
            y[t] = best; \\
            arg[t] = at; \\
        } \\
    }
    MG_DEFINE_MAX_POOL_2X2(f32, float)
    MG_DEFINE_MAX_POOL_2X2(f64, double)
    """
    void mg_max_pool_2x2_f32(const float* x, float* y, int64_t* arg, Py_ssize_t n, Py_ssize_t W,
                             const int32_t* corner) noexcept nogil
    void mg_max_pool_2x2_f64(const double* x, double* y, int64_t* arg, Py_ssize_t n, Py_ssize_t W,
                             const int32_t* corner) noexcept nogil


cdef extern from *:
    """
    #include "blocksum.h"
    /* The sum of a run of n values, in lanes of T folded into double. */
    #define MG_DEFINE_RUN_SUM(SFX, T) \\
    MG_CLONES static double mg_run_sum_##SFX(const T *restrict x, Py_ssize_t n) { \\
        double total; \\
        MG_SUM_T(T, SFX, n, total, x[k]); \\
        return total; \\
    }
    MG_DEFINE_RUN_SUM(f32, float)
    MG_DEFINE_RUN_SUM(f64, double)
    """
    double mg_run_sum_f32(const float* x, Py_ssize_t n) noexcept nogil
    double mg_run_sum_f64(const double* x, Py_ssize_t n) noexcept nogil


ctypedef fused real:
    float
    double

cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN

# Below this many elements of work, starting threads costs more than it saves
# (the kernels here are copies and compares: light work, see parallel.h).
cdef Py_ssize_t PARALLEL_GRAIN = 4 * MG_PARALLEL_MIN


cdef int _threads(Py_ssize_t work) noexcept nogil:
    return 1 if work < PARALLEL_GRAIN else minigrad_conv_max_threads()


ctypedef struct Axis:
    # One spatial axis of a sliding window: image size, kernel, stride,
    # padding, dilation, number of outputs.
    Py_ssize_t size, k, s, p, d, n_out


ctypedef struct Boxes:
    # Box windows along one axis: output t covers [start[t], end[t]).
    const int64_t* start
    const int64_t* end


def _axis(size, k, s, p, d, n_out):
    return dict(size=size, k=k, s=s, p=p, d=d, n_out=n_out)


cdef inline void _inside(Py_ssize_t offset, Py_ssize_t step, Py_ssize_t size,
                         Py_ssize_t count, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """[lo, hi): the t in [0, count) with 0 <= offset + t*step < size."""
    cdef Py_ssize_t a = 0, b = 0
    if offset < 0:
        a = (step - 1 - offset) // step
    if offset < size:
        b = (size - 1 - offset) // step + 1
    a = min(a, count)
    b = max(min(b, count), a)
    lo[0] = a
    hi[0] = b


# ---------------------------------------------------------------- im2col

cdef inline Py_ssize_t _plane(Py_ssize_t q, Py_ssize_t n, Py_ssize_t c, bint merged) noexcept nogil:
    """Plane visited at step q. Merged columns are channel-major, so the
    walk goes sample by sample within a channel to write them in order."""
    return (q % n) * c + q // n if merged else q


cdef inline Py_ssize_t _block(Py_ssize_t p, Py_ssize_t n, Py_ssize_t c, Py_ssize_t kk,
                              Py_ssize_t length, bint merged) noexcept nogil:
    """Offset of plane p's first column row: (n, c*kk, length) layout, or
    merged (c*kk, n*length) where plane p = (sample p // c, channel p % c)."""
    if merged:
        return ((p % c) * kk * n + p // c) * length
    return p * kk * length


cdef inline void _frame_plane(real* img, real* frame, real* cols, Py_ssize_t kstride, Axis r,
                              Axis c, Py_ssize_t fr, Py_ssize_t fc, bint fold) noexcept nogil:
    if real is float:
        mg_frame_plane_f32(img, r.size, c.size, r.p, c.p, frame, fr, fc, cols, kstride, r.k, c.k,
                           r.s, c.s, r.d, c.d, r.n_out, c.n_out, fold)
    else:
        mg_frame_plane_f64(img, r.size, c.size, r.p, c.p, frame, fr, fc, cols, kstride, r.k, c.k,
                           r.s, c.s, r.d, c.d, r.n_out, c.n_out, fold)


cdef inline Py_ssize_t _frame_extent(Axis a) noexcept nogil:
    """Padded rows (or columns) that windows reach along one axis: the frame's size."""
    return (a.n_out - 1) * a.s + (a.k - 1) * a.d + 1


def _frames_run(const real[:, :, ::1] planes, const real[::1] cols, Py_ssize_t n, Axis r, Axis c,
                bint merged, bint fold):
    """im2col (planes -> cols) or, with `fold`, col2im (cols -> planes). Both
    views are const so that either may be a read-only input; the one written
    is always a fresh array."""
    cdef Py_ssize_t q, p, kk = r.k * c.k, length = r.n_out * c.n_out
    cdef Py_ssize_t channels = planes.shape[0] // n
    cdef Py_ssize_t kstride = n * length if merged else length
    cdef Py_ssize_t fr = _frame_extent(r), fc = _frame_extent(c)
    cdef int nt = _threads(cols.shape[0])
    cdef real[:, ::1] frames = thread_rows(nt, fr * fc, cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64)
    for q in prange(planes.shape[0], nogil=True, schedule="static", num_threads=nt):
        p = _plane(q, n, channels, merged)
        _frame_plane(<real*>&planes[p, 0, 0], &frames[threadid(), 0],
                     <real*>&cols[_block(p, n, channels, kk, length, merged)], kstride, r, c,
                     fr, fc, fold)


# ---------------------------------------------------------------- max pooling

cdef inline void _max_row(const real* line, Py_ssize_t step, Py_ssize_t n, real k,
                          real* best, real* won) noexcept nogil:
    """One kernel offset (number k) for a run of n outputs, candidate t being
    line[t*step]. PyTorch's rule: a larger value or a NaN replaces the
    running maximum. Written without branches, and with the winner kept in
    the value's own type, so that the compiler vectorizes it."""
    cdef Py_ssize_t t
    cdef real v, b, a
    cdef bint take
    for t in range(n):
        v = line[t * step]
        b = best[t]
        a = won[t]
        take = (v > b) | (v != v)
        best[t] = v if take else b
        won[t] = k if take else a


cdef void _max_pool_plane(const real* x, real* y, int64_t* arg, real* won,
                          const int64_t* shift, Axis r, Axis c) noexcept nogil:
    """Max pooling of one plane, a row of outputs at a time: each kernel
    offset, in row-major window order, updates the whole row. won: scratch
    row of ow values, the number i*kw + j of each output's winning offset
    (exact in float32: kernels are far smaller than 2**24). shift[k]: the
    plane offset of kernel offset k from the window's corner (a table, as a
    division per output would cost more than the pooling itself)."""
    cdef Py_ssize_t oy, ox, i, j, k, h0, h, w0, ilo, ihi, jlo, jhi, lo, hi
    cdef real* best
    cdef int64_t* at
    for oy in range(r.n_out):
        best = y + oy * c.n_out
        at = arg + oy * c.n_out
        h0 = oy * r.s - r.p
        _inside(h0, r.d, r.size, r.k, &ilo, &ihi)
        for ox in range(c.n_out):
            best[ox] = -INFINITY
            won[ox] = -1
        for i in range(ilo, ihi):
            h = h0 + i * r.d
            for j in range(c.k):
                w0 = j * c.d - c.p
                _inside(w0, c.s, c.size, c.n_out, &lo, &hi)
                # constant strides vectorize (unit, or 2 as paired loads)
                if c.s == 1:
                    _max_row(x + h * c.size + w0 + lo, 1, hi - lo, i * c.k + j,
                             best + lo, won + lo)
                elif c.s == 2:
                    _max_row(x + h * c.size + w0 + lo * 2, 2, hi - lo, i * c.k + j,
                             best + lo, won + lo)
                else:
                    _max_row(x + h * c.size + w0 + lo * c.s, c.s, hi - lo, i * c.k + j,
                             best + lo, won + lo)
        for ox in range(c.n_out):
            w0 = ox * c.s - c.p
            k = <Py_ssize_t>won[ox]
            if k >= 0:
                at[ox] = h0 * c.size + w0 + shift[k]
            else:
                # Nothing beat -inf: the window's first position past the
                # leading padding, as PyTorch reports it.
                _inside(w0, c.d, c.size, c.k, &jlo, &jhi)
                at[ox] = (h0 + ilo * r.d) * c.size + w0 + jlo * c.d


cdef bint _is_2x2(Axis r, Axis c) noexcept nogil:
    return (r.k == 2 and c.k == 2 and r.s == 2 and c.s == 2 and r.p == 0 and c.p == 0
            and r.d == 1 and c.d == 1 and 2 * r.n_out <= r.size and 2 * c.n_out <= c.size)


def _max_pool_run(const real[:, :, ::1] x, real[:, :, ::1] y, int64_t[:, :, ::1] arg,
                  Axis r, Axis c):
    cdef Py_ssize_t p
    cdef int nt = _threads(y.shape[0] * y.shape[1] * y.shape[2] * r.k * c.k)
    cdef Py_ssize_t n = r.n_out * c.n_out
    cdef int32_t[::1] corner
    if _is_2x2(r, c) and r.size * c.size < 2 ** 31 - 1:
        # output t's window starts at plane offset corner[t]
        corner = (2 * c.size * np.arange(r.n_out)[:, None]
                  + 2 * np.arange(c.n_out)[None, :]).astype(np.int32).reshape(-1)
        for p in prange(x.shape[0], nogil=True, schedule="static", num_threads=nt):
            if real is float:
                mg_max_pool_2x2_f32(&x[p, 0, 0], &y[p, 0, 0], &arg[p, 0, 0], n, c.size, &corner[0])
            else:
                mg_max_pool_2x2_f64(&x[p, 0, 0], &y[p, 0, 0], &arg[p, 0, 0], n, c.size, &corner[0])
        return
    cdef real[:, ::1] won = thread_rows(nt, c.n_out, cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64)
    cdef int64_t[::1] shift = (np.arange(r.k)[:, None] * (r.d * c.size)
                               + np.arange(c.k)[None, :] * c.d).astype(np.int64).reshape(-1)
    for p in prange(x.shape[0], nogil=True, schedule="static", num_threads=nt):
        _max_pool_plane(&x[p, 0, 0], &y[p, 0, 0], &arg[p, 0, 0], &won[threadid(), 0], &shift[0], r, c)


cdef void _route_plane(const real* dy, const int64_t* arg, real* dx,
                       Py_ssize_t n_out, Py_ssize_t n_in) noexcept nogil:
    """Add dy[t] to dx[arg[t]]; indices outside the plane (windows without
    any image element) pass nothing."""
    cdef Py_ssize_t t
    cdef int64_t k
    memset(dx, 0, n_in * sizeof(real))
    for t in range(n_out):
        k = arg[t]
        if 0 <= k < n_in:
            dx[k] += dy[t]


def _max_unpool_run(const real[:, ::1] dy, const int64_t[:, ::1] arg, real[:, ::1] dx):
    cdef Py_ssize_t p
    cdef int nt = _threads(dy.shape[0] * (dy.shape[1] + dx.shape[1]))
    for p in prange(dy.shape[0], nogil=True, schedule="static", num_threads=nt):
        _route_plane(&dy[p, 0], &arg[p, 0], &dx[p, 0], dy.shape[1], dx.shape[1])


# ---------------------------------------------------------------- box averages

# Box windows factor over the axes: for each output row, sum the image rows
# of its box (a unit-stride loop across the whole width, which vectorizes),
# then sum short runs of that float64 row. The gradient is the same kernel
# run on dy / divisor over the transposed windows (see _containing).

cdef inline double _sum(const double* a, Py_ssize_t n) noexcept nogil:
    """Sum with two accumulators (long runs, as in global pooling, would
    otherwise wait on one chain of dependent adds)."""
    cdef double s0 = 0.0, s1 = 0.0
    cdef Py_ssize_t t = 0
    while t + 2 <= n:
        s0 += a[t]
        s1 += a[t + 1]
        t += 2
    if t < n:
        s0 += a[t]
    return s0 + s1


cdef void _box_mean_plane(const real* x, real* y, Boxes r, Boxes c, Py_ssize_t W,
                          Py_ssize_t oh, Py_ssize_t ow, const double* inv,
                          double* colsum) noexcept nogil:
    """y[oy, ox] = sum of x over the box * inv[oy, ox] (inv: reciprocal
    divisors, as a division per output would dominate). colsum: W doubles
    of scratch."""
    cdef Py_ssize_t h, w, oy, ox
    cdef const real* line
    for oy in range(oh):
        memset(colsum, 0, W * sizeof(double))
        for h in range(r.start[oy], r.end[oy]):
            line = x + h * W
            for w in range(W):
                colsum[w] += line[w]
        for ox in range(ow):
            y[oy * ow + ox] = <real>(_sum(colsum + c.start[ox], c.end[ox] - c.start[ox])
                                     * inv[oy * ow + ox])


cdef Boxes _boxes(const int64_t[::1] start, const int64_t[::1] end) noexcept nogil:
    cdef Boxes b
    b.start = &start[0]
    b.end = &end[0]
    return b


cdef void _avg_pool_plane_2x2(const real* x, real* y, Py_ssize_t W, Py_ssize_t oh,
                              Py_ssize_t ow) noexcept nogil:
    """AvgPool2d(2) on one plane, all windows inside: the box kernel's sums in
    the box kernel's order (column pairs, then the two columns, in double),
    without its per-row scratch pass."""
    cdef Py_ssize_t oy, ox
    cdef const real* r0
    cdef const real* r1
    for oy in range(oh):
        r0 = x + 2 * oy * W
        r1 = r0 + W
        for ox in range(ow):
            y[oy * ow + ox] = <real>((((<double>r0[2 * ox]) + r1[2 * ox])
                                      + ((<double>r0[2 * ox + 1]) + r1[2 * ox + 1])) * 0.25)


cdef void _avg_unpool_plane_2x2(const real* dy, real* dx, Py_ssize_t H, Py_ssize_t W,
                                Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """Its gradient: dy / 4 to each pixel of the window (the quotient the box
    path rounds to), 0 on the rows and columns no window covers."""
    cdef Py_ssize_t oy, ox, h, w
    cdef real q
    cdef real* row
    for h in range(H):
        row = dx + h * W
        if h >= 2 * oh:
            for w in range(W):
                row[w] = 0
            continue
        oy = h // 2
        for ox in range(ow):
            q = dy[oy * ow + ox] * <real>0.25
            row[2 * ox] = q
            row[2 * ox + 1] = q
        for w in range(2 * ow, W):
            row[w] = 0


def _avg_pool_2x2_run(const real[:, :, ::1] src, real[:, :, ::1] dst, bint backward):
    """AvgPool2d(2) of every plane (x -> y), or its gradient (dy -> dx)."""
    cdef Py_ssize_t p
    cdef Py_ssize_t big_h = dst.shape[1] if backward else src.shape[1]
    cdef Py_ssize_t big_w = dst.shape[2] if backward else src.shape[2]
    cdef Py_ssize_t oh = src.shape[1] if backward else dst.shape[1]
    cdef Py_ssize_t ow = src.shape[2] if backward else dst.shape[2]
    cdef int nt = _threads(src.shape[0] * big_h * big_w)
    for p in prange(src.shape[0], nogil=True, schedule="static", num_threads=nt):
        if backward:
            _avg_unpool_plane_2x2(&src[p, 0, 0], &dst[p, 0, 0], big_h, big_w, oh, ow)
        else:
            _avg_pool_plane_2x2(&src[p, 0, 0], &dst[p, 0, 0], big_w, oh, ow)


def _box_mean_run(const real[:, :, ::1] x, real[:, :, ::1] y, rows, cols,
                  const double[:, ::1] inv):
    """Box means of every plane of x (P, H, W) into y (P, oh, ow).
    rows, cols: (start, end) int64 arrays of the two axes."""
    cdef Boxes r = _boxes(rows[0], rows[1])
    cdef Boxes c = _boxes(cols[0], cols[1])
    cdef Py_ssize_t p, W = x.shape[2], oh = y.shape[1], ow = y.shape[2]
    cdef int nt = _threads(x.shape[0] * (x.shape[1] * W + oh * ow))
    cdef double[:, ::1] scratch = thread_rows(nt, W, cnp.NPY_FLOAT64)
    for p in prange(x.shape[0], nogil=True, schedule="static", num_threads=nt):
        _box_mean_plane(&x[p, 0, 0], &y[p, 0, 0], r, c, W, oh, ow, &inv[0, 0],
                        &scratch[threadid(), 0])


def _plane_mean_run(const real[:, ::1] x, real[::1] y):
    """y[p] = mean of row p of x: global pooling, one contiguous run per plane
    (the box kernel's per-row bookkeeping would cost more than the sums)."""
    cdef Py_ssize_t p, t, n = x.shape[1]
    cdef double s0, s1, s2, s3, inv = 1.0 / n
    cdef int nt = _threads(x.shape[0] * n)
    for p in prange(x.shape[0], nogil=True, schedule="static", num_threads=nt):
        s0 = s1 = s2 = s3 = 0.0
        t = 0
        while t + 4 <= n:
            s0 = s0 + x[p, t]
            s1 = s1 + x[p, t + 1]
            s2 = s2 + x[p, t + 2]
            s3 = s3 + x[p, t + 3]
            t = t + 4
        while t < n:
            s0 = s0 + x[p, t]
            t = t + 1
        y[p] = <real>(((s0 + s1) + (s2 + s3)) * inv)


def _whole_plane(boxes, size):
    """One box covering the axis exactly, divided by its size (a global mean)."""
    start, end, count = boxes[:3]
    return len(start) == 1 and start[0] == 0 and end[0] == size and count[0] == size


def _box_mean(x, rows, cols):
    """x (N, C, H, W) -> (N, C, len(rows[0]), len(cols[0])): sums over the
    boxes divided by rows[2][oy] * cols[2][ox]."""
    n, c, h, w = x.shape
    if _whole_plane(rows, h) and _whole_plane(cols, w):
        y = np.empty((n, c, 1, 1), dtype=x.dtype)
        _plane_mean_run(np.ascontiguousarray(x).reshape(n * c, h * w), y.reshape(-1))
        return y
    y, y_planes = _empty_like_planes(n, c, len(rows[0]), len(cols[0]), x.dtype)
    inv = 1.0 / (rows[2][:, None] * cols[2][None, :]).astype(np.float64)
    _box_mean_run(_planes(x, h, w), y_planes, rows[:2], cols[:2], inv)
    return y


def _containing(boxes, size):
    """Transposed windows: for each of `size` positions, the range [lo, hi)
    of windows that contain it, with count 1. Pooling windows are monotone
    (start and end never decrease), so that range is contiguous."""
    pos = np.arange(size)
    lo = np.searchsorted(boxes[1], pos, side="right").astype(np.int64)
    hi = np.searchsorted(boxes[0], pos, side="right").astype(np.int64)
    return lo, hi, np.ones(size, dtype=np.int64)


def _box_mean_grad(dy, rows, cols, H, W):
    """Gradient of _box_mean: each pixel sums dy / divisor over its windows."""
    g = dy / (rows[2][:, None] * cols[2][None, :]).astype(dy.dtype)
    return _box_mean(g, _containing(rows, H), _containing(cols, W))


# ---------------------------------------------------------------- entry points

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _compiled_for(*arrays):
    """True when the compiled path applies: float32/float64, non-empty."""
    return all(a.dtype in _FLOATS and a.size > 0 for a in arrays)


def _planes(a, h, w):
    """C-contiguous (N*C, h, w) view (or copy) of a 4-d array."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0] * a.shape[1], h, w)


def _empty_like_planes(n, c, h, w, dtype):
    """New (n, c, h, w) array and its (n*c, h, w) view."""
    out = np.empty((n, c, h, w), dtype=dtype)
    return out, out.reshape(n * c, h, w)


def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=False):
    """x (N, C, H, W) -> cols (N, C*kh*kw, oh*ow), or (C*kh*kw, N*oh*ow)
    when merged; see the reference."""
    n, c, h, w = x.shape
    if not (_compiled_for(x) and oh > 0 and ow > 0 and n * c > 0):
        return _ref.im2col(np, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged)
    shape = (c * kh * kw, n * oh * ow) if merged else (n, c * kh * kw, oh * ow)
    cols = np.empty(shape, dtype=x.dtype)
    _frames_run(_planes(x, h, w), cols.reshape(-1), n,
                _axis(h, kh, sh, ph, dh, oh), _axis(w, kw, sw, pw, dw, ow), merged, False)
    return cols


def col2im(cols, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=False):
    """cols (N, C*kh*kw, oh*ow), or (C*kh*kw, N*oh*ow) when merged -> dx
    (N, C, H, W), the adjoint of im2col."""
    if not (_compiled_for(cols) and H > 0 and W > 0 and oh > 0 and ow > 0 and cols.size):
        return _ref.col2im(np, cols, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged)
    if merged:
        n, c = cols.shape[1] // (oh * ow), cols.shape[0] // (kh * kw)
    else:
        n, c = cols.shape[0], cols.shape[1] // (kh * kw)
    dx, dx_planes = _empty_like_planes(n, c, H, W, cols.dtype)
    _frames_run(dx_planes, np.ascontiguousarray(cols).reshape(-1), n,
                _axis(H, kh, sh, ph, dh, oh), _axis(W, kw, sw, pw, dw, ow), merged, True)
    return dx


cdef extern from "panelgemm.h":
    int MG_MR
    int MG_NR
    Py_ssize_t MG_PANEL_SCRATCH(Py_ssize_t M, Py_ssize_t K)
    int mg_panel_gemm_fast()
    ctypedef struct mg_layout:
        Py_ssize_t L, R, S
    void mg_panel_gemm_f32(const float* ap, Py_ssize_t M, Py_ssize_t K, const float* B,
                           mg_layout lb, float* out, mg_layout lo, const float* bias,
                           Py_ssize_t j0, Py_ssize_t j1, float* scratch) noexcept nogil
    void mg_panel_gemm_f64(const double* ap, Py_ssize_t M, Py_ssize_t K, const double* B,
                           mg_layout lb, double* out, mg_layout lo, const double* bias,
                           Py_ssize_t j0, Py_ssize_t j1, double* scratch) noexcept nogil


cdef inline void _panel_gemm(const real* ap, Py_ssize_t M, Py_ssize_t K, const real* b,
                             mg_layout lb, real* out, mg_layout lo, const real* bias,
                             Py_ssize_t j0, Py_ssize_t j1, real* scratch) noexcept nogil:
    if real is float:
        mg_panel_gemm_f32(ap, M, K, b, lb, out, lo, bias, j0, j1, scratch)
    else:
        mg_panel_gemm_f64(ap, M, K, b, lb, out, lo, bias, j0, j1, scratch)


def _panel_run(const real[::1] ap, Py_ssize_t M, Py_ssize_t K, const real[::1] b, mg_layout lb,
               real[::1] out, mg_layout lo, const real[::1] bias, Py_ssize_t N, int nt):
    cdef Py_ssize_t t, j0, j1, blocks = (N + MG_NR - 1) // MG_NR
    cdef real[:, ::1] scratch = thread_rows(nt, MG_PANEL_SCRATCH(M, K),
                                            cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64)
    cdef const real* pbias = NULL if bias is None else &bias[0]
    for t in prange(nt, nogil=True, schedule="static", num_threads=nt):
        j0 = blocks * t // nt * MG_NR
        j1 = min(N, blocks * (t + 1) // nt * MG_NR)
        if j0 < j1:
            _panel_gemm(&ap[0], M, K, &b[0], lb, &out[0], lo, pbias, j0, j1, &scratch[threadid(), 0])


def _pack_panels(a):
    """a (M, K) as the kernel's panels: (ceil(M / MG_MR), K, MG_MR), zero rows past M."""
    m, k = a.shape
    padded = np.zeros(((m + MG_MR - 1) // MG_MR * MG_MR, k), dtype=a.dtype)
    padded[:m] = a
    return np.ascontiguousarray(padded.reshape(-1, MG_MR, k).transpose(0, 2, 1)).reshape(-1)


# The panel kernel beats BLAS only on CPUs with AVX-512 (see panelgemm.h);
# elsewhere panel_matmul is the reference: BLAS and a transposing copy.
PANEL_KERNEL_FAST = bool(mg_panel_gemm_fast())
# ... and only while A stays in a core's L2 cache: every block of B runs over
# all of A (at 1.2 MB, 256 x 1152 floats, BLAS was 1.2-1.3x faster).
PANEL_A_BYTES = 512 << 10


def _panel_fits(a):
    """Whether the panel kernel is the faster way to multiply by a (M, K)."""
    return PANEL_KERNEL_FAST and a.shape[0] * a.shape[1] * a.itemsize <= PANEL_A_BYTES


def _per_sample_threads(m, k, n, length):
    """Threads for n samples' products of (m, k) by (k, length): one sample each."""
    return min(n, _threads(m * k * n * length // 8))


def panel_matmul(a, b, n, length, b_per_sample, out_per_sample, bias=None, always=False):
    """See the reference: a (M, K) @ B (+ bias), B and the result either one
    matrix or one block per sample. `always` (tests) runs the kernel even
    where BLAS is faster (the CPU, or a large A)."""
    m, k = a.shape
    cols = n * length
    if not ((_panel_fits(a) or always) and _compiled_for(a, b) and a.dtype == b.dtype
            and cols > 0 and m > 0 and k > 0 and (bias is None or bias.dtype == a.dtype)):
        return _ref.panel_matmul(np, a, b, n, length, b_per_sample, out_per_sample, bias)
    b = np.ascontiguousarray(b)
    out = np.empty((n, m, length) if out_per_sample else (m, cols), dtype=a.dtype)
    cdef mg_layout lb, lo
    lb.L, lb.R, lb.S = (length, length, k * length) if b_per_sample else (cols, cols, 0)
    lo.L, lo.R, lo.S = (length, length, m * length) if out_per_sample else (cols, cols, 0)
    if bias is not None:
        bias = np.ascontiguousarray(bias).reshape(-1)
    _panel_run(_pack_panels(a), m, k, b.reshape(-1), lb, out.reshape(-1), lo, bias, cols,
               _threads(m * k * cols // 8))
    return out


# Columns one thread makes and folds at a time, at most (in its L2 cache).
FOLD_BLOCK_BYTES = 256 << 10


def _forward_run(const real[::1] ap, Py_ssize_t M, const real[:, :, ::1] x_planes, real[:, :, ::1] y,
                 const real[::1] bias, Axis r, Axis c, int nt):
    """Per sample: its columns (K x L) by im2col, then y[s] = A @ columns
    (+ bias) by the panel kernel while they are still in cache."""
    cdef Py_ssize_t s, ch, t, n = y.shape[0], length = r.n_out * c.n_out
    cdef Py_ssize_t kk = r.k * c.k, channels = x_planes.shape[0] // n, K = channels * kk
    cdef Py_ssize_t fr = _frame_extent(r), fc = _frame_extent(c)
    cdef int typenum = cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64
    cdef real[:, ::1] cols = thread_rows(nt, K * length, typenum)
    cdef real[:, ::1] scratch = thread_rows(nt, MG_PANEL_SCRATCH(M, K), typenum)
    cdef real[:, ::1] frames = thread_rows(nt, fr * fc, typenum)
    cdef const real* pbias = NULL if bias is None else &bias[0]
    cdef mg_layout lay
    lay.L, lay.R, lay.S = length, length, 0
    for s in prange(n, nogil=True, schedule="static", num_threads=nt):
        t = threadid()
        for ch in range(channels):
            _frame_plane(<real*>&x_planes[s * channels + ch, 0, 0], &frames[t, 0],
                         &cols[t, ch * kk * length], length, r, c, fr, fc, False)
        _panel_gemm(&ap[0], M, K, &cols[t, 0], lay, &y[s, 0, 0], lay, pbias, 0, length,
                    &scratch[t, 0])


def conv_forward(w, x, bias, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """See the reference: y (N, O, oh*ow) of a convolution, w (O, C*kh*kw).
    One sample at a time on each thread: its columns are multiplied while in
    cache instead of the whole batch's going through memory."""
    m, k = w.shape
    n, c, h, wd = x.shape
    if not (_panel_fits(w) and _compiled_for(w, x) and w.dtype == x.dtype
            and (bias is None or bias.dtype == w.dtype) and oh > 0 and ow > 0 and n * c > 0):
        return panel_matmul(w, im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=True), n,
                            oh * ow, False, True, bias)
    y = np.empty((n, m, oh * ow), dtype=w.dtype)
    if bias is not None:
        bias = np.ascontiguousarray(bias).reshape(-1)
    _forward_run(_pack_panels(w), m, _planes(x, h, wd), y, bias, _axis(h, kh, sh, ph, dh, oh),
                 _axis(wd, kw, sw, pw, dw, ow), _per_sample_threads(m, k, n, oh * ow))
    return y


def _input_grad_run(const real[::1] ap, Py_ssize_t M, Py_ssize_t K, const real[:, :, ::1] dy,
                    real[:, :, ::1] dx_planes, Axis r, Axis c, int nt):
    """Per sample and group of channels: their columns = their rows of A @
    dy[s] by the panel kernel, then folded into their planes while still in
    cache. A group is a multiple of 8 channels (its rows start a panel)."""
    cdef Py_ssize_t s, ch, g, ch0, ch1, t, n = dy.shape[0], length = r.n_out * c.n_out
    cdef Py_ssize_t kk = r.k * c.k, channels = M // kk
    cdef Py_ssize_t fr = _frame_extent(r), fc = _frame_extent(c)
    cdef Py_ssize_t group = MG_MR * max(1, FOLD_BLOCK_BYTES // (MG_MR * kk * length * sizeof(real)))
    group = min(group, channels)
    cdef int typenum = cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64
    cdef real[:, ::1] cols = thread_rows(nt, group * kk * length, typenum)
    cdef real[:, ::1] scratch = thread_rows(nt, MG_PANEL_SCRATCH(group * kk, K), typenum)
    cdef real[:, ::1] frames = thread_rows(nt, fr * fc, typenum)
    cdef mg_layout lay
    lay.L, lay.R, lay.S = length, length, 0
    for s in prange(n, nogil=True, schedule="static", num_threads=nt):
        t = threadid()
        for g in range((channels + group - 1) // group):
            ch0 = g * group
            ch1 = min(channels, ch0 + group)
            _panel_gemm(&ap[ch0 * kk * K], (ch1 - ch0) * kk, K, &dy[s, 0, 0], lay, &cols[t, 0],
                        lay, NULL, 0, length, &scratch[t, 0])
            for ch in range(ch0, ch1):
                _frame_plane(&dx_planes[s * channels + ch, 0, 0], &frames[t, 0],
                             &cols[t, (ch - ch0) * kk * length], length, r, c, fr, fc, True)


def _channel_sums_run(const real[:, :, ::1] dy, real[::1] out):
    cdef Py_ssize_t c, s
    cdef double acc
    cdef int nt = _threads(dy.shape[0] * dy.shape[1] * dy.shape[2])
    for c in prange(dy.shape[1], nogil=True, schedule="static", num_threads=nt):
        acc = 0.0
        for s in range(dy.shape[0]):
            if real is float:
                acc = acc + mg_run_sum_f32(&dy[s, c, 0], dy.shape[2])
            else:
                acc = acc + mg_run_sum_f64(&dy[s, c, 0], dy.shape[2])
        out[c] = <real>acc


def conv_bias_grad(dy):
    """See the reference; sums in blocks of lanes added in double."""
    if not (_compiled_for(dy) and dy.ndim == 3 and dy.shape[2] > 0):
        return _ref.conv_bias_grad(np, dy)
    out = np.empty(dy.shape[1], dtype=dy.dtype)
    _channel_sums_run(np.ascontiguousarray(dy), out)
    return out


def conv_input_grad(a, dy, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """See the reference: dx of a convolution, a (C*kh*kw, O) the transposed
    weight, dy (N, O, oh*ow). One sample at a time on each thread, so that
    its columns are folded from cache instead of all the batch's columns
    going through memory (written by the product, zeroed first by BLAS, read
    back by col2im)."""
    m, k = a.shape
    n = dy.shape[0]
    if not (_panel_fits(a) and _compiled_for(a, dy) and a.dtype == dy.dtype
            and H > 0 and W > 0 and oh > 0 and ow > 0):
        return col2im(_ref.input_columns(np, a, dy), H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,
                      merged=True)
    c = m // (kh * kw)
    dx, dx_planes = _empty_like_planes(n, c, H, W, a.dtype)
    _input_grad_run(_pack_panels(a), m, k, np.ascontiguousarray(dy), dx_planes,
                    _axis(H, kh, sh, ph, dh, oh),
                    _axis(W, kw, sw, pw, dw, ow), _per_sample_threads(m, k, n, oh * ow))
    return dx


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """x (N, C, H, W) -> (y, int64 indices), both (N, C, oh, ow)."""
    if not (_compiled_for(x) and oh > 0 and ow > 0):
        return _ref.max_pool2d_forward(np, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    n, c, h, w = x.shape
    y, y_planes = _empty_like_planes(n, c, oh, ow, x.dtype)
    arg, arg_planes = _empty_like_planes(n, c, oh, ow, np.int64)
    _max_pool_run(_planes(x, h, w), y_planes, arg_planes,
                  _axis(h, kh, sh, ph, dh, oh), _axis(w, kw, sw, pw, dw, ow))
    return y, arg


def max_pool2d_backward(dy, indices, H, W, window=None):
    """dy (N, C, oh, ow), indices -> dx (N, C, H, W). `window` is not needed:
    threads own whole planes, so the scatter needs no atomics."""
    if not (_compiled_for(dy) and H > 0 and W > 0):
        return _ref.max_pool2d_backward(np, dy, indices, H, W)
    n, c = dy.shape[0], dy.shape[1]
    dx = np.empty((n, c, H, W), dtype=dy.dtype)
    arg = np.ascontiguousarray(indices, dtype=np.int64).reshape(n * c, -1)
    _max_unpool_run(np.ascontiguousarray(dy).reshape(n * c, -1), arg, dx.reshape(n * c, H * W))
    return dx


def _avg_boxes(n_out, size, k, s, p, count_include_pad):
    return _ref.pool_bounds(np, n_out, size, k, s, p, count_include_pad)


def _avg_2x2(kh, kw, sh, sw, ph, pw, oh, ow, h, w):
    """AvgPool2d(2) with every window inside the image (divisor 4 whatever
    count_include_pad says): the dedicated kernels' case."""
    return (kh == kw == sh == sw == 2 and ph == pw == 0 and 2 * oh <= h and 2 * ow <= w
            and oh > 0 and ow > 0)


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """x (N, C, H, W) -> y (N, C, oh, ow); PyTorch's divisor."""
    if not (_compiled_for(x) and oh > 0 and ow > 0):
        return _ref.avg_pool2d_forward(np, x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad)
    n, c, h, w = x.shape
    if _avg_2x2(kh, kw, sh, sw, ph, pw, oh, ow, h, w):
        y, y_planes = _empty_like_planes(n, c, oh, ow, x.dtype)
        _avg_pool_2x2_run(_planes(x, h, w), y_planes, False)
        return y
    return _box_mean(x, _avg_boxes(oh, h, kh, sh, ph, count_include_pad),
                     _avg_boxes(ow, w, kw, sw, pw, count_include_pad))


def avg_pool2d_backward(dy, H, W, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """dy (N, C, oh, ow) -> dx (N, C, H, W)."""
    if not (_compiled_for(dy) and H > 0 and W > 0):
        return _ref.avg_pool2d_backward(np, dy, H, W, kh, kw, sh, sw, ph, pw, oh, ow,
                                        count_include_pad)
    if _avg_2x2(kh, kw, sh, sw, ph, pw, oh, ow, H, W):
        n, c = dy.shape[:2]
        dx, dx_planes = _empty_like_planes(n, c, H, W, dy.dtype)
        _avg_pool_2x2_run(_planes(dy, oh, ow), dx_planes, True)
        return dx
    return _box_mean_grad(dy, _avg_boxes(oh, H, kh, sh, ph, count_include_pad),
                          _avg_boxes(ow, W, kw, sw, pw, count_include_pad), H, W)


def _adaptive_boxes(n_out, size):
    start, end = _ref.adaptive_bounds(np, n_out, size)
    return start, end, end - start


def adaptive_avg_pool2d_forward(x, oh, ow):
    """x (N, C, H, W) -> y (N, C, oh, ow)."""
    if not (_compiled_for(x) and oh > 0 and ow > 0):
        return _ref.adaptive_avg_pool2d_forward(np, x, oh, ow)
    return _box_mean(x, _adaptive_boxes(oh, x.shape[2]), _adaptive_boxes(ow, x.shape[3]))


def adaptive_avg_pool2d_backward(dy, H, W):
    """dy (N, C, oh, ow) -> dx (N, C, H, W)."""
    if not (_compiled_for(dy) and H > 0 and W > 0):
        return _ref.adaptive_avg_pool2d_backward(np, dy, H, W)
    if dy.shape[2] == 1 and dy.shape[3] == 1:  # global pooling: one window holds every pixel
        return np.broadcast_to(dy / dy.dtype.type(H * W), dy.shape[:2] + (H, W)).copy()
    return _box_mean_grad(dy, _adaptive_boxes(dy.shape[2], H), _adaptive_boxes(dy.shape[3], W),
                          H, W)
