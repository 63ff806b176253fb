"""Plain reference kernels, written once against an array module `xp`.

Each module here is one area (activation, norm, conv, ...). Its public
functions (listed in `__all__`) take `xp` (numpy or cupy) as their first
argument. A compiled version in minigrad/_core/<area>.pyx, when present, has
the same names without `xp`; the CPU backend prefers it. Tests compare both.
"""
import pkgutil as _pkgutil

AREAS = tuple(sorted(m.name for m in _pkgutil.iter_modules(__path__)))
