"""Optimizers: trajectories against the published update rules (numpy, float64),
against torch.optim when installed, fused kernels against the reference path,
state_dict round trips, parameter groups, validation and device moves.

The fixed problem: loss = 0.5*|X W + v - Y|^2 + 0.1*sum(sin W), whose gradient
is written out in numpy, so every step's gradient depends on the parameters the
optimizer produced (a wrong update shows up in every later step). W and v sit
in two parameter groups with different learning rates; a third parameter never
receives a gradient and must be left alone.
"""
import functools
import itertools

import numpy as np
import pytest

import minigrad as mg
from minigrad import optim
from minigrad.backend.reference import optim as ref_kernels

STEPS = 25


# ------------------------------------------------------------------ the problem

def problem_data(seed=0):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((6, 4)), "Y": rng.standard_normal((6, 3)),
            "W": rng.standard_normal((4, 3)), "v": rng.standard_normal(3),
            "frozen": rng.standard_normal(2)}


def numpy_grads(d, W, v):
    r = d["X"] @ W + v - d["Y"]
    return d["X"].T @ r + 0.1 * np.cos(W), r.sum(axis=0)


def minigrad_loss(X, Y, W, v):
    return ((X @ W + v - Y) ** 2).sum() * 0.5 + W.sin().sum() * 0.1


def make_params(d, dtype=mg.float64):
    return [mg.tensor(d[k], dtype=dtype, requires_grad=True) for k in ("W", "v", "frozen")]


def groups(params, cfg):
    """W uses the config's lr; v (with the gradient-less parameter) half of it."""
    W, v, frozen = params
    return [{"params": [W]}, {"params": [v, frozen], "lr": cfg["lr"] * 0.5}]


def run_minigrad(cls, cfg, steps=STEPS, dtype=mg.float64, opt_out=None):
    d = problem_data()
    params = make_params(d, dtype)
    X, Y = mg.tensor(d["X"], dtype=dtype), mg.tensor(d["Y"], dtype=dtype)
    opt = cls(groups(params, cfg), **cfg)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        minigrad_loss(X, Y, params[0], params[1]).backward()
        opt.step()
        history.append([p.detach().numpy().astype(np.float64).copy() for p in params])
    if opt_out is not None:
        opt_out.append(opt)
    return history


# ------------------------------------------------------------------ published update rules
# Written from the algorithm boxes of the PyTorch documentation, out of place.

def rule_sgd(p, g, st, c, lr, t):
    g = (-g if c.get("maximize") else g) + c.get("weight_decay", 0) * p
    m = c.get("momentum", 0)
    if m:
        if "momentum_buffer" in st:
            st["momentum_buffer"] = m * st["momentum_buffer"] + (1 - c.get("dampening", 0)) * g
        else:
            st["momentum_buffer"] = g.copy()
        b = st["momentum_buffer"]
        g = g + m * b if c.get("nesterov") else b
    return p - lr * g


def rule_adam(p, g, st, c, lr, t, decoupled=False):
    b1, b2 = c.get("betas", (0.9, 0.999))
    eps, wd = c.get("eps", 1e-8), c.get("weight_decay", 0)
    g = -g if c.get("maximize") else g
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    st["exp_avg"] = b1 * st.get("exp_avg", 0) + (1 - b1) * g
    st["exp_avg_sq"] = b2 * st.get("exp_avg_sq", 0) + (1 - b2) * g * g
    v = st["exp_avg_sq"]
    if c.get("amsgrad"):
        st["max_exp_avg_sq"] = np.maximum(st.get("max_exp_avg_sq", 0), v)
        v = st["max_exp_avg_sq"]
    m_hat = st["exp_avg"] / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def rule_rmsprop(p, g, st, c, lr, t):
    alpha, eps, m = c.get("alpha", 0.99), c.get("eps", 1e-8), c.get("momentum", 0)
    g = (-g if c.get("maximize") else g) + c.get("weight_decay", 0) * p
    st["square_avg"] = alpha * st.get("square_avg", 0) + (1 - alpha) * g * g
    v = st["square_avg"]
    if c.get("centered"):
        st["grad_avg"] = alpha * st.get("grad_avg", 0) + (1 - alpha) * g
        v = v - st["grad_avg"] ** 2
    if m > 0:
        st["momentum_buffer"] = m * st.get("momentum_buffer", 0) + g / (np.sqrt(v) + eps)
        return p - lr * st["momentum_buffer"]
    return p - lr * g / (np.sqrt(v) + eps)


