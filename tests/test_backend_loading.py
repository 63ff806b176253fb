"""The CPU backend loads its compiled kernels, and says so loudly when it
cannot: running on the numpy references by accident would only show as
slowness."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from minigrad.backend import Backend
from minigrad.backend.reference import AREAS


def test_missing_compiled_kernels_warn_and_fall_back_to_references(monkeypatch):
    monkeypatch.delenv("MINIGRAD_DISABLE_CORE", raising=False)
    with pytest.warns(RuntimeWarning, match=r"could not be loaded from minigrad\._no_such_build"):
        backend = Backend("cpu", np, compiled_package="minigrad._no_such_build")
    assert backend.compiled == {}
    x = np.array([-1.0, 2.0])
    np.testing.assert_array_equal(backend.activation_forward("relu", x), [0.0, 2.0])


def test_choosing_the_references_does_not_warn(monkeypatch):
    monkeypatch.setenv("MINIGRAD_DISABLE_CORE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend = Backend("cpu", np, compiled_package="minigrad._no_such_build")
    assert backend.compiled == {}


def test_a_built_tree_loads_every_area_without_warning():
    pytest.importorskip("minigrad._core.threads", reason="a build without the compiled kernels")
    code = ("import minigrad.backend.cpu as c; "
            "print(sorted({f.__module__.rsplit('.', 1)[-1] for f in c.backend.compiled.values()}))")
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MINIGRAD_DISABLE_CORE": "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(AREAS))
