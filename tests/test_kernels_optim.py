"""Optimizer update kernels: reference vs plain formulas, compiled vs reference,
and both vs torch.optim (single-tensor path) when torch is installed.

Every check runs a whole trajectory (many steps with fresh random gradients),
so a wrong state update shows up in later parameters, not only the first step.
"""
import inspect
import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from minigrad.backend.reference import optim as ref

STEPS = 25


@pytest.fixture(scope="module")
def core():
    return pytest.importorskip("minigrad._core.optim")


# ------------------------------------------------------------ plain float64 formulas
# Written from the published update rules, out of place, without the reference's
# helpers or its order of operations.

def formula_sgd(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
                nesterov, maximize, first_step):
    g = (-grad if maximize else grad) + weight_decay * param
    if momentum != 0:
        b = g.copy() if first_step else momentum * momentum_buffer + (1 - dampening) * g
        momentum_buffer[...] = b
        g = g + momentum * b if nesterov else b
    param[...] = param - lr * g


def formula_adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1,
                 beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    g = -grad if maximize else grad
    if decoupled:
        param[...] = param * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * param
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g ** 2
    v = exp_avg_sq
    if amsgrad:
        max_exp_avg_sq[...] = np.maximum(max_exp_avg_sq, exp_avg_sq)
        v = max_exp_avg_sq
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    param[...] = param - lr * m_hat / (np.sqrt(v_hat) + eps)


def formula_rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                    weight_decay, momentum, centered, maximize):
    g = (-grad if maximize else grad) + weight_decay * param
    square_avg[...] = alpha * square_avg + (1 - alpha) * g ** 2
    if centered:
        grad_avg[...] = alpha * grad_avg + (1 - alpha) * g
        avg = np.sqrt(square_avg - grad_avg ** 2) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buffer[...] = momentum * momentum_buffer + g / avg
        param[...] = param - lr * momentum_buffer
    else:
        param[...] = param - lr * g / avg


def formula_adagrad(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps,
                    maximize):
    g = (-grad if maximize else grad) + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum[...] = state_sum + g ** 2
    param[...] = param - clr * g / (np.sqrt(state_sum) + eps)


# ------------------------------------------------------------ one description per optimizer

@dataclass
class Spec:
    name: str
    configs: list                 # hyperparameter dicts
    states: Callable              # cfg -> names of the state arrays it needs
    call: Callable                # (kernel, param, grad, state, cfg, t) -> None
    formula: Callable
    torch_optimizer: Callable     # (torch, [tensor], cfg) -> optimizer, or None to skip
    torch_state: dict             # our state name -> torch state key


def _options(**axes):
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def _sgd_configs():
    configs = []
    for c in _options(momentum=(0.0, 0.9), dampening=(0.0, 0.3), nesterov=(False, True),
                      weight_decay=(0.0, 0.05), maximize=(False, True)):
        if c["momentum"] == 0 and (c["dampening"] or c["nesterov"]):
            continue  # these options do nothing without momentum
        configs.append(dict(c, lr=0.05))
    return configs


def _sgd_torch(torch, params, c):
    if c["nesterov"] and c["dampening"]:
        return None  # torch refuses Nesterov with dampening
    return torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"],
                           dampening=c["dampening"], weight_decay=c["weight_decay"],
                           nesterov=c["nesterov"], maximize=c["maximize"], foreach=False)


def _adam_configs():
    return [dict(c, lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8)
            for c in _options(amsgrad=(False, True), decoupled=(False, True),
                              weight_decay=(0.0, 0.1), maximize=(False, True))
            if c["weight_decay"] or not c["decoupled"]]


def _adam_torch(torch, params, c):
    cls = torch.optim.AdamW if c["decoupled"] else torch.optim.Adam
    return cls(params, lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
               weight_decay=c["weight_decay"], amsgrad=c["amsgrad"],
               maximize=c["maximize"], foreach=False)


def _rmsprop_torch(torch, params, c):
    return torch.optim.RMSprop(params, lr=c["lr"], alpha=c["alpha"], eps=c["eps"],
                               weight_decay=c["weight_decay"], momentum=c["momentum"],
                               centered=c["centered"], maximize=c["maximize"],
                               foreach=False)