def rule_adagrad(p, g, st, c, lr, t):
    eps = c.get("eps", 1e-10)
    g = (-g if c.get("maximize") else g) + c.get("weight_decay", 0) * p
    clr = lr / (1 + (t - 1) * c.get("lr_decay", 0))
    st["sum"] = st.get("sum", c.get("initial_accumulator_value", 0)) + g * g
    return p - clr * g / (np.sqrt(st["sum"]) + eps)


def run_rule(rule, cfg, steps=STEPS):
    d = problem_data()
    W, v, frozen = d["W"].copy(), d["v"].copy(), d["frozen"].copy()
    states = ({}, {})
    history = []
    for t in range(1, steps + 1):
        gW, gv = numpy_grads(d, W, v)
        W = rule(W, gW, states[0], cfg, cfg["lr"], t)
        v = rule(v, gv, states[1], cfg, cfg["lr"] * 0.5, t)
        history.append([W.copy(), v.copy(), frozen.copy()])
    return history, states


def _options(**axes):
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


SGD_CONFIGS = [dict(c, lr=0.01) for c in _options(
    momentum=(0.0, 0.9), dampening=(0.0, 0.5), nesterov=(False, True),
    weight_decay=(0.0, 0.1), maximize=(False, True))
    if not (c["nesterov"] and (c["momentum"] == 0 or c["dampening"]))
    and not (c["momentum"] == 0 and c["dampening"])]
ADAM_CONFIGS = [dict(c, lr=0.05, betas=(0.8, 0.95)) for c in _options(
    amsgrad=(False, True), weight_decay=(0.0, 0.1), maximize=(False, True))]
RMSPROP_CONFIGS = [dict(c, lr=0.01, alpha=0.9) for c in _options(
    centered=(False, True), momentum=(0.0, 0.8), weight_decay=(0.0, 0.1), maximize=(False, True))]
ADAGRAD_CONFIGS = [dict(c, lr=0.1) for c in _options(
    lr_decay=(0.0, 0.05), weight_decay=(0.0, 0.1), initial_accumulator_value=(0.0, 0.2),
    maximize=(False, True))]

OPTIMIZERS = {
    "SGD": (optim.SGD, rule_sgd, SGD_CONFIGS),
    "Adam": (optim.Adam, rule_adam, ADAM_CONFIGS),
    "AdamW": (optim.AdamW, functools.partial(rule_adam, decoupled=True), ADAM_CONFIGS),
    "RMSprop": (optim.RMSprop, rule_rmsprop, RMSPROP_CONFIGS),
    "Adagrad": (optim.Adagrad, rule_adagrad, ADAGRAD_CONFIGS),
}


def _case_id(name, cfg):
    flags = [f"{k}={v}" for k, v in cfg.items() if k not in ("lr", "betas", "alpha")]
    return "-".join([name] + flags)


CASES = [pytest.param(name, cfg, id=_case_id(name, cfg))
         for name, (_, _, configs) in OPTIMIZERS.items() for cfg in configs]


def assert_same_history(got, want, **tol):
    assert len(got) == len(want)
    for step, (g_step, w_step) in enumerate(zip(got, want)):
        for i, (g, w) in enumerate(zip(g_step, w_step)):
            np.testing.assert_allclose(g, w, err_msg=f"step {step + 1}, parameter {i}", **tol)


# ------------------------------------------------------------------ trajectories

