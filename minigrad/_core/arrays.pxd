# New arrays for the compiled entry points, through numpy's C API: the
# Python-level numpy.empty / numpy.empty_like go through argument parsing and
# the __array_function__ dispatch, about 1 us per call, several times per
# small training step. Each module that cimports these has called
# cnp.import_array().
cimport numpy as cnp


cdef inline object empty_like_c(object a):
    """A new C-contiguous array of a's shape and type (a: a native-order
    numpy array)."""
    cdef cnp.ndarray arr = a
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(arr), cnp.PyArray_DIMS(arr),
                             cnp.PyArray_TYPE(arr), 0)


cdef inline object empty_vector(cnp.npy_intp n, int typenum):
    """A new 1-D array of n elements of the numpy type `typenum`."""
    return cnp.PyArray_EMPTY(1, &n, typenum, 0)
