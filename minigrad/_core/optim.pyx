"""Fused in-place optimizer updates (compiled versions of reference/optim.py).

Each step reads param, grad and the state once and writes param and the state
once, element by element, with no temporaries (a gradient that is not
C-contiguous is first copied into one that is). The arithmetic is done in the
parameter's dtype in the reference's order of operations, so results match it.
Large parameters are split across OpenMP threads. Inputs outside the fast path
(other dtypes, state that is not C-contiguous and writable) go to the reference.
"""
cimport numpy as cnp
from cython.parallel cimport prange

import numpy as np

from minigrad.backend.reference import optim as _ref
from minigrad.backend.reference.optim import adagrad_lr, adam_scalars

from minigrad._core.arrays cimport data_of as _data

cnp.import_array()

cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN
    int mg_max_threads() noexcept nogil
    int mg_workers_spin() noexcept nogil

ctypedef fused floating:
    float
    double

# Below this many elements one thread does the work (see parallel.h).
# Light, memory-bound updates: a second thread pays from 4 * MG_PARALLEL_MIN
# elements where idle workers sleep, and from 32k where they spin (an mlp
# step whose 131k- and 401k-element weights update on two threads took
# 0.87-0.98x the time in paired runs; SGD alone on 32k elements 0.83x, on
# 401k 0.65x).
cdef Py_ssize_t PARALLEL_MIN = (1 << 15) if mg_workers_spin() else 4 * MG_PARALLEL_MIN


cdef inline int _threads(Py_ssize_t n) noexcept nogil:
    return 1 if n < PARALLEL_MIN else mg_max_threads()


# ---------------------------------------------------------------- argument checks

cdef bint _same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int d, nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_NDIM(b) != nd:
        return False
    for d in range(nd):
        if cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d):
            return False
    return True


cdef int _fast_type(param, grad, states):
    """The numpy type number (float32/float64) of the compiled path, or -1 when
    the reference must run: param and every state array must be writable,
    C-contiguous, of one float dtype and param's shape; grad of that dtype and
    shape, any layout."""
    if not isinstance(param, cnp.ndarray) or not isinstance(grad, cnp.ndarray):
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>param)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        return -1
    if cnp.PyArray_TYPE(<cnp.ndarray>grad) != t or not _same_shape(param, grad):
        return -1
    for a in (param,) + states:
        if (not isinstance(a, cnp.ndarray)
                or cnp.PyArray_TYPE(<cnp.ndarray>a) != t
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)
                or not _same_shape(param, a)):
            return -1
    return t


# ---------------------------------------------------------------- kernels
# The element loops are C, compiled for AVX-512, AVX2 and baseline (vecmath.h),
# each over one thread's span [lo, hi): the option flags are fixed for the
# loop, and the compiler makes a vector loop of each case. The kernels take
# raw pointers: typed memoryviews cost about 0.5 us each to acquire, which is
# most of a small parameter's update (the checks above have already made every
# array C-contiguous and of the kernel's type). Hyperparameters arrive as
# Python-level doubles and are rounded once to the element type, exactly as
# numpy rounds a Python float against a float32 array.