@pytest.mark.parametrize("name,cfg", CASES)
def test_trajectory_matches_published_rule(name, cfg):
    cls, rule, _ = OPTIMIZERS[name]
    opts = []
    got = run_minigrad(cls, cfg, opt_out=opts)
    want, want_states = run_rule(rule, cfg)
    assert_same_history(got, want, rtol=1e-10, atol=1e-12)

    opt = opts[0]
    W, v, frozen = (p for g in opt.param_groups for p in g["params"])
    assert frozen not in opt.state or name == "Adagrad"  # Adagrad builds state eagerly
    np.testing.assert_array_equal(frozen.detach().numpy(), problem_data()["frozen"])
    for p, want_state in zip((W, v), want_states):
        state = opt.state[p]
        expected_keys = set(want_state) | ({"step"} if name != "SGD" else set())
        assert set(state) == expected_keys
        for key, value in want_state.items():
            np.testing.assert_allclose(state[key].numpy(), value, rtol=1e-10, atol=1e-12,
                                       err_msg=key)
        if "step" in state:
            assert state["step"].dtype == mg.float32 and state["step"].item() == STEPS


def test_trajectories_differ_between_options():
    # Guards the comparison itself: options that were ignored would agree.
    finals = [run_rule(rule_rmsprop, c, steps=5)[0][-1][0] for c in RMSPROP_CONFIGS]
    for a, b in itertools.combinations(finals, 2):
        assert not np.allclose(a, b, rtol=1e-9, atol=0)


def _torch_history(torch, name, cfg, dtype):
    d = problem_data()
    tdtype = torch.float64 if dtype == mg.float64 else torch.float32
    W, v, frozen = (torch.tensor(d[k], dtype=tdtype, requires_grad=True)
                    for k in ("W", "v", "frozen"))
    X, Y = (torch.tensor(d[k], dtype=tdtype) for k in ("X", "Y"))
    opt = getattr(torch.optim, name)(groups((W, v, frozen), cfg), foreach=False, **cfg)
    history = []
    for _ in range(STEPS):
        opt.zero_grad()
        (((X @ W + v - Y) ** 2).sum() * 0.5 + W.sin().sum() * 0.1).backward()
        opt.step()
        history.append([p.detach().numpy().astype(np.float64).copy() for p in (W, v, frozen)])
    return history


@pytest.mark.parametrize("name,cfg", CASES)
def test_trajectory_matches_torch(name, cfg):
    torch = pytest.importorskip("torch")
    cls = OPTIMIZERS[name][0]
    assert_same_history(run_minigrad(cls, cfg), _torch_history(torch, name, cfg, mg.float64),
                        rtol=1e-10, atol=1e-12)
    # float32: both round in float32, in slightly different orders, and the
    # feedback through the gradient amplifies that over a long run.
    assert_same_history(run_minigrad(cls, cfg, dtype=mg.float32)[:10],
                        _torch_history(torch, name, cfg, mg.float32)[:10], rtol=2e-5, atol=2e-6)


KERNELS = {"SGD": "sgd_step", "Adam": "adam_step", "AdamW": "adam_step",
           "RMSprop": "rmsprop_step", "Adagrad": "adagrad_step"}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fused_kernels_match_reference_path(name, monkeypatch):
    from minigrad.backend.cpu import backend
    cls, _, configs = OPTIMIZERS[name]
    kernel = KERNELS[name]
    for cfg in configs:
        fused = run_minigrad(cls, cfg, dtype=mg.float32)
        with monkeypatch.context() as m:
            m.setattr(backend, kernel, functools.partial(getattr(ref_kernels, kernel), np))
            reference = run_minigrad(cls, cfg, dtype=mg.float32)
        assert_same_history(fused, reference, rtol=1e-6, atol=1e-7)


def test_step_uses_the_parameter_backend_kernel(monkeypatch):
    from minigrad.backend.cpu import backend
    calls = []
    real = backend.adam_step
    monkeypatch.setattr(backend, "adam_step", lambda *a: calls.append(a) or real(*a))
    run_minigrad(optim.Adam, ADAM_CONFIGS[0], steps=2)
    assert len(calls) == 4  # two parameters with gradients, two steps


