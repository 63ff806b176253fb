"""Compiled linear-layer epilogues (reference: backend/reference/linear.py).

Forward: one pass over the product adds the bias and applies the relu in
place, where numpy needs an add, then a relu pass into a new array.
Backward: one pass masks the gradient by the relu and sums it over rows for
the bias gradient, where numpy needs a masking pass and a reduction. For a
small layer each of those is a call costing microseconds, as much as its
matrix product.

The relu is the activation kernel's (v <= 0 ? 0 : v forward, out > 0 ? g : 0
backward), so a fused layer gives a separate ReLU's values bit for bit. Bias
sums add each four rows in the data's type, then accumulate in double. One thread: these passes are memory-bound, and
the layers they serve stay under the size where a second thread pays (see
parallel.h). Arrays outside the fast path (other dtypes, layouts) go to the
reference.
"""
cimport numpy as cnp
from libc.stdlib cimport free, malloc

from minigrad._core.arrays cimport data_of, empty_like_c, empty_vector, narrow_to_float

import numpy

from minigrad.backend.reference import linear as _ref

cnp.import_array()

cdef extern from *:
    """
    #include "vecmath.h"

    /* z[i, j] (+ b[j]) (then relu), in place; b may be NULL */
    #define MG_DEFINE_EPILOGUE(SUFFIX, T) \\
    MG_CLONES static void mg_epilogue_##SUFFIX(T *restrict z, const T *restrict b, \\
            Py_ssize_t rows, Py_ssize_t n, int relu) { \\
        for (Py_ssize_t i = 0; i < rows; i++) { \\
            T *restrict r = z + i * n; \\
            if (b != NULL && relu) { \\
                for (Py_ssize_t j = 0; j < n; j++) { const T v = r[j] + b[j]; r[j] = v <= 0 ? (T)0 : v; } \\
            } else if (b != NULL) { \\
                for (Py_ssize_t j = 0; j < n; j++) r[j] += b[j]; \\
            } else if (relu) { \\
                for (Py_ssize_t j = 0; j < n; j++) { const T v = r[j]; r[j] = v <= 0 ? (T)0 : v; } \\
            } \\
        } \\
    } \\
    /* dz = out > 0 ? g : 0 (when relu; out and dz are NULL otherwise), and \\
       acc[j] = sum over rows of dz[i, j] (when acc is not NULL). Each four \\
       rows are summed in T, then added to acc in double: one conversion \\
       and one update of acc per four elements (one per element cost more \\
       than the masking pass itself). */ \\
    MG_CLONES static void mg_epilogue_backward_##SUFFIX(const T *restrict out, \\
            const T *restrict g, T *restrict dz, double *restrict acc, Py_ssize_t rows, \\
            Py_ssize_t n, int relu) { \\
        Py_ssize_t i = 0; \\
        if (acc != NULL) { \\
            for (Py_ssize_t j = 0; j < n; j++) acc[j] = 0.0; \\
            for (; i + 4 <= rows; i += 4) { \\
                const T *restrict g0 = g + i * n, *restrict g1 = g0 + n, \\
                        *restrict g2 = g1 + n, *restrict g3 = g2 + n; \\
                if (relu) { \\
                    const T *restrict o0 = out + i * n, *restrict o1 = o0 + n, \\
                            *restrict o2 = o1 + n, *restrict o3 = o2 + n; \\
                    T *restrict d0 = dz + i * n, *restrict d1 = d0 + n, \\
                      *restrict d2 = d1 + n, *restrict d3 = d2 + n; \\
                    for (Py_ssize_t j = 0; j < n; j++) { \\
                        const T v0 = o0[j] > 0 ? g0[j] : (T)0, v1 = o1[j] > 0 ? g1[j] : (T)0, \\
                                v2 = o2[j] > 0 ? g2[j] : (T)0, v3 = o3[j] > 0 ? g3[j] : (T)0; \\
                        d0[j] = v0; d1[j] = v1; d2[j] = v2; d3[j] = v3; \\
                        acc[j] += (double)((v0 + v1) + (v2 + v3)); \\
                    } \\
                } else { \\
                    for (Py_ssize_t j = 0; j < n; j++) \\
                        acc[j] += (double)((g0[j] + g1[j]) + (g2[j] + g3[j])); \\
                } \\
            } \\
        } \\
        for (; i < rows; i++) { \\
            const T *restrict gi = g + i * n; \\
            if (relu && acc != NULL) { \\
                const T *restrict o = out + i * n; T *restrict d = dz + i * n; \\
                for (Py_ssize_t j = 0; j < n; j++) { const T v = o[j] > 0 ? gi[j] : (T)0; d[j] = v; acc[j] += v; } \\
            } else if (relu) { \\
                const T *restrict o = out + i * n; T *restrict d = dz + i * n; \\
                for (Py_ssize_t j = 0; j < n; j++) d[j] = o[j] > 0 ? gi[j] : (T)0; \\
            } else { \\
                for (Py_ssize_t j = 0; j < n; j++) acc[j] += gi[j]; \\
            } \\
        } \\
    }

    MG_DEFINE_EPILOGUE(f32, float)
    MG_DEFINE_EPILOGUE(f64, double)
    """
    void mg_epilogue_f32(float* z, const float* b, Py_ssize_t rows, Py_ssize_t n,
                         int relu) noexcept nogil
    void mg_epilogue_f64(double* z, const double* b, Py_ssize_t rows, Py_ssize_t n,
                         int relu) noexcept nogil
    void mg_epilogue_backward_f32(const float* out, const float* g, float* dz, double* acc,
                                  Py_ssize_t rows, Py_ssize_t n, int relu) noexcept nogil
    void mg_epilogue_backward_f64(const double* out, const double* g, double* dz, double* acc,
                                  Py_ssize_t rows, Py_ssize_t n, int relu) noexcept nogil