cdef extern from *:
    """
    #include "vecmath.h"

    /* No fused multiply-adds: every rounding as in the reference, so that a
       long run of updates stays on the reference's trajectory (FMA would
       not make these memory-bound loops faster). */
    #if defined(__GNUC__) && !defined(__clang__)
    #define MG_EXACT_ROUNDING __attribute__((optimize("fp-contract=off")))
    #elif defined(__clang__)
    #define MG_EXACT_ROUNDING
    #pragma clang fp contract(off)
    #else
    #define MG_EXACT_ROUNDING
    #endif

    /* (-g if maximize else g) + wd*p for one element (wd == 0 adds nothing) */
    #define MG_GRAD_VALUE(g, p, wd, maximize) \\
        ((wd) != 0 ? (wd) * (p) + ((maximize) ? -(g) : (g)) : ((maximize) ? -(g) : (g)))

    #define MG_DEFINE_OPTIM(SFX, T, SQRT) \\
    MG_CLONES MG_EXACT_ROUNDING static void mg_sgd_##SFX(T *restrict p, const T *restrict g, T *restrict buf, \\
            Py_ssize_t lo, Py_ssize_t hi, double lr_, double momentum_, double dampening_, \\
            double wd_, int use_momentum, int nesterov, int maximize, int first_step) { \\
        const T lr = (T)lr_, momentum = (T)momentum_, keep = (T)(1.0 - dampening_), wd = (T)wd_; \\
        for (Py_ssize_t i = lo; i < hi; i++) { \\
            T gi = MG_GRAD_VALUE(g[i], p[i], wd, maximize); \\
            if (use_momentum) { \\
                const T b = first_step ? gi : momentum * buf[i] + gi * keep; \\
                buf[i] = b; \\
                gi = nesterov ? gi + b * momentum : b; \\
            } \\
            p[i] = p[i] - gi * lr; \\
        } \\
    } \\
    MG_CLONES MG_EXACT_ROUNDING static void mg_adam_##SFX(T *restrict p, const T *restrict g, T *restrict m, \\
            T *restrict v, T *restrict vmax, Py_ssize_t lo, Py_ssize_t hi, double lr_, \\
            double beta1_, double beta2_, double eps_, double wd_, double step_size_, \\
            double bc2_sqrt_, int decoupled, int amsgrad, int maximize) { \\
        const T beta1 = (T)beta1_, keep1 = (T)(1.0 - beta1_); \\
        const T beta2 = (T)beta2_, keep2 = (T)(1.0 - beta2_); \\
        const T eps = (T)eps_, step_size = (T)step_size_, bc2_sqrt = (T)bc2_sqrt_; \\
        const T l2 = decoupled ? (T)0 : (T)wd_, shrink = (T)(1.0 - lr_ * wd_); \\
        const int shrink_param = decoupled && wd_ != 0; \\
        for (Py_ssize_t i = lo; i < hi; i++) { \\
            const T gi = MG_GRAD_VALUE(g[i], p[i], l2, maximize); \\
            const T pi = shrink_param ? p[i] * shrink : p[i]; \\
            const T mi = beta1 * m[i] + gi * keep1; \\
            m[i] = mi; \\
            T vi = beta2 * v[i] + gi * keep2 * gi; \\
            v[i] = vi; \\
            if (amsgrad) { \\
                vi = vmax[i] > vi ? vmax[i] : vi; \\
                vmax[i] = vi; \\
            } \\
            const T denom = SQRT(vi) / bc2_sqrt + eps; \\
            p[i] = pi - mi * step_size / denom; \\
        } \\
    } \\
    MG_CLONES MG_EXACT_ROUNDING static void mg_rmsprop_##SFX(T *restrict p, const T *restrict g, T *restrict sq, \\
            T *restrict ga, T *restrict buf, Py_ssize_t lo, Py_ssize_t hi, double lr_, \\
            double alpha_, double eps_, double wd_, double momentum_, int centered, \\
            int maximize) { \\
        const T lr = (T)lr_, alpha = (T)alpha_, keep = (T)(1.0 - alpha_), eps = (T)eps_; \\
        const T wd = (T)wd_, momentum = (T)momentum_; \\
        const int use_momentum = momentum_ > 0; \\
        for (Py_ssize_t i = lo; i < hi; i++) { \\
            const T gi = MG_GRAD_VALUE(g[i], p[i], wd, maximize); \\
            const T si = alpha * sq[i] + gi * keep * gi; \\
            sq[i] = si; \\
            T avg; \\
            if (centered) { \\
                const T ai = alpha * ga[i] + gi * keep; \\
                ga[i] = ai; \\
                avg = SQRT(si - ai * ai) + eps; \\
            } else { \\
                avg = SQRT(si) + eps; \\
            } \\
            if (use_momentum) { \\
                const T b = momentum * buf[i] + gi / avg; \\
                buf[i] = b; \\
                p[i] = p[i] - b * lr; \\
            } else { \\
                p[i] = p[i] - gi * lr / avg; \\
            } \\
        } \\
    } \\
    MG_CLONES MG_EXACT_ROUNDING static void mg_adagrad_##SFX(T *restrict p, const T *restrict g, \\
            T *restrict ssum, Py_ssize_t lo, Py_ssize_t hi, double clr_, double wd_, \\
            double eps_, int maximize) { \\
        const T clr = (T)clr_, wd = (T)wd_, eps = (T)eps_; \\
        for (Py_ssize_t i = lo; i < hi; i++) { \\
            const T gi = MG_GRAD_VALUE(g[i], p[i], wd, maximize); \\
            const T si = ssum[i] + gi * gi; \\
            ssum[i] = si; \\
            p[i] = p[i] - gi * clr / (SQRT(si) + eps); \\
        } \\
    }

    MG_DEFINE_OPTIM(f32, float, sqrtf)
    MG_DEFINE_OPTIM(f64, double, sqrt)
    """
    void mg_sgd_f32(float* p, const float* g, float* buf, Py_ssize_t lo, Py_ssize_t hi,
                    double lr, double momentum, double dampening, double wd, int use_momentum,
                    int nesterov, int maximize, int first_step) noexcept nogil
    void mg_sgd_f64(double* p, const double* g, double* buf, Py_ssize_t lo, Py_ssize_t hi,
                    double lr, double momentum, double dampening, double wd, int use_momentum,
                    int nesterov, int maximize, int first_step) noexcept nogil
    void mg_adam_f32(float* p, const float* g, float* m, float* v, float* vmax, Py_ssize_t lo,
                     Py_ssize_t hi, double lr, double beta1, double beta2, double eps, double wd,
                     double step_size, double bc2_sqrt, int decoupled, int amsgrad,
                     int maximize) noexcept nogil
    void mg_adam_f64(double* p, const double* g, double* m, double* v, double* vmax,
                     Py_ssize_t lo, Py_ssize_t hi, double lr, double beta1, double beta2,
                     double eps, double wd, double step_size, double bc2_sqrt, int decoupled,
                     int amsgrad, int maximize) noexcept nogil
    void mg_rmsprop_f32(float* p, const float* g, float* sq, float* ga, float* buf, Py_ssize_t lo,
                        Py_ssize_t hi, double lr, double alpha, double eps, double wd,
                        double momentum, int centered, int maximize) noexcept nogil
    void mg_rmsprop_f64(double* p, const double* g, double* sq, double* ga, double* buf,
                        Py_ssize_t lo, Py_ssize_t hi, double lr, double alpha, double eps,
                        double wd, double momentum, int centered, int maximize) noexcept nogil
    void mg_adagrad_f32(float* p, const float* g, float* ssum, Py_ssize_t lo, Py_ssize_t hi,
                        double clr, double wd, double eps, int maximize) noexcept nogil
    void mg_adagrad_f64(double* p, const double* g, double* ssum, Py_ssize_t lo, Py_ssize_t hi,
                        double clr, double wd, double eps, int maximize) noexcept nogil


