"""Thread count of the OpenMP runtime the compiled kernels share."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int minigrad_get_threads(void) { return omp_get_max_threads(); }
    static void minigrad_set_threads(int n) { omp_set_num_threads(n); }
    #else
    static int minigrad_get_threads(void) { return 1; }
    static void minigrad_set_threads(int n) { (void)n; }
    #endif
    """
    int minigrad_get_threads() noexcept nogil
    void minigrad_set_threads(int n) noexcept nogil

cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN


def get_threads():
    return minigrad_get_threads()


def set_threads(int n):
    minigrad_set_threads(n)


def parallel_min():
    """Elements below which the compiled kernels stay on one thread (parallel.h);
    the kernels' tests size their arrays from it to reach the threaded paths."""
    return MG_PARALLEL_MIN
