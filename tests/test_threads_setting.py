import pytest

import minigrad as mg


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
