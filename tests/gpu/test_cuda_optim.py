"""The fused CUDA optimizer updates (backend/cuda_optim.py) against the
reference updates run by numpy on the CPU, over whole trajectories and every
option (skipped, with the reason, where mg.cuda.is_available() is False)."""
import itertools

import numpy as np
import pytest

from minigrad.backend.reference import optim as ref
from .cuda_arrays import backend

pytestmark = pytest.mark.gpu

STEPS = 6
TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}


def _trajectory(update, make, dtype, states, steps=STEPS):
    """Runs `update(param, grad, states, t)` for t = 1..steps on arrays made by
    `make` (numpy -> the side's arrays); returns param and states on the host."""
    rng = np.random.default_rng(0)
    param = make(rng.standard_normal((7, 33)).astype(dtype))
    state = [make(np.zeros((7, 33), dtype)) for _ in range(states)]
    for t in range(1, steps + 1):
        grad = make(rng.standard_normal((33, 7)).astype(dtype)).T  # a strided gradient
        update(param, grad, state, t)
    host = backend().to_host
    return [host(a) for a in [param] + state]


def _compare(fused, reference, dtype, states):
    got = _trajectory(fused, backend().from_host, dtype, states)
    want = _trajectory(reference, np.asarray, dtype, states)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum,dampening,weight_decay,nesterov,maximize", [
    (0.0, 0.0, 0.0, False, False), (0.0, 0.0, 0.01, False, True), (0.9, 0.0, 0.0, False, False),
    (0.9, 0.1, 0.01, False, False), (0.9, 0.0, 0.01, True, True)])
def test_fused_sgd_matches_reference(dtype, momentum, dampening, weight_decay, nesterov, maximize):
    be = backend()
    assert "sgd_step" in be.compiled

    def run(step_fn):
        def update(param, grad, state, t):
            buf = state[0] if momentum != 0 else None
            step_fn(param, grad, buf, 0.1, momentum, dampening, weight_decay, nesterov,
                    maximize, t == 1)
        return update
    _compare(run(be.sgd_step), run(lambda *a: ref.sgd_step(np, *a)), dtype,
             1 if momentum != 0 else 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay,decoupled,amsgrad,maximize",
                         list(itertools.product([0.0, 0.05], [False, True], [False, True],
                                                [False, True])))
def test_fused_adam_matches_reference(dtype, weight_decay, decoupled, amsgrad, maximize):
    be = backend()
    assert "adam_step" in be.compiled

    def run(step_fn):
        def update(param, grad, state, t):
            vmax = state[2] if amsgrad else None
            step_fn(param, grad, state[0], state[1], vmax, t, 1e-2, 0.9, 0.999, 1e-8,
                    weight_decay, decoupled, amsgrad, maximize)
        return update
    _compare(run(be.adam_step), run(lambda *a: ref.adam_step(np, *a)), dtype,
             3 if amsgrad else 2)


def test_fused_updates_fall_back_for_mixed_dtypes():
    be = backend()
    param = be.from_host(np.ones(5, np.float32))
    grad = be.from_host(np.full(5, 2.0, np.float64))
    be.sgd_step(param, grad, None, 0.5, 0.0, 0.0, 0.0, False, False, True)
    np.testing.assert_array_equal(be.to_host(param), np.zeros(5, np.float32))
