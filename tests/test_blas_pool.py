"""numpy's OpenBLAS running its threaded products on minigrad's OpenMP
threads (_blas_pool.py): the callback is in place where OpenBLAS takes one,
it is really used, and every product it runs equals OpenBLAS's own."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import _blas_pool

threads = pytest.importorskip("minigrad._core.threads", reason="a build without the compiled kernels")

pool = pytest.mark.skipif(_blas_pool.state["library"] is None,
                          reason="numpy's BLAS is not an OpenBLAS that takes a threads callback")

# big enough for OpenBLAS to split every product among its threads
SHAPES = [((512, 512), (512, 512)), ((300, 517), (517, 211)), ((1024, 64), (64, 700)),
          ((97, 1500), (1500, 333))]


def _operands(rng, a_shape, b_shape, dtype):
    return rng.standard_normal(a_shape).astype(dtype), rng.standard_normal(b_shape).astype(dtype)


@pytest.fixture
def two_blas_threads():
    before = _blas_pool.state["library"].get_threads() if _blas_pool.state["library"] else None
    if before is not None and before < 2:
        _blas_pool.state["library"].set_threads(2)
    yield
    if before is not None:
        _blas_pool.state["library"].set_threads(before)


@pool
def test_callback_is_installed_where_openblas_takes_one():
    assert _blas_pool.state["installed"], "numpy's OpenBLAS takes a threads callback, but none was installed"


@pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
def test_products_through_the_openmp_threads_equal_openblas_own(rng, two_blas_threads, dtype,
                                                               a_shape, b_shape):
    a, b = _operands(rng, a_shape, b_shape, dtype)
    calls = threads.blas_calls()
    through_pool = a @ b
    through_pool_t = (b.T @ a.T).T  # transposed operands: other packing routines
    assert threads.blas_calls() >= calls + 2, "the product did not run through the callback"
    _blas_pool.uninstall()
    try:
        own = a @ b
        own_t = (b.T @ a.T).T
    finally:
        _blas_pool.install()
    # the same jobs on other threads: the same bits
    np.testing.assert_array_equal(through_pool, own)
    np.testing.assert_array_equal(through_pool_t, own_t)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = 50 * np.finfo(dtype).eps * (np.abs(a) @ np.abs(b)).astype(np.float64)
    assert np.all(np.abs(through_pool - exact) <= bound)


@pool
def test_training_step_products_run_through_the_callback(two_blas_threads):
    from minigrad._core import products
    model = mg.nn.Sequential(mg.nn.Linear(784, 512), mg.nn.ReLU(), mg.nn.Linear(512, 10))
    x = mg.randn(128, 784)
    was = products.use_vecgemm(False)  # the float32 products on OpenBLAS, not the AVX-512 kernel
    try:
        calls = threads.blas_calls()
        mg.nn.functional.cross_entropy(model(x), mg.randint(0, 10, (128,))).backward()
        assert threads.blas_calls() > calls
    finally:
        products.use_vecgemm(was)


@pool
def test_concurrent_products_from_python_threads(rng, two_blas_threads):
    operands = [_operands(rng, (400, 380), (380, 420), np.float32) for _ in range(4)]
    expected = [a @ b for a, b in operands]
    results = [[] for _ in operands]
    errors = []

    def work(i):
        try:
            a, b = operands[i]
            for _ in range(20):
                results[i].append(a @ b)
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(operands))]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not any(t.is_alive() for t in workers), "a product hung"
    assert not errors, errors
    for got, want in zip(results, expected):
        for r in got:
            np.testing.assert_array_equal(r, want)


def _run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    full_env.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


CHECK_PRODUCT = """
import os, numpy as np, minigrad as mg
from minigrad import _blas_pool
from minigrad._core import threads
rng = np.random.default_rng(0)
a = rng.standard_normal((700, 300)).astype(np.float32)
b = rng.standard_normal((300, 500)).astype(np.float32)
calls = threads.blas_calls()
got = a @ b
exact = a.astype(np.float64) @ b.astype(np.float64)
assert np.allclose(got, exact, rtol=1e-4, atol=1e-3)
print(_blas_pool.state['installed'], threads.blas_calls() > calls,
      os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))
"""


@pool
def test_opting_out_keeps_two_pools_whose_workers_sleep():
    installed, used, policy, _ = _run_python(CHECK_PRODUCT, MINIGRAD_BLAS_POOL="0").split()
    assert (installed, used, policy) == ("False", "False", "PASSIVE")


@pool
def test_one_pool_lets_idle_workers_spin_a_while_unless_the_user_chose():
    installed, used, policy, spin = _run_python(CHECK_PRODUCT, OPENBLAS_NUM_THREADS="2").split()
    assert (installed, used, policy, spin) == ("True", "True", "None", str(_blas_pool.SPIN_COUNT))
    installed, used, policy, spin = _run_python(CHECK_PRODUCT, OPENBLAS_NUM_THREADS="2",
                                                OMP_WAIT_POLICY="PASSIVE").split()
    assert (installed, used, policy, spin) == ("True", "True", "PASSIVE", "None")


@pool
def test_products_finish_when_openmp_gives_fewer_threads_than_jobs():
    # a team of one thread: the second job gets a thread of its own
    installed, used, _, _ = _run_python(CHECK_PRODUCT, OPENBLAS_NUM_THREADS="2",
                                        OMP_THREAD_LIMIT="1").split()
    assert (installed, used) == ("True", "True")


@pool
def test_set_num_threads_sets_the_openblas_threads_it_found():
    library = _blas_pool.state["library"]
    before_kernels, before_blas = mg.get_num_threads(), library.get_threads()
    try:
        mg.set_num_threads(1, blas=3)
        assert (mg.get_num_threads(), library.get_threads()) == (1, 3)
        mg.set_num_threads(1)
        assert library.get_threads() == 1
        a = np.ones((512, 512), np.float32)
        calls = threads.blas_calls()
        np.testing.assert_array_equal(a @ a, np.full((512, 512), 512, np.float32))
        assert threads.blas_calls() == calls  # one thread: OpenBLAS runs it itself
    finally:
        mg.set_num_threads(before_kernels, blas=before_blas)
