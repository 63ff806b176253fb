"""Backends: one object per device kind holding the array module and kernels.

A backend exposes `xp` (numpy-compatible array module) and every kernel of
minigrad/backend/reference/* as an attribute with the reference signature
minus `xp`. Ops ask `tensor.backend` for what they need; they never import
numpy or cupy themselves.
"""
import functools
import importlib
import os
import warnings

from .reference import AREAS


class Backend:
    """Array module plus named kernels for one device type."""

    def __init__(self, name, xp, compiled_package=None):
        self.name = name
        self.xp = xp
        self.compiled = {}
        missing = {}
        for area in AREAS:
            ref = importlib.import_module(f"minigrad.backend.reference.{area}")
            core = _load_compiled(compiled_package, area, missing)
            for fn_name in ref.__all__:
                fast = getattr(core, fn_name, None) if core is not None else None
                if fast is not None:
                    self.compiled[fn_name] = fast
                    setattr(self, fn_name, fast)
                else:
                    setattr(self, fn_name, functools.partial(getattr(ref, fn_name), xp))
        if missing:
            _warn_missing(name, compiled_package, missing)

    def to_host(self, arr):
        """The array as a numpy array (no copy on the CPU)."""
        return arr

    def from_host(self, arr):
        """A numpy array as this backend's array."""
        return self.xp.asarray(arr)

    def __repr__(self):
        return f"<minigrad backend {self.name!r}: {len(self.compiled)} compiled kernels>"


def core_disabled():
    return os.environ.get("MINIGRAD_DISABLE_CORE", "") not in ("", "0")


def _load_compiled(package, area, missing):
    """The compiled module of `area`, or None; records in `missing` why an
    expected one could not be loaded."""
    if package is None or core_disabled():
        return None
    try:
        return importlib.import_module(f"{package}.{area}")
    except ImportError as e:
        missing[area] = e
        return None


def _warn_missing(name, package, missing):
    # Running on the references by accident (a source tree that was never
    # built, a stale or broken build) would only show as slowness.
    first = next(iter(missing.values()))
    warnings.warn(
        f"minigrad: the compiled {name} kernels of {', '.join(missing)} could not be loaded "
        f"from {package} ({first}); those ops run on the numpy reference kernels, several "
        f"times slower. Build them with `pip install -e .` in the source tree, or set "
        f"MINIGRAD_DISABLE_CORE=1 to run on the references on purpose.",
        RuntimeWarning, stacklevel=2)
