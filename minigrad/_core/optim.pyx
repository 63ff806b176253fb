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
from libc.math cimport sqrt

import numpy as np

from minigrad.backend.reference import optim as _ref
from minigrad.backend.reference.optim import adagrad_lr, adam_scalars

from minigrad._core.arrays cimport data_of as _data

cnp.import_array()

cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN
    int mg_max_threads() noexcept nogil

ctypedef fused floating:
    float
    double

# Below this many elements one thread does the work (see parallel.h).
cdef Py_ssize_t PARALLEL_MIN = 4 * MG_PARALLEL_MIN  # light, memory-bound updates


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
# The kernels take raw pointers: typed memoryviews cost about 0.5 us each to
# acquire, which is most of a small parameter's update (the checks above have
# already made every array C-contiguous and of the kernel's type).



cdef object _c_contiguous(grad):
    """grad, or a C-contiguous copy of it (the kernels read it as one run)."""
    return grad if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>grad) else np.ascontiguousarray(grad)

# Hyperparameters arrive as Python-level doubles and are rounded once to the
# element type, exactly as numpy rounds a Python float against a float32 array.

cdef inline floating _grad_value(floating g, floating p, floating wd,
                                 bint maximize) noexcept nogil:
    """(-g if maximize else g) + wd*p for one element (wd == 0 adds nothing)."""
    if maximize:
        g = -g
    if wd != 0:
        g = wd * p + g
    return g


cdef void _sgd(floating* p, const floating* g, floating* buf, Py_ssize_t n,
               double lr_, double momentum_, double dampening_, double wd_,
               bint use_momentum, bint nesterov, bint maximize,
               bint first_step) noexcept nogil:
    cdef floating lr = <floating>lr_, momentum = <floating>momentum_
    cdef floating keep = <floating>(1.0 - dampening_), wd = <floating>wd_
    cdef floating gi, b
    cdef Py_ssize_t i
    for i in prange(n, schedule='static', num_threads=_threads(n)):
        gi = _grad_value(g[i], p[i], wd, maximize)
        if use_momentum:
            b = gi if first_step else momentum * buf[i] + gi * keep
            buf[i] = b
            gi = gi + b * momentum if nesterov else b
        p[i] = p[i] - gi * lr


cdef void _adam(floating* p, const floating* g, floating* m, floating* v,
                floating* vmax, Py_ssize_t n, double lr_, double beta1_,
                double beta2_, double eps_, double wd_, double step_size_,
                double bc2_sqrt_, bint decoupled, bint amsgrad,
                bint maximize) noexcept nogil:
    cdef floating beta1 = <floating>beta1_, keep1 = <floating>(1.0 - beta1_)
    cdef floating beta2 = <floating>beta2_, keep2 = <floating>(1.0 - beta2_)
    cdef floating eps = <floating>eps_, step_size = <floating>step_size_
    cdef floating bc2_sqrt = <floating>bc2_sqrt_
    cdef floating l2 = 0 if decoupled else <floating>wd_
    cdef floating shrink = <floating>(1.0 - lr_ * wd_)
    cdef bint shrink_param = decoupled and wd_ != 0
    cdef floating gi, pi, mi, vi, denom
    cdef Py_ssize_t i
    for i in prange(n, schedule='static', num_threads=_threads(n)):
        gi = _grad_value(g[i], p[i], l2, maximize)
        pi = p[i] * shrink if shrink_param else p[i]
        mi = beta1 * m[i] + gi * keep1
        m[i] = mi
        vi = beta2 * v[i] + gi * keep2 * gi
        v[i] = vi
        if amsgrad:
            if vmax[i] > vi:
                vi = vmax[i]
            vmax[i] = vi
        denom = <floating>sqrt(vi) / bc2_sqrt + eps
        p[i] = pi - mi * step_size / denom


cdef void _rmsprop(floating* p, const floating* g, floating* sq, floating* ga,
                   floating* buf, Py_ssize_t n, double lr_, double alpha_,
                   double eps_, double wd_, double momentum_, bint centered,
                   bint maximize) noexcept nogil:
    cdef floating lr = <floating>lr_, alpha = <floating>alpha_
    cdef floating keep = <floating>(1.0 - alpha_), eps = <floating>eps_
    cdef floating wd = <floating>wd_, momentum = <floating>momentum_
    cdef bint use_momentum = momentum_ > 0
    cdef floating gi, si, ai, avg, b
    cdef Py_ssize_t i
    for i in prange(n, schedule='static', num_threads=_threads(n)):
        gi = _grad_value(g[i], p[i], wd, maximize)
        si = alpha * sq[i] + gi * keep * gi
        sq[i] = si
        if centered:
            ai = alpha * ga[i] + gi * keep
            ga[i] = ai
            avg = <floating>sqrt(si - ai * ai) + eps
        else:
            avg = <floating>sqrt(si) + eps
        if use_momentum:
            b = momentum * buf[i] + gi / avg
            buf[i] = b
            p[i] = p[i] - b * lr
        else:
            p[i] = p[i] - gi * lr / avg


cdef void _adagrad(floating* p, const floating* g, floating* ssum, Py_ssize_t n,
                   double clr_, double wd_, double eps_, bint maximize) noexcept nogil:
    cdef floating clr = <floating>clr_, wd = <floating>wd_, eps = <floating>eps_
    cdef floating gi, si
    cdef Py_ssize_t i
    for i in prange(n, schedule='static', num_threads=_threads(n)):
        gi = _grad_value(g[i], p[i], wd, maximize)
        si = ssum[i] + gi * gi
        ssum[i] = si
        p[i] = p[i] - gi * clr / (<floating>sqrt(si) + eps)


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
