"""Shared by the op-level tests that compare the compiled CPU kernels with the
reference ones (run on the 'standin' device)."""
import pytest

import minigrad as mg
from minigrad.backend import core_disabled


def require_compiled_cpu_kernels(name, area="conv"):
    """The CPU backend must run the compiled kernel `name` (unless the area was
    not built, or compiled kernels are switched off with MINIGRAD_DISABLE_CORE=1)."""
    pytest.importorskip(f"minigrad._core.{area}")
    if core_disabled():
        pytest.skip("compiled kernels switched off (MINIGRAD_DISABLE_CORE=1)")
    assert name in mg.device("cpu").backend.compiled
