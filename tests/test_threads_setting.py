import os
import signal
import time

import numpy as np
import pytest

import minigrad as mg
from minigrad.backend.cpu import backend


def test_set_num_threads_controls_kernels_and_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = mg.get_num_threads()
    try:
        mg.set_num_threads(1)
        assert mg.get_num_threads() == 1
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert all(p["num_threads"] == 1 for p in blas)
        x = mg.randn(64, 64, requires_grad=True)
        (x @ x).relu().sum().backward()  # still computes
        assert x.grad.shape == (64, 64)
    finally:
        mg.set_num_threads(before)
    assert mg.get_num_threads() == before


def test_set_num_threads_rejects_nonsense():
    with pytest.raises(ValueError, match="positive number of threads"):
        mg.set_num_threads(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_runs_threaded_kernels_and_products():
    # GNU OpenMP keeps the parent's pool in its books after a fork: a child's
    # next parallel region waited forever for threads that do not exist
    big = mg.randn(1024, 1024)
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    (big * 2).relu().exp()
    a @ a  # both pools have run in the parent
    pid = os.fork()
    if pid == 0:  # the child: any failure exits non-zero
        try:
            y = mg.from_numpy(np.full((1024, 1024), -1.0, np.float32))
            ok = float((y * 2).relu().exp().sum().item()) == 1024 * 1024
            a64 = a.astype(np.float64) @ a.astype(np.float64)
            ok = ok and np.allclose(a @ a, a64, atol=1e-3)
            # side by side products (OpenBLAS's batched GEMM where it has one)
            ok = ok and all(np.allclose(p, a64, atol=1e-3) for p in backend.matmul_pair(a, a, a, a))
            os._exit(0 if ok and mg.get_num_threads() == 1 else 3)
        except BaseException:  # noqa: BLE001  (the exit status reports it)
            os._exit(4)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in a threaded kernel or product")
    assert mg.get_num_threads() >= 1 and (big * 2).relu().shape == (1024, 1024)  # the parent goes on