cdef inline void* _data(a):
    return data_of(a) if a is not None else NULL


cdef int _matrix_type(a):
    """The numpy type number of a C-contiguous 2-D float32/float64 array, else -1."""
    if type(a) is not numpy.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>a) != 2 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) \
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    return t if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64 else -1


cdef bint _same_matrix(a, b, int t):
    return (_matrix_type(b) == t
            and cnp.PyArray_DIM(<cnp.ndarray>a, 0) == cnp.PyArray_DIM(<cnp.ndarray>b, 0)
            and cnp.PyArray_DIM(<cnp.ndarray>a, 1) == cnp.PyArray_DIM(<cnp.ndarray>b, 1))


cdef bint _fits_bias(bias, int t, Py_ssize_t n):
    return (type(bias) is numpy.ndarray and cnp.PyArray_NDIM(<cnp.ndarray>bias) == 1
            and cnp.PyArray_TYPE(<cnp.ndarray>bias) == t
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bias)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>bias)
            and cnp.PyArray_DIM(<cnp.ndarray>bias, 0) == n)


def linear_epilogue(z, bias=None, relu=False):
    """z + bias, then relu if asked. z must be a fresh, writable array: its
    memory may be reused for the result."""
    cdef int t = _matrix_type(z)
    cdef Py_ssize_t rows, n
    cdef void *pz
    cdef void *pb
    cdef int r = bool(relu)
    if t < 0 or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>z) \
            or (bias is not None and not _fits_bias(bias, t, cnp.PyArray_DIM(<cnp.ndarray>z, 1))):
        return _ref.linear_epilogue(numpy, z, bias, relu)
    rows, n = cnp.PyArray_DIM(<cnp.ndarray>z, 0), cnp.PyArray_DIM(<cnp.ndarray>z, 1)
    pz, pb = _data(z), _data(bias)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            mg_epilogue_f32(<float*>pz, <const float*>pb, rows, n, r)
        else:
            mg_epilogue_f64(<double*>pz, <const double*>pb, rows, n, r)
    return z


def linear_epilogue_backward(out, g, relu=False, need_bias=True):
    """(dz, db): dz the gradient g of the epilogue's output taken back through
    the relu (g itself without one), db the bias gradient, dz summed over rows
    (None unless need_bias). `out` is the epilogue's output (read only with
    relu)."""
    if not relu and not need_bias:
        return g, None
    cdef int t = _matrix_type(g)
    if t < 0 or (relu and not _same_matrix(g, out, t)):
        return _ref.linear_epilogue_backward(numpy, out, g, relu, need_bias)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(<cnp.ndarray>g, 0), n = cnp.PyArray_DIM(<cnp.ndarray>g, 1)
    cdef int r = bool(relu)
    dz = empty_like_c(g) if relu else g
    db = empty_vector(n, t) if need_bias else None
    cdef void *po = _data(out) if relu else NULL
    cdef void *pg = _data(g)
    cdef void *pdz = _data(dz) if relu else NULL
    cdef double *acc = NULL
    if need_bias:
        acc = <double*>_data(db) if t == cnp.NPY_FLOAT64 else <double*>malloc(max(n, 1) * sizeof(double))
        if acc == NULL:
            raise MemoryError(f"linear: no memory for a bias gradient of {n} elements")
    try:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                mg_epilogue_backward_f32(<const float*>po, <const float*>pg, <float*>pdz, acc,
                                         rows, n, r)
            else:
                mg_epilogue_backward_f64(<const double*>po, <const double*>pg, <double*>pdz, acc,
                                         rows, n, r)
        if need_bias and t == cnp.NPY_FLOAT32:
            narrow_to_float(acc, <float*>_data(db), n)
    finally:
        if need_bias and t == cnp.NPY_FLOAT32:
            free(acc)
    return dz, db

