"""How many threads the CPU kernels use: mg.set_num_threads / mg.get_num_threads.

The compiled kernels run on OpenMP threads, and so do numpy's OpenBLAS
products where OpenBLAS takes a threads callback (_blas_pool.py); otherwise
the BLAS library keeps its own pool. Both follow set_num_threads.
"""
import os

from . import _blas_pool

_state = {"blas": None}


def _omp():
    try:
        from ._core import threads
    except ImportError:  # a build without the compiled kernels
        return None
    return threads


def _blas_limiter():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def get_num_threads():
    """Threads the compiled kernels use (as torch.get_num_threads)."""
    omp = _omp()
    return omp.get_threads() if omp is not None else 1


def set_num_threads(n, blas=None):
    """Sets the compiled kernels' threads to n, and BLAS's to `blas` (default n)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: expected a positive number of threads, got {n}")
    omp = _omp()
    if omp is not None:
        omp.set_threads(n)
    library = _blas_pool.state["library"]
    if library is not None:  # numpy's OpenBLAS, found by its entry points
        library.set_threads(int(blas or n))
    limiter = _blas_limiter()
    if limiter is not None:  # every BLAS loaded (scipy may bring its own)
        _state["blas"] = limiter.threadpool_limits(limits=int(blas or n), user_api="blas")
    else:
        os.environ["OPENBLAS_NUM_THREADS"] = str(int(blas or n))  # seen only by a later BLAS load


def _after_fork_in_child():
    # The child of a fork has one thread, but GNU OpenMP still counts the
    # parent's pool and would wait forever on it in the next parallel region:
    # the child's kernels run on one thread, and its products on OpenBLAS's
    # own threads (OpenBLAS restarts them after a fork).
    omp = _omp()
    if omp is not None:
        omp.set_threads(1)
    _blas_pool.uninstall()


os.register_at_fork(after_in_child=_after_fork_in_child)