# ------------------------------------------------------------------ state_dict

FULL_OPTIONS = {
    "SGD": dict(lr=0.01, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.1),
    "Adam": dict(lr=0.05, betas=(0.8, 0.95), amsgrad=True, weight_decay=0.1),
    "AdamW": dict(lr=0.05, betas=(0.8, 0.95), amsgrad=True, weight_decay=0.1),
    "RMSprop": dict(lr=0.01, alpha=0.9, centered=True, momentum=0.8, weight_decay=0.1),
    "Adagrad": dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2),
}


def _train(opt, params, X, Y, steps):
    out = []
    for _ in range(steps):
        opt.zero_grad()
        minigrad_loss(X, Y, params[0], params[1]).backward()
        opt.step()
        out.append([np.array(p.detach()) for p in params])
    return out


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_continues_bitwise(name):
    cls = OPTIMIZERS[name][0]
    cfg = FULL_OPTIONS[name]
    d = problem_data()
    X, Y = mg.tensor(d["X"]), mg.tensor(d["Y"])
    X, Y = X.double(), Y.double()
    params = make_params(d)
    opt = cls(groups(params, cfg), **cfg)
    _train(opt, params, X, Y, 10)
    saved = opt.state_dict()
    snapshot = [[v.numpy().copy() if isinstance(v, mg.Tensor) else v for v in s.values()]
                for s in saved["state"].values()]

    clones = [mg.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    restored = cls(groups(clones, dict(cfg, lr=123.0)), **dict(cfg, lr=123.0))
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["lr"] == cfg["lr"]
    original_run = _train(opt, params, X, Y, 15)
    restored_run = _train(restored, clones, X, Y, 15)
    for a_step, b_step in zip(original_run, restored_run):
        for a, b in zip(a_step, b_step):
            assert np.array_equal(a, b)

    # The saved dict is a snapshot: training on did not change it.
    for before, state in zip(snapshot, saved["state"].values()):
        for b, v in zip(before, state.values()):
            if isinstance(v, mg.Tensor):
                assert np.array_equal(b, v.numpy())


def test_state_dict_layout_follows_pytorch():
    d = problem_data()
    params = make_params(d)
    opt = optim.Adam(groups(params, dict(lr=0.1)), lr=0.1)
    for p in params[:2]:
        p.grad = mg.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert sd["param_groups"][1]["lr"] == 0.05
    assert set(sd["state"]) == {0, 1}  # the gradient-less parameter has no state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"][0]["step"].item() == 1.0


def test_load_state_dict_casts_state_to_parameter_dtype():
    d = problem_data()
    params64 = make_params(d)
    opt = optim.RMSprop(params64, lr=0.01, momentum=0.5, centered=True)
    for p in params64:
        p.grad = mg.ones_like(p)
    opt.step()
    params32 = make_params(d, mg.float32)
    opt32 = optim.RMSprop(params32, lr=0.01)
    opt32.load_state_dict(opt.state_dict())
    for p in params32:
        state = opt32.state[p]
        assert state["step"].dtype == mg.float32  # 'step' is never cast
        for key in ("square_avg", "grad_avg", "momentum_buffer"):
            assert state[key].dtype == mg.float32 and state[key].device == p.device
            assert state[key].numpy().flags.c_contiguous
    assert opt32.param_groups[0]["centered"] and opt32.param_groups[0]["momentum"] == 0.5


def test_load_state_dict_rejects_mismatched_groups():
    d = problem_data()
    params = make_params(d)
    opt = optim.SGD(groups(params, dict(lr=0.1)), lr=0.1, momentum=0.9)
    one_group = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        one_group.load_state_dict(opt.state_dict())
    other_sizes = optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    with pytest.raises(ValueError, match="group 0 has 1 parameters in the state dict and 2"):
        other_sizes.load_state_dict(opt.state_dict())


def test_adamw_stays_decoupled_after_loading_adam_state():
    d = problem_data()
    params = make_params(d)
    adam = optim.Adam(params, lr=0.1)
    adamw = optim.AdamW(params, lr=0.1)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


# ------------------------------------------------------------------ parameter groups

def test_defaults_fill_groups_and_overrides_apply():
    a, b = mg.zeros(2, requires_grad=True), mg.zeros(3, requires_grad=True)
    opt = optim.SGD([{"params": a}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[0]["params"] == [a]
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    assert opt.param_groups[1]["nesterov"] is False
    a.grad = mg.ones(2)
    b.grad = mg.ones(3)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), -0.1)
    np.testing.assert_allclose(b.detach().numpy(), -0.5)


def test_add_param_group():
    a, b = mg.zeros(2, requires_grad=True), mg.zeros(3, requires_grad=True)
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "betas": (0.5, 0.9)})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["betas"] == (0.5, 0.9)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Invalid learning rate: -2"):
        opt.add_param_group({"params": [mg.zeros(1, requires_grad=True)], "lr": -2})
    assert len(opt.param_groups) == 2