def _adagrad_torch(torch, params, c):
    return torch.optim.Adagrad(params, lr=c["lr"], lr_decay=c["lr_decay"],
                               weight_decay=c["weight_decay"], eps=c["eps"],
                               maximize=c["maximize"], foreach=False)


SPECS = {
    "sgd": Spec(
        "sgd", _sgd_configs(),
        states=lambda c: ("momentum_buffer",) if c["momentum"] else (),
        call=lambda k, p, g, s, c, t: k(
            p, g, s.get("momentum_buffer"), c["lr"], c["momentum"], c["dampening"],
            c["weight_decay"], c["nesterov"], c["maximize"], t == 1),
        formula=formula_sgd, torch_optimizer=_sgd_torch,
        torch_state={"momentum_buffer": "momentum_buffer"}),
    "adam": Spec(
        "adam", _adam_configs(),
        states=lambda c: ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if c["amsgrad"] else ()),
        call=lambda k, p, g, s, c, t: k(
            p, g, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"), t, c["lr"],
            c["beta1"], c["beta2"], c["eps"], c["weight_decay"], c["decoupled"],
            c["amsgrad"], c["maximize"]),
        formula=formula_adam, torch_optimizer=_adam_torch,
        torch_state={"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq",
                     "max_exp_avg_sq": "max_exp_avg_sq"}),
    "rmsprop": Spec(
        "rmsprop",
        [dict(c, lr=0.01, alpha=0.9, eps=1e-8)
         for c in _options(centered=(False, True), momentum=(0.0, 0.9),
                           weight_decay=(0.0, 0.05), maximize=(False, True))],
        states=lambda c: (("square_avg",) + (("grad_avg",) if c["centered"] else ())
                          + (("momentum_buffer",) if c["momentum"] > 0 else ())),
        call=lambda k, p, g, s, c, t: k(
            p, g, s["square_avg"], s.get("grad_avg"), s.get("momentum_buffer"), c["lr"],
            c["alpha"], c["eps"], c["weight_decay"], c["momentum"], c["centered"],
            c["maximize"]),
        formula=formula_rmsprop, torch_optimizer=_rmsprop_torch,
        torch_state={"square_avg": "square_avg", "grad_avg": "grad_avg",
                     "momentum_buffer": "momentum_buffer"}),
    "adagrad": Spec(
        "adagrad",
        [dict(c, lr=0.1, eps=1e-10)
         for c in _options(lr_decay=(0.0, 0.01), weight_decay=(0.0, 0.05),
                           maximize=(False, True))],
        states=lambda c: ("state_sum",),
        call=lambda k, p, g, s, c, t: k(
            p, g, s["state_sum"], t, c["lr"], c["lr_decay"], c["weight_decay"], c["eps"],
            c["maximize"]),
        formula=formula_adagrad, torch_optimizer=_adagrad_torch,
        torch_state={"state_sum": "sum"}),
}

CASES = [pytest.param(name, cfg, id=f"{name}-" + "-".join(
             f"{k}={v}" for k, v in cfg.items() if not isinstance(v, float) or k in
             ("momentum", "dampening", "weight_decay", "lr_decay")))
         for name, spec in SPECS.items() for cfg in spec.configs]


def _full_config(name):
    """The config with the most options switched on (the last one listed)."""
    return SPECS[name].configs[-1]


# ------------------------------------------------------------ running trajectories

def _make_grad(rng, shape, dtype, layout):
    """A random gradient of `shape` stored C-contiguous, transposed, or strided."""
    if layout == "c":
        return rng.standard_normal(shape).astype(dtype)
    if layout == "transposed":
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    if layout == "strided":
        big = rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(dtype)
        return big[..., ::2]
    raise ValueError(layout)


def problem(shape, dtype, steps, layout="c", seed=0):
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(shape).astype(dtype)
    grads = [_make_grad(rng, shape, dtype, layout) for _ in range(steps)]
    return param, grads


def trajectory(kernel, name, cfg, dtype, shape=(5, 7), steps=STEPS, layout="c"):
    """Params after each step and the final state, starting from zero state."""
    spec = SPECS[name]
    param, grads = problem(shape, dtype, steps, layout)
    state = {s: np.zeros(shape, dtype) for s in spec.states(cfg)}
    history = []
    for t, grad in enumerate(grads, start=1):
        assert spec.call(kernel, param, grad, state, cfg, t) is None
        history.append(param.copy())
    return np.stack(history), state


