# Array helpers shared by the compiled entry points. New arrays go through
# numpy's C API: the Python-level numpy.empty / numpy.empty_like go through
# argument parsing and the __array_function__ dispatch, about 1 us per call,
# several times per small training step. Each module that cimports these has
# called cnp.import_array().
cimport numpy as cnp


cdef inline void* data_of(object a):
    """The data pointer of a numpy array (checked by the caller)."""
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline object empty_like_c(object a):
    """A new C-contiguous array of a's shape and type (a: a native-order
    numpy array)."""
    cdef cnp.ndarray arr = a
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(arr), cnp.PyArray_DIMS(arr),
                             cnp.PyArray_TYPE(arr), 0)


cdef inline object empty_vector(cnp.npy_intp n, int typenum):
    """A new 1-D array of n elements of the numpy type `typenum`."""
    return cnp.PyArray_EMPTY(1, &n, typenum, 0)


cdef inline void narrow_to_float(const double* src, float* dst, Py_ssize_t n) noexcept nogil:
    """dst[i] = src[i] rounded to float32."""
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = <float>src[i]


cdef inline object thread_rows(cnp.npy_intp threads, cnp.npy_intp width, int typenum):
    """A (threads, W) scratch array of W >= width elements per row, one row
    per thread, rows at least a 64-byte cache line apart: threads writing
    rows that share a line wait on each other for it (the general pooling
    kernels ran slower on two threads than on one)."""
    cdef cnp.npy_intp line = 64 // cnp.PyArray_DescrFromType(typenum).itemsize
    cdef cnp.npy_intp dims[2]
    dims[0] = threads
    dims[1] = (width + 2 * line - 1) // line * line
    return cnp.PyArray_EMPTY(2, dims, typenum, 0)
