"""`mg.cuda`: CUDA availability and the lazily created CuPy backend.

CuPy is imported only here, and only when asked: `import minigrad` never needs it.
"""
_probe = {}

_HOW_TO_GET_CUDA = ("install the GPU extra with `pip install minigrad[gpu]` (CuPy) and run on a "
                    "machine with an NVIDIA GPU and driver")


def _cupy():
    """The cupy module if a usable CUDA device is present, else None (never raises)."""
    if "cupy" not in _probe:
        try:
            import cupy
            ok = bool(cupy.is_available())
        except Exception:  # no CuPy, no driver, no device: all mean "not available"
            cupy, ok = None, False
        _probe["cupy"] = cupy if ok else None
    return _probe["cupy"]


def is_available():
    return _cupy() is not None


def device_count():
    cp = _cupy()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def synchronize(device=None):
    cp = _cupy()
    if cp is not None:
        cp.cuda.Device().synchronize()


def backend_for(dev):
    cp = _cupy()
    if cp is None:
        raise RuntimeError(f"cannot use device '{dev}': CUDA is not available. To use a GPU, "
                           f"{_HOW_TO_GET_CUDA}. mg.cuda.is_available() tells whether it is.")
    try:
        from .backend.cuda import make_backend
    except ImportError as e:
        raise RuntimeError(f"cannot use device '{dev}': the CUDA backend is not built into this "
                           f"version of minigrad ({e})") from None
    return make_backend(cp, dev)