def test_named_parameters_are_accepted():
    a = mg.zeros(2, requires_grad=True)
    opt = optim.SGD([("weight", a)], lr=0.1)
    assert opt.param_groups[0]["params"] == [a]
    assert opt.param_groups[0]["param_names"] == ["weight"]


@pytest.mark.parametrize("params,error,match", [
    ([], ValueError, "empty parameter list"),
    (mg.zeros(2, requires_grad=True), TypeError, "iterable of Tensors or dicts"),
    ({mg.zeros(2, requires_grad=True)}, TypeError, "ordered collections"),
    ([np.zeros(2)], TypeError, "can only optimize Tensors.*ndarray"),
    ([mg.zeros(2, requires_grad=True) * 2], ValueError, "non-leaf"),
])
def test_bad_parameter_lists(params, error, match):
    with pytest.raises(error, match=match):
        optim.SGD(params, lr=0.1)


def test_duplicate_parameter_in_a_group_is_an_error():
    a = mg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="duplicate parameters"):
        optim.SGD([a, a], lr=0.1)


@pytest.mark.parametrize("cls,kwargs,message", [
    (optim.SGD, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.SGD, dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.SGD, dict(weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
    (optim.SGD, dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (optim.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires"),
    (optim.Adam, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (optim.Adam, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.Adam, dict(betas=(0.9,)), "betas must be a pair"),
    (optim.AdamW, dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
    (optim.RMSprop, dict(alpha=-0.5), "Invalid alpha value: -0.5"),
    (optim.RMSprop, dict(momentum=-1), "Invalid momentum value: -1"),
    (optim.RMSprop, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.Adagrad, dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    (optim.Adagrad, dict(initial_accumulator_value=-0.1),
     "Invalid initial_accumulator_value value: -0.1"),
    (optim.Adagrad, dict(eps=-1), "Invalid epsilon value: -1"),
    (optim.Adam, dict(lr=float("nan")), "Invalid learning rate: nan"),
])
def test_invalid_hyperparameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cls([mg.zeros(2, requires_grad=True)], **kwargs)


def test_non_numeric_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="learning rate must be a real number, got str"):
        optim.SGD([mg.zeros(2, requires_grad=True)], lr="0.1")


def test_defaults_match_pytorch():
    p = [mg.zeros(1, requires_grad=True)]
    assert optim.SGD(p).defaults == dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                                         nesterov=False, maximize=False)
    adam = optim.Adam(p).defaults
    assert (adam["lr"], adam["betas"], adam["eps"], adam["weight_decay"], adam["amsgrad"]) == \
        (1e-3, (0.9, 0.999), 1e-8, 0, False)
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2
    rms = optim.RMSprop(p).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"], rms["momentum"], rms["centered"]) == \
        (1e-2, 0.99, 1e-8, 0, False)
    ada = optim.Adagrad(p).defaults
    assert (ada["lr"], ada["lr_decay"], ada["initial_accumulator_value"], ada["eps"]) == \
        (1e-2, 0, 0, 1e-10)


# ------------------------------------------------------------------ zero_grad, closure, repr

def test_zero_grad_sets_none_or_zeros():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([a], lr=0.1)
    (a * a).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and a.grad.requires_grad is False
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert a.grad is None


def test_step_with_closure_returns_loss_and_records_graph():
    a = mg.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([a], lr=0.25)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (a * a).sum()
        calls.append(mg.is_grad_enabled())
        loss.backward()
        return loss

    with mg.no_grad():
        loss = opt.step(closure)
    assert calls == [True]
    assert loss.item() == 5.0
    np.testing.assert_allclose(a.detach().numpy(), [0.5, -1.0])  # a - 0.25 * 2a


def test_optimizer_repr_lists_groups():
    opt = optim.SGD([mg.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    momentum: 0.9\n" in text


# ------------------------------------------------------------------ state details

def test_adagrad_builds_state_at_construction():
    a = mg.zeros(3, requires_grad=True)
    opt = optim.Adagrad([a], initial_accumulator_value=0.3)
    np.testing.assert_allclose(opt.state[a]["sum"].numpy(), 0.3)
    assert opt.state[a]["sum"].dtype == mg.float32
    assert opt.state[a]["step"].item() == 0.0


def test_sgd_momentum_switched_on_later_starts_from_the_gradient():
    cfg = dict(lr=0.01)
    d = problem_data()
    params = make_params(d)
    X, Y = mg.tensor(d["X"]).double(), mg.tensor(d["Y"]).double()
    opt = optim.SGD(groups(params, cfg), **cfg)
    _train(opt, params, X, Y, 3)
    for group in opt.param_groups:
        group["momentum"] = 0.9  # what OneCycleLR does to a momentum-free SGD
    got = _train(opt, params, X, Y, 4)

    W, v = d["W"].copy(), d["v"].copy()
    states = ({}, {})
    want = []
    for t in range(7):
        c = dict(lr=0.01, momentum=0.9 if t >= 3 else 0)
        gW, gv = numpy_grads(d, W, v)
        W = rule_sgd(W, gW, states[0], c, 0.01, t)
        v = rule_sgd(v, gv, states[1], c, 0.005, t)
        want.append([W.copy(), v.copy()])
    for g_step, w_step in zip(got, want[3:]):
        for g, w in zip(g_step, w_step):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_state_follows_parameters_to_another_device_and_dtype():
    d = problem_data()
    cfg = FULL_OPTIONS["Adam"]
    params = make_params(d)
    X, Y = mg.tensor(d["X"]).double(), mg.tensor(d["Y"]).double()
    opt = optim.Adam(groups(params, cfg), **cfg)
    _train(opt, params, X, Y, 3)
    for p in params:
        p.data = p.data.to("standin")
    moved = _train(opt, params, X.to("standin"), Y.to("standin"), 2)
    for p in params[:2]:
        for key, value in opt.state[p].items():
            assert value.device == ("cpu" if key == "step" else "standin"), key

    # The same run without the move.
    params_cpu = make_params(d)
    opt_cpu = optim.Adam(groups(params_cpu, cfg), **cfg)
    stay = _train(opt_cpu, params_cpu, X, Y, 5)[3:]
    for a_step, b_step in zip(moved, stay):
        for a, b in zip(a_step, b_step):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)

    for p in params:  # a dtype change moves the state too
        p.data = p.data.to("cpu").float()
    _train(opt, params, X.float(), Y.float(), 1)
    assert opt.state[params[0]]["exp_avg"].dtype == mg.float32
    assert opt.state[params[0]]["exp_avg"].device == "cpu"


def test_noncontiguous_gradient():
    # A gradient stored transposed takes the kernel's any-layout path.
    a = mg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = mg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    g = np.arange(6.0).reshape(3, 2) * 0.5
    a.grad = mg.tensor(g).T
    b.grad = mg.tensor(np.ascontiguousarray(g.T))
    assert not a.grad.is_contiguous()
    for opt in (optim.Adam([a], lr=0.1), optim.Adam([b], lr=0.1)):
        opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