cdef object _c_contiguous(grad):
    """grad, or a C-contiguous copy of it (the kernels read it as one run)."""
    return grad if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>grad) else np.ascontiguousarray(grad)


cdef inline Py_ssize_t _span(Py_ssize_t n, int threads) noexcept nogil:
    """Elements per thread: whole cache lines (16 floats), so that no two
    threads write to one line."""
    return ((n + threads - 1) // threads + 15) & ~(<Py_ssize_t>15)


cdef void _sgd(floating* p, const floating* g, floating* buf, Py_ssize_t n,
               double lr, double momentum, double dampening, double wd,
               bint use_momentum, bint nesterov, bint maximize,
               bint first_step) noexcept nogil:
    cdef int threads = _threads(n)
    cdef Py_ssize_t c, span = _span(n, threads)
    for c in prange(threads, schedule='static', num_threads=threads):
        if floating is float:
            mg_sgd_f32(p, g, buf, c * span, min(n, (c + 1) * span), lr, momentum, dampening,
                       wd, use_momentum, nesterov, maximize, first_step)
        else:
            mg_sgd_f64(p, g, buf, c * span, min(n, (c + 1) * span), lr, momentum, dampening,
                       wd, use_momentum, nesterov, maximize, first_step)


cdef void _adam(floating* p, const floating* g, floating* m, floating* v,
                floating* vmax, Py_ssize_t n, double lr, double beta1,
                double beta2, double eps, double wd, double step_size,
                double bc2_sqrt, bint decoupled, bint amsgrad,
                bint maximize) noexcept nogil:
    cdef int threads = _threads(n)
    cdef Py_ssize_t c, span = _span(n, threads)
    for c in prange(threads, schedule='static', num_threads=threads):
        if floating is float:
            mg_adam_f32(p, g, m, v, vmax, c * span, min(n, (c + 1) * span), lr, beta1, beta2,
                        eps, wd, step_size, bc2_sqrt, decoupled, amsgrad, maximize)
        else:
            mg_adam_f64(p, g, m, v, vmax, c * span, min(n, (c + 1) * span), lr, beta1, beta2,
                        eps, wd, step_size, bc2_sqrt, decoupled, amsgrad, maximize)


cdef void _rmsprop(floating* p, const floating* g, floating* sq, floating* ga,
                   floating* buf, Py_ssize_t n, double lr, double alpha,
                   double eps, double wd, double momentum, bint centered,
                   bint maximize) noexcept nogil:
    cdef int threads = _threads(n)
    cdef Py_ssize_t c, span = _span(n, threads)
    for c in prange(threads, schedule='static', num_threads=threads):
        if floating is float:
            mg_rmsprop_f32(p, g, sq, ga, buf, c * span, min(n, (c + 1) * span), lr, alpha, eps,
                           wd, momentum, centered, maximize)
        else:
            mg_rmsprop_f64(p, g, sq, ga, buf, c * span, min(n, (c + 1) * span), lr, alpha, eps,
                           wd, momentum, centered, maximize)


cdef void _adagrad(floating* p, const floating* g, floating* ssum, Py_ssize_t n,
                   double clr, double wd, double eps, bint maximize) noexcept nogil:
    cdef int threads = _threads(n)
    cdef Py_ssize_t c, span = _span(n, threads)
    for c in prange(threads, schedule='static', num_threads=threads):
        if floating is float:
            mg_adagrad_f32(p, g, ssum, c * span, min(n, (c + 1) * span), clr, wd, eps, maximize)
        else:
            mg_adagrad_f64(p, g, ssum, c * span, min(n, (c + 1) * span), clr, wd, eps, maximize)


cdef inline double _sumsq_span(const floating[::1] x, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil:
    # Four running sums break the add dependency chain.
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = lo
    while i + 4 <= hi:
        s0 = s0 + <double>x[i] * x[i]
        s1 = s1 + <double>x[i + 1] * x[i + 1]
        s2 = s2 + <double>x[i + 2] * x[i + 2]
        s3 = s3 + <double>x[i + 3] * x[i + 3]
        i = i + 4
    while i < hi:
        s0 = s0 + <double>x[i] * x[i]
        i = i + 1
    return (s0 + s1) + (s2 + s3)


cdef double _sumsq(const floating[::1] x) noexcept nogil:
    cdef Py_ssize_t n = x.shape[0], c, chunk = 1 << 14
    cdef Py_ssize_t nchunks = (n + chunk - 1) // chunk
    cdef double total = 0
    for c in prange(nchunks, schedule='static', num_threads=_threads(n)):
        total += _sumsq_span(x, c * chunk, min(n, (c + 1) * chunk))
    return total


# ---------------------------------------------------------------- entry points

def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening,
             weight_decay, nesterov, maximize, first_step):
    """SGD step on param (and momentum_buffer when momentum != 0), in place."""
    cdef bint use_momentum = momentum != 0
    cdef int t = _fast_type(param, grad, (momentum_buffer,) if use_momentum else ())
    if t < 0:
        return _ref.sgd_step(np, param, grad, momentum_buffer, lr, momentum, dampening,
                             weight_decay, nesterov, maximize, first_step)
    g = _c_contiguous(grad)
    buf = momentum_buffer if use_momentum else param  # unused when no momentum
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if t == cnp.NPY_FLOAT32:
        _sgd[float](<float*>_data(param), <float*>_data(g), <float*>_data(buf), n, lr,
                    momentum, dampening, weight_decay, use_momentum, nesterov, maximize,
                    first_step)
    else:
        _sgd[double](<double*>_data(param), <double*>_data(g), <double*>_data(buf), n, lr,
                     momentum, dampening, weight_decay, use_momentum, nesterov, maximize,
                     first_step)


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr,
              beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    """Adam / AdamW step on param and its moments, in place (step is 1-based)."""
    states = (exp_avg, exp_avg_sq, max_exp_avg_sq) if amsgrad else (exp_avg, exp_avg_sq)
    cdef int t = _fast_type(param, grad, states)
    if t < 0:
        return _ref.adam_step(np, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step,
                              lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
                              maximize)
    step_size, bc2_sqrt = adam_scalars(lr, beta1, beta2, step)
    g = _c_contiguous(grad)
    vmax = max_exp_avg_sq if amsgrad else exp_avg_sq  # unused without amsgrad
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if t == cnp.NPY_FLOAT32:
        _adam[float](<float*>_data(param), <float*>_data(g), <float*>_data(exp_avg),
                     <float*>_data(exp_avg_sq), <float*>_data(vmax), n, lr, beta1, beta2,
                     eps, weight_decay, step_size, bc2_sqrt, decoupled, amsgrad, maximize)
    else:
        _adam[double](<double*>_data(param), <double*>_data(g), <double*>_data(exp_avg),
                      <double*>_data(exp_avg_sq), <double*>_data(vmax), n, lr, beta1, beta2,
                      eps, weight_decay, step_size, bc2_sqrt, decoupled, amsgrad, maximize)


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                 weight_decay, momentum, centered, maximize):
    """RMSprop step on param and its state, in place."""
    states = (square_avg,)
    if centered:
        states += (grad_avg,)
    if momentum > 0:
        states += (momentum_buffer,)
    cdef int t = _fast_type(param, grad, states)
    if t < 0:
        return _ref.rmsprop_step(np, param, grad, square_avg, grad_avg, momentum_buffer,
                                 lr, alpha, eps, weight_decay, momentum, centered, maximize)
    g = _c_contiguous(grad)
    ga = grad_avg if centered else square_avg               # unused when not centered
    buf = momentum_buffer if momentum > 0 else square_avg  # unused without momentum
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if t == cnp.NPY_FLOAT32:
        _rmsprop[float](<float*>_data(param), <float*>_data(g), <float*>_data(square_avg),
                        <float*>_data(ga), <float*>_data(buf), n, lr, alpha, eps,
                        weight_decay, momentum, centered, maximize)
    else:
        _rmsprop[double](<double*>_data(param), <double*>_data(g), <double*>_data(square_avg),
                         <double*>_data(ga), <double*>_data(buf), n, lr, alpha, eps,
                         weight_decay, momentum, centered, maximize)