def _ref_kernel(name):
    return lambda *args: getattr(ref, f"{name}_step")(np, *args)


def _core_kernel(core, name):
    return getattr(core, f"{name}_step")


def assert_same_run(a, b, rtol, atol):
    (pa, sa), (pb, sb) = a, b
    np.testing.assert_allclose(pa, pb, rtol=rtol, atol=atol)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_allclose(sa[key], sb[key], rtol=rtol, atol=atol, err_msg=key)


# Same arithmetic in the same order and dtype: equal up to contraction into
# fused multiply-adds, which some compilers do on some CPUs.
TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}


# ------------------------------------------------------------ reference

@pytest.mark.parametrize("name,cfg", CASES)
def test_reference_matches_formula(name, cfg):
    got = trajectory(_ref_kernel(name), name, cfg, np.float64)
    want = trajectory(SPECS[name].formula, name, cfg, np.float64)
    assert_same_run(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SPECS)
def test_reference_accepts_noncontiguous_grad(name):
    cfg = _full_config(name)
    want = trajectory(SPECS[name].formula, name, cfg, np.float64, layout="transposed")
    got = trajectory(_ref_kernel(name), name, cfg, np.float64, layout="transposed")
    assert_same_run(got, want, rtol=1e-10, atol=1e-12)


def test_formula_trajectories_differ_between_options():
    # Guards the harness: if options were ignored, every config would agree.
    runs = [trajectory(_ref_kernel("adam"), "adam", c, np.float64)[0]
            for c in SPECS["adam"].configs]
    for i, j in itertools.combinations(range(len(runs)), 2):
        assert not np.allclose(runs[i], runs[j], rtol=1e-10, atol=0)


