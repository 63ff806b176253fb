"""numpy's OpenBLAS runs its threaded products on minigrad's OpenMP threads.

A training step alternates BLAS products with minigrad's compiled kernels.
With two thread pools (OpenBLAS's own threads and OpenMP's) on few cores,
idle workers of one pool must sleep at once, or their spinning steals the
cores the other pool needs; every product and every threaded kernel then
pays for waking its workers. OpenBLAS (0.3.27 and later) can hand the jobs of
each threaded call to the caller (openblas_set_threads_callback_function):
handing them to the OpenMP runtime leaves one pool, whose workers can wait
actively between operations as PyTorch's do.

`plan()` runs before the OpenMP runtime loads (it reads its settings once)
and chooses how idle workers wait; `install()` runs after the compiled
kernels load and hands the callback to OpenBLAS. Opt out with
MINIGRAD_BLAS_POOL=0; a no-op where numpy's BLAS is not an OpenBLAS with
the callback (for example MKL or Accelerate), where the two pools stay
separate and idle workers sleep.

`install_batched_products()` hands the compiled products
(_core/products.pyx) the batched GEMMs of numpy's OpenBLAS, with or without
the callback.
"""
import ctypes
import os
import warnings

# How long an idle OpenMP worker spins before it sleeps (libgomp's
# GOMP_SPINCOUNT): long enough to span the Python work between the
# operations of a step, short enough to give the core back soon after.
SPIN_COUNT = 200000

_PREFIXES = ("scipy_", "")
_SUFFIXES = ("64_", "_64", "")

state = {"library": None, "installed": False}


def _enabled():
    return os.environ.get("MINIGRAD_BLAS_POOL", "1") != "0"


def _loaded_openblas_paths():
    """Paths of the OpenBLAS libraries this process has loaded (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "openblas" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.isabs(p) and ".so" in os.path.basename(p))


def _symbol(library, name):
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            try:
                return getattr(library, f"{prefix}{name}{suffix}")
            except AttributeError:
                continue
    return None


class _OpenBLAS:
    """The entry points used here of one loaded OpenBLAS."""

    def __init__(self, path, set_callback, set_threads, get_threads):
        self.path = path
        self.set_callback = set_callback
        self.set_threads = set_threads
        self.get_threads = get_threads


def _loaded_openblas_libraries():
    """(path, ctypes library) of each OpenBLAS numpy has loaded."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    for path in _loaded_openblas_paths():
        try:
            yield path, ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue


def find_openblas():
    """numpy's OpenBLAS when it takes a threads callback, else None."""
    for path, library in _loaded_openblas_libraries():
        set_callback = _symbol(library, "openblas_set_threads_callback_function")
        set_threads = _symbol(library, "openblas_set_num_threads")
        get_threads = _symbol(library, "openblas_get_num_threads")
        if set_callback is None or set_threads is None or get_threads is None:
            continue
        set_callback.argtypes, set_callback.restype = (ctypes.c_void_p,), None
        set_threads.argtypes, set_threads.restype = (ctypes.c_int,), None
        get_threads.argtypes, get_threads.restype = (), ctypes.c_int
        return _OpenBLAS(path, set_callback, set_threads, get_threads)
    return None


def plan():
    """Before the OpenMP runtime loads: with one pool ahead, idle OpenMP
    workers spin for a while; with two, they sleep at once and so do
    OpenBLAS's. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins."""
    state["library"] = find_openblas() if _enabled() else None
    if state["library"] is not None:
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ.setdefault("GOMP_SPINCOUNT", str(SPIN_COUNT))
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # takes effect only when minigrad is imported before numpy
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def install():
    """Hands OpenBLAS's threaded calls to the OpenMP threads; returns
    whether it did."""
    library = state["library"]
    if library is None or state["installed"]:
        return state["installed"]
    try:
        from ._core import threads
    except ImportError:  # a build without the compiled kernels
        return False
    library.set_callback(threads.blas_jobs_address())
    state["installed"] = True
    return True


def uninstall():
    """OpenBLAS back to its own threads (tests compare the two)."""
    library = state["library"]
    if library is not None and state["installed"]:
        library.set_callback(None)
        state["installed"] = False


def batched_gemm_entries():
    """Addresses of cblas_sgemm_batch, cblas_dgemm_batch and
    openblas_get_num_threads in numpy's OpenBLAS, when it is an ILP64 build
    (the 64-bit integer names numpy's wheels carry) that has them; else None."""
    for _, library in _loaded_openblas_libraries():
        get_threads = _symbol(library, "openblas_get_num_threads")
        for prefix in _PREFIXES:
            for suffix in ("64_", "_64"):  # ILP64 only: the products pass 64-bit sizes
                entries = [getattr(library, f"{prefix}cblas_{t}gemm_batch{suffix}", None) for t in "sd"]
                if None not in entries and get_threads is not None:
                    return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in entries + [get_threads])
    return None


def install_batched_products():
    """Lets the compiled products run side by side (see _core/products.pyx);
    returns whether they can."""
    try:
        from ._core import products
    except ImportError:  # a build without the compiled kernels
        return False
    entries = batched_gemm_entries()
    products.use_openblas_batch(*(entries or (0, 0, 0)))
    if entries is not None and not products.batched_gemm_agrees():
        products.use_openblas_batch(0, 0, 0)
        warnings.warn("minigrad: the batched GEMM of numpy's OpenBLAS gave other results than its "
                      "plain products; minigrad's products run one at a time (numpy's matmul)",
                      RuntimeWarning, stacklevel=2)
        return False
    return entries is not None