def adagrad_step(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """Adagrad step on param and state_sum, in place (step is 1-based)."""
    cdef int t = _fast_type(param, grad, (state_sum,))
    if t < 0:
        return _ref.adagrad_step(np, param, grad, state_sum, step, lr, lr_decay,
                                 weight_decay, eps, maximize)
    clr = adagrad_lr(lr, lr_decay, step)
    g = _c_contiguous(grad)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if t == cnp.NPY_FLOAT32:
        _adagrad[float](<float*>_data(param), <float*>_data(g), <float*>_data(state_sum), n,
                        clr, weight_decay, eps, maximize)
    else:
        _adagrad[double](<double*>_data(param), <double*>_data(g), <double*>_data(state_sum),
                         n, clr, weight_decay, eps, maximize)


def sum_of_squares(x):
    """sum(x**2) over all elements of x, accumulated in float64; returns a float."""
    if not isinstance(x, cnp.ndarray):
        return _ref.sum_of_squares(np, x)
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        return _ref.sum_of_squares(np, x)
    # The order of summation is free, so any contiguous layout is read as is.
    cdef cnp.ndarray a = x
    flat = x.ravel(order="K") if cnp.PyArray_ISONESEGMENT(a) else x.ravel()
    if t == cnp.NPY_FLOAT32:
        return _sumsq[float](flat)
    return _sumsq[double](flat)
