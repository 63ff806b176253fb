"""The heap tuning applied at import (minigrad/_malloc.py): a repeated training
step must stop faulting its pages back in, and the opt-out must work."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the tuning applies to glibc only")

# Prints the page faults per step of a small conv training step after warm-up.
_SCRIPT = textwrap.dedent("""
    import resource
    import numpy as np
    import minigrad as mg
    from minigrad import nn
    from minigrad._malloc import applied
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 14 * 14, 10))
    opt = mg.optim.Adam(model.parameters())
    x = mg.randn(64, 1, 28, 28)
    y = mg.randint(0, 10, (64,))
    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for _ in range(5):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")


def _faults_per_step(env_value):
    env = {"MINIGRAD_MALLOC_TUNING": env_value}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


def test_tuned_heap_keeps_the_step_free_of_page_faults():
    applied, faults = _faults_per_step("1")
    assert applied
    assert faults < 50


def test_opt_out_leaves_glibc_defaults():
    applied, faults = _faults_per_step("0")
    assert not applied
    # glibc's defaults trim the heap between steps: the pages fault back in
    assert faults > 200
