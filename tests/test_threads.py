"""Thread safety: grad mode and anomaly mode are per thread, autograd keeps no
shared state between threads, and the random generator stays consistent when
several threads draw from it (test_autograd.py has the basic no_grad case)."""
import sys
import threading
import time

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

N_THREADS = 6


@pytest.fixture(autouse=True)
def _frequent_thread_switches():
    # switch threads every few bytecodes, not every 5 ms: races get a chance to show
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def _run_threads(target, n=N_THREADS):
    """Runs target(i, barrier) in n threads started together; re-raises the first
    exception (a failed assert in a thread must fail the test)."""
    barrier = threading.Barrier(n)
    errors = []

    def wrapped(i):
        try:
            target(i, barrier)
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_grad_mode_switches_interleaved_across_threads():
    seen = [None] * N_THREADS

    def work(i, barrier):
        x = mg.ones(4, requires_grad=True)
        barrier.wait()
        recorded = []
        for step in range(300):
            off = (i + step) % 2 == 0  # threads flip modes out of phase with each other
            if off:
                with mg.no_grad():
                    time.sleep(0)  # let the other threads run while this one is in no_grad
                    recorded.append(((x * 2).requires_grad, mg.is_grad_enabled()) == (False, False))
            else:
                time.sleep(0)
                recorded.append(((x * 2).requires_grad, mg.is_grad_enabled()) == (True, True))
        seen[i] = all(recorded)

    _run_threads(work)
    assert seen == [True] * N_THREADS


def test_set_grad_enabled_call_form_stays_in_its_thread():
    done = threading.Event()
    worker_state = {}

    def worker():
        mg.set_grad_enabled(False)  # call form: takes effect at once, in this thread only
        worker_state["inside"] = mg.is_grad_enabled()
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert done.is_set() and worker_state["inside"] is False
    assert mg.is_grad_enabled()


def test_new_threads_start_with_grad_enabled():
    state = {}

    def worker():
        state["enabled"] = mg.is_grad_enabled()
        state["records"] = (mg.ones(1, requires_grad=True) * 3).requires_grad

    with mg.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join(10)
    assert state == {"enabled": True, "records": True}


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_anomaly_mode_is_per_thread():
    states = {}

    def worker():
        states["worker"] = mg.autograd.is_anomaly_enabled()
        x = mg.tensor([0.0], requires_grad=True)
        x.sqrt().sum().backward()  # inf gradient: no error, the mode is off here
        states["worker_grad"] = x.grad.item()

    with np.errstate(divide="ignore"), mg.autograd.detect_anomaly():
        t = threading.Thread(target=worker)
        t.start()
        t.join(10)
        states["main"] = mg.autograd.is_anomaly_enabled()
    assert states["worker"] is False and states["main"] is True
    assert states["worker_grad"] == float("inf")


def _train_steps(seed, steps):
    """Deterministic small training run: returns the final parameters."""
    r = np.random.default_rng(seed)
    w1 = mg.tensor(r.standard_normal((6, 8)), dtype=mg.float64, requires_grad=True)
    w2 = mg.tensor(r.standard_normal((8, 3)), dtype=mg.float64, requires_grad=True)
    x = mg.tensor(r.standard_normal((16, 6)), dtype=mg.float64)
    y = mg.tensor(r.integers(0, 3, 16))
    for _ in range(steps):
        loss = nn.functional.cross_entropy((x @ w1).tanh() @ w2, y)
        loss.backward()
        with mg.no_grad():
            for w in (w1, w2):
                w.sub_(w.grad * 0.1)
                w.grad = None
        with mg.no_grad():  # an evaluation pass between steps, as a training loop does
            (x @ w1).tanh() @ w2
    return w1.detach().numpy().copy(), w2.detach().numpy().copy()


def test_concurrent_training_matches_sequential():
    expected = [_train_steps(seed, 40) for seed in range(N_THREADS)]
    got = [None] * N_THREADS

    def work(i, barrier):
        barrier.wait()
        got[i] = _train_steps(i, 40)

    _run_threads(work)
    for (e1, e2), (g1, g2) in zip(expected, got):
        np.testing.assert_array_equal(g1, e1)
        np.testing.assert_array_equal(g2, e2)


# -- the random generator ----------------------------------------------------------

def _sorted_rows(rows):
    a = np.stack(rows)
    return a[np.lexsort(a.T[::-1])]


def test_threaded_draws_are_exactly_the_seeded_sequence_in_some_order():
    """Each draw is atomic: N threads drawing K arrays each get, between them,
    the same N*K arrays a single thread draws after the same manual_seed."""
    per_thread, shape = 50, (7,)
    mg.manual_seed(2024)
    sequential = [mg.rand(*shape, dtype=mg.float64).numpy() for _ in range(N_THREADS * per_thread)]
    drawn = [[] for _ in range(N_THREADS)]

    def work(i, barrier):
        barrier.wait()
        for _ in range(per_thread):
            drawn[i].append(mg.rand(*shape, dtype=mg.float64).numpy())

    mg.manual_seed(2024)
    _run_threads(work)
    threaded = [row for rows in drawn for row in rows]
    np.testing.assert_array_equal(_sorted_rows(threaded), _sorted_rows(sequential))


def test_draws_stay_well_formed_while_another_thread_reseeds():
    results = [None] * N_THREADS

    def work(i, barrier):
        barrier.wait()
        if i == 0:
            for s in range(200):
                mg.manual_seed(s)
            return
        ok = True
        for _ in range(100):
            u = mg.rand(33)
            n = mg.randn(5, 4, dtype=mg.float64)
            k = mg.randint(0, 10, (9,))
            p = mg.randperm(12)
            ok &= u.shape == (33,) and u.dtype == mg.float32 and bool(((u >= 0) & (u < 1)).all())
            ok &= n.shape == (5, 4) and bool(np.isfinite(n.numpy()).all())
            ok &= bool(((k >= 0) & (k < 10)).all())
            ok &= sorted(p.tolist()) == list(range(12))
        results[i] = ok

    _run_threads(work)
    assert results[1:] == [True] * (N_THREADS - 1)


def test_seeded_sequence_is_reproducible_after_threaded_use():
    def sequence():
        mg.manual_seed(77)
        layer = nn.Linear(4, 3)
        drop = nn.functional.dropout(mg.ones(20), 0.5)
        return [layer.weight.detach().numpy().copy(), drop.numpy().copy(),
                mg.randn(6).numpy().copy(), mg.randperm(8).numpy().copy()]

    before = sequence()

    def work(i, barrier):
        barrier.wait()
        for _ in range(30):
            nn.functional.dropout(mg.ones(50), 0.3)
            mg.randn(10)

    _run_threads(work)
    after = sequence()
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_threaded_draws_have_the_right_distribution(kind):
    """A corrupted generator state would show up as repeated or skewed values."""
    mg.manual_seed(5)
    chunks = [None] * N_THREADS

    def work(i, barrier):
        barrier.wait()
        fn = mg.randn if kind == "normal" else mg.rand
        chunks[i] = np.concatenate([fn(500, dtype=mg.float64).numpy() for _ in range(8)])

    _run_threads(work)
    values = np.concatenate(chunks)
    assert len(np.unique(values)) == values.size  # no draw handed out twice
    n = values.size
    if kind == "normal":
        assert abs(values.mean()) < 5 / np.sqrt(n) and abs(values.std() - 1) < 0.02
    else:
        assert abs(values.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n) and values.min() >= 0 and values.max() < 1
