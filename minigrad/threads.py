"""How many threads the CPU kernels use: mg.set_num_threads / mg.get_num_threads.

Two pools do the work on the CPU: OpenMP for minigrad's compiled kernels and
the BLAS library behind numpy's matmul. Both follow set_num_threads.
"""
import os

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
    limiter = _blas_limiter()
    if limiter is not None:
        _state["blas"] = limiter.threadpool_limits(limits=int(blas or n), user_api="blas")
    else:
        os.environ["OPENBLAS_NUM_THREADS"] = str(int(blas or n))  # seen only by a later BLAS load
