"""The CPU backend: numpy for the generic array path, minigrad._core for the
compiled kernels (unless MINIGRAD_DISABLE_CORE=1, or the build lacks them)."""
import numpy

from . import Backend

backend = Backend("cpu", numpy, compiled_package="minigrad._core")
