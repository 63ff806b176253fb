"""Keeps glibc's heap from handing freed memory back to the OS every step.

A training step allocates and frees the same large arrays (activations,
im2col buffers, gradients) again and again. glibc's defaults return the top of
the heap to the OS whenever more than a few MB of it is free, so the next step
faults every page back in: a small CNN step paid ~2,700 page faults, 40 % of
its time. Raising the trim threshold keeps up to TRIM_THRESHOLD bytes of freed
heap for reuse; fixing the mmap threshold at glibc's maximum keeps arrays up
to 32 MB on that heap (above it they are mapped and unmapped as before).

Process-wide, as a caching allocator is; applied once at import. Opt out with
MINIGRAD_MALLOC_TUNING=0. A no-op where the C library is not glibc.
"""
import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 256 << 20
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit

applied = False


def tune_malloc():
    """Sets the two glibc thresholds; returns whether they were applied."""
    global applied
    if os.environ.get("MINIGRAD_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return applied