# ------------------------------------------------------------ compiled vs reference

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cfg", CASES)
def test_compiled_matches_reference(core, name, cfg, dtype):
    got = trajectory(_core_kernel(core, name), name, cfg, dtype)
    want = trajectory(_ref_kernel(name), name, cfg, dtype)
    assert got[0].dtype == dtype
    assert_same_run(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,layout", [
    ((), "c"), ((1,), "c"), ((13,), "strided"), ((3, 1, 4), "transposed"),
    ((1, 9), "transposed"), ((6, 5), "strided"), ((2, 3, 5), "strided"),
])
@pytest.mark.parametrize("name", SPECS)
def test_compiled_shapes_and_layouts(core, name, shape, layout, dtype):
    cfg = _full_config(name)
    got = trajectory(_core_kernel(core, name), name, cfg, dtype, shape, 6, layout)
    want = trajectory(_ref_kernel(name), name, cfg, dtype, shape, 6, layout)
    assert_same_run(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", SPECS)
def test_compiled_large_parameter_uses_all_threads(core, name, dtype):
    # Above the threshold the loop is split across threads; every element must
    # still be updated exactly once.
    from minigrad._core.threads import parallel_min
    cfg = _full_config(name)
    shape = (3, 4 * parallel_min() // 3 + 1)  # optimizer updates thread above 4x the minimum
    got = trajectory(_core_kernel(core, name), name, cfg, dtype, shape, 3, "transposed")
    want = trajectory(_ref_kernel(name), name, cfg, dtype, shape, 3, "transposed")
    assert_same_run(got, want, **TOL[dtype])


@pytest.mark.parametrize("name", SPECS)
def test_compiled_falls_back_outside_fast_path(core, name):
    cfg = _full_config(name)
    for dtype in (np.float16, np.longdouble):
        got = trajectory(_core_kernel(core, name), name, cfg, dtype, steps=4)
        want = trajectory(_ref_kernel(name), name, cfg, dtype, steps=4)
        assert_same_run(got, want, rtol=0, atol=0)

    # A gradient of another dtype, and state that is not C-contiguous.
    spec = SPECS[name]
    results = []
    for kernel in (_core_kernel(core, name), _ref_kernel(name)):
        param, grads = problem((4, 6), np.float32, 3)
        state = {s: np.zeros((6, 4), np.float32).T for s in spec.states(cfg)}
        for t, grad in enumerate(grads, start=1):
            spec.call(kernel, param, grad.astype(np.float64), state, cfg, t)
        results.append((param, state))
    assert_same_run(results[0], results[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", SPECS)
def test_compiled_signature_matches_reference(core, name):
    fn = f"{name}_step"
    want = list(inspect.signature(getattr(ref, fn)).parameters)[1:]
    assert list(inspect.signature(getattr(core, fn)).parameters) == want


def test_backend_exposes_compiled_kernels(core):
    from minigrad.backend import core_disabled
    from minigrad.backend.cpu import backend
    for fn in ref.__all__:
        if core_disabled():  # MINIGRAD_DISABLE_CORE=1: the references must be wired instead
            assert getattr(backend, fn).func is getattr(ref, fn)
        else:
            assert getattr(backend, fn) is getattr(core, fn)


# ------------------------------------------------------------ against torch.optim

def _torch_trajectory(torch, name, cfg, dtype):
    spec = SPECS[name]
    param, grads = problem((5, 7), dtype, STEPS)
    p = torch.nn.Parameter(torch.from_numpy(param.copy()))
    opt = spec.torch_optimizer(torch, [p], cfg)
    if opt is None:
        pytest.skip("torch does not accept this combination")
    history = []
    for grad in grads:
        p.grad = torch.from_numpy(grad.copy())
        opt.step()
        history.append(p.detach().numpy().copy())
    torch_state = opt.state[p]
    state = {ours: torch_state[theirs].numpy().copy()
             for ours, theirs in spec.torch_state.items() if ours in spec.states(cfg)}
    return np.stack(history), state


@pytest.mark.parametrize("name,cfg", CASES)
def test_matches_torch(name, cfg):
    torch = pytest.importorskip("torch")
    kernels = [_ref_kernel(name)]
    try:
        from minigrad._core import optim as core
        kernels.append(_core_kernel(core, name))
    except ImportError:
        pass
    for dtype, tol in ((np.float64, dict(rtol=1e-10, atol=1e-12)),
                       # torch's kernels differ in rounding (lerp, fused multiply-add)
                       (np.float32, dict(rtol=1e-4, atol=1e-5))):
        want = _torch_trajectory(torch, name, cfg, dtype)
        for kernel in kernels:
            assert_same_run(trajectory(kernel, name, cfg, dtype), want, **tol)


# ------------------------------------------------------------ sum_of_squares

def _fsum_squares(x):
    return math.fsum(float(v) ** 2 for v in np.asarray(x, dtype=np.float64).ravel())


SUMSQ_INPUTS = {
    "scalar": lambda rng: np.float32(rng.standard_normal()) * np.ones((), np.float32),
    "empty": lambda rng: np.zeros((0, 3), np.float32),
    "vector32": lambda rng: rng.standard_normal(1001).astype(np.float32),
    "matrix64": lambda rng: rng.standard_normal((37, 19)),
    "transposed": lambda rng: rng.standard_normal((17, 23)).astype(np.float32).T,
    "strided": lambda rng: rng.standard_normal((9, 40))[:, ::3],
    "ints": lambda rng: rng.integers(-50, 50, size=(8, 9)),
    "large32": lambda rng: (rng.standard_normal((70_001,)) * 1e3).astype(np.float32),
    "large64_fortran": lambda rng: np.asfortranarray(rng.standard_normal((300, 301))),
}


@pytest.mark.parametrize("kind", SUMSQ_INPUTS)
def test_sum_of_squares_reference(kind):
    x = SUMSQ_INPUTS[kind](np.random.default_rng(1))
    got = ref.sum_of_squares(np, x)
    assert isinstance(got, float)
    assert got == pytest.approx(_fsum_squares(x), rel=1e-13, abs=0)


@pytest.mark.parametrize("kind", SUMSQ_INPUTS)
def test_sum_of_squares_compiled(core, kind):
    x = SUMSQ_INPUTS[kind](np.random.default_rng(1))
    got = core.sum_of_squares(x)
    assert isinstance(got, float)
    # float64 accumulation in a different order than numpy's pairwise sum.
    assert got == pytest.approx(ref.sum_of_squares(np, x), rel=1e-13, abs=0)


def test_sum_of_squares_accumulates_in_float64(core):
    # In float32 every small square would vanish next to the large one.
    x = np.full(1000, 1e-3, np.float32)
    x[0] = 1e4
    want = _fsum_squares(x)
    assert want - 1e8 > 5e-4
    for got in (core.sum_of_squares(x), ref.sum_of_squares(np, x)):
        assert got == pytest.approx(want, rel=1e-13, abs=0)
