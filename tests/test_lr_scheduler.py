"""Learning-rate schedulers: 20-step sequences against closed forms written
here from the schedules' definitions, against torch.optim.lr_scheduler when
installed (same recursive arithmetic, so equal to the last bit), chaining,
step(epoch), state_dict round trips and argument errors."""
import math
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import optim
from minigrad.optim import lr_scheduler as sched

STEPS = 20
BASE_LRS = (0.1, 0.02)


def make_optimizer(cls=optim.SGD, **kw):
    a, b = mg.zeros(2, requires_grad=True), mg.zeros(3, requires_grad=True)
    return cls([{"params": [a], "lr": BASE_LRS[0]}, {"params": [b], "lr": BASE_LRS[1]}], **kw)


def lr_sequence(scheduler, steps=STEPS):
    """Learning rates at epoch 0 (set by construction) and after each step."""
    seq = [scheduler.get_last_lr()]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        seq.append(scheduler.get_last_lr())
    return seq


def anneal_cos(start, end, pct):
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def anneal_linear(start, end, pct):
    return start + (end - start) * pct


def one_cycle(e, top, total, start, peak, end, pct_start=0.3, three_phase=False, anneal=anneal_cos):
    """1cycle from its definition: warm up start -> peak over the first pct_start
    of the steps, then go peak -> end (three_phase: peak -> start, start -> end)."""
    up = pct_start * total - 1
    if e <= up:
        return anneal(start, peak, e / up)
    if not three_phase:
        return anneal(peak, end, (e - up) / (total - 1 - up))
    down = 2 * pct_start * total - 2
    if e <= down:
        return anneal(peak, start, (e - up) / (down - up))
    return anneal(start, end, (e - down) / (total - 1 - down))


def one_cycle_lr(e, top, total, div=25.0, final_div=1e4, **kw):
    return one_cycle(e, top, total, top / div, top, top / div / final_div, **kw)


CLOSED_FORMS = {
    "StepLR": (dict(step_size=3, gamma=0.5), lambda base, e: base * 0.5 ** (e // 3)),
    "MultiStepLR": (dict(milestones=[2, 5, 5, 11], gamma=0.3),
                    lambda base, e: base * 0.3 ** sum(m <= e for m in (2, 5, 5, 11))),
    "ExponentialLR": (dict(gamma=0.9), lambda base, e: base * 0.9 ** e),
    "CosineAnnealingLR": (dict(T_max=7, eta_min=1e-3),
                          lambda base, e: 1e-3 + (base - 1e-3) * (1 + math.cos(math.pi * e / 7)) / 2),
    "LinearLR": (dict(start_factor=0.25, end_factor=0.9, total_iters=8),
                 lambda base, e: base * (0.25 + 0.65 * min(e, 8) / 8)),
    "LinearLR-defaults": ({}, lambda base, e: base * (1 / 3 + (2 / 3) * min(e, 5) / 5)),
    "OneCycleLR": (dict(max_lr=[1.0, 0.5], total_steps=STEPS),
                   lambda top, e: one_cycle_lr(e, top, STEPS)),
    "OneCycleLR-three-phase-linear": (
        dict(max_lr=[1.0, 0.5], total_steps=STEPS, three_phase=True, anneal_strategy="linear",
             pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
        lambda top, e: one_cycle_lr(e, top, STEPS, 10.0, 100.0, pct_start=0.25,
                                    three_phase=True, anneal=anneal_linear)),
}


def _scheduler(key, optimizer):
    name = key.split("-")[0]
    kwargs = CLOSED_FORMS[key][0]
    return getattr(sched, name)(optimizer, **kwargs)


@pytest.mark.parametrize("key", CLOSED_FORMS)
def test_sequence_matches_closed_form(key):
    formula = CLOSED_FORMS[key][1]
    got = lr_sequence(_scheduler(key, make_optimizer()))
    bases = (1.0, 0.5) if key.startswith("OneCycle") else BASE_LRS
    for e, lrs in enumerate(got):
        want = [formula(base, e) for base in bases]
        np.testing.assert_allclose(lrs, want, rtol=1e-12, atol=1e-15, err_msg=f"epoch {e}")


def test_closed_forms_are_not_constant():
    # Guards the comparison: every schedule above changes the learning rate.
    for key, (_, formula) in CLOSED_FORMS.items():
        assert len({round(formula(0.1, e), 12) for e in range(STEPS + 1)}) > 2, key


def test_one_cycle_momentum_follows_closed_form():
    opt = make_optimizer(momentum=0.0)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=STEPS)
    momenta = [opt.param_groups[0]["momentum"]]
    for _ in range(STEPS):
        s.step()
        momenta.append(opt.param_groups[0]["momentum"])
    # Momentum runs opposite to the learning rate: max_momentum -> base -> max.
    want = [one_cycle(e, None, STEPS, 0.95, 0.85, 0.95) for e in range(STEPS + 1)]
    np.testing.assert_allclose(momenta, want, rtol=1e-12)


def test_one_cycle_cycles_adam_beta1_only():
    opt = make_optimizer(optim.Adam, betas=(0.9, 0.99))
    s = sched.OneCycleLR(opt, max_lr=0.3, epochs=4, steps_per_epoch=5, base_momentum=0.8,
                         max_momentum=0.9)
    assert s.total_steps == 20
    for e in range(1, 8):
        s.step()
        beta1, beta2 = opt.param_groups[1]["betas"]
        assert beta2 == 0.99
        assert beta1 == pytest.approx(one_cycle(e, None, 20, 0.9, 0.8, 0.9), rel=1e-12)


def test_one_cycle_without_momentum_cycling_leaves_momentum():
    opt = make_optimizer(momentum=0.5)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, cycle_momentum=False)
    for _ in range(5):
        s.step()
    assert opt.param_groups[0]["momentum"] == 0.5


def test_one_cycle_refuses_to_step_past_total_steps():
    s = sched.OneCycleLR(make_optimizer(), max_lr=1.0, total_steps=5)
    for _ in range(5):
        s.step()
    with pytest.raises(ValueError, match="Tried to step 6 times. The specified number of total "
                                         "steps is 5"):
        s.step()


def test_chained_schedulers_multiply():
    opt = make_optimizer()
    warmup = sched.LinearLR(opt, start_factor=0.5, total_iters=4)
    decay = sched.ExponentialLR(opt, gamma=0.8)
    for e in range(1, 10):
        warmup.step()
        decay.step()
        want = [b * (0.5 + 0.5 * min(e, 4) / 4) * 0.8 ** e for b in BASE_LRS]
        np.testing.assert_allclose(decay.get_last_lr(), want, rtol=1e-12)


def test_step_with_epoch_uses_closed_form():
    s = sched.StepLR(make_optimizer(), step_size=3, gamma=0.5)
    with pytest.warns(UserWarning, match="deprecated"):
        s.step(7)
    assert s.last_epoch == 7
    assert s.get_last_lr() == [b * 0.5 ** 2 for b in BASE_LRS]


def test_scheduled_lr_drives_the_update():
    p = mg.zeros(1, requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    s = sched.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = mg.ones(1)
        opt.step()
        s.step()
    assert p.item() == -(1.0 + 0.5 + 0.25)


# ------------------------------------------------------------------ against torch

def _torch_sequence(torch, key, momentum_key=None):
    name = key.split("-")[0]
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a], "lr": BASE_LRS[0]},
                           {"params": [b], "lr": BASE_LRS[1]}], momentum=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = getattr(torch.optim.lr_scheduler, name)(opt, **CLOSED_FORMS[key][0])
        seq = [s.get_last_lr()]
        momenta = [[g.get("momentum") for g in opt.param_groups]]
        for _ in range(STEPS):
            opt.step()
            s.step()
            seq.append(s.get_last_lr())
            momenta.append([g.get("momentum") for g in opt.param_groups])
    return seq, momenta


@pytest.mark.parametrize("key", CLOSED_FORMS)
def test_sequence_equals_torch(key):
    torch = pytest.importorskip("torch")
    want, want_momenta = _torch_sequence(torch, key)
    opt = make_optimizer(momentum=0.0)
    s = _scheduler(key, opt)
    got, momenta = [s.get_last_lr()], [[g["momentum"] for g in opt.param_groups]]
    for _ in range(STEPS):
        opt.step()
        s.step()
        got.append(s.get_last_lr())
        momenta.append([g["momentum"] for g in opt.param_groups])
    assert got == want
    assert momenta == want_momenta


# ------------------------------------------------------------------ state_dict

@pytest.mark.parametrize("key", ["StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR",
                                 "OneCycleLR"])
def test_state_dict_round_trip_resumes_exactly(key):
    opt = make_optimizer(momentum=0.0)
    s = _scheduler(key, opt)
    for _ in range(8):
        opt.step()
        s.step()
    saved_opt, saved = opt.state_dict(), s.state_dict()
    assert "optimizer" not in saved

    opt2 = make_optimizer(momentum=0.0)
    s2 = _scheduler(key, opt2)  # resets the learning rates: load afterwards, as in PyTorch
    opt2.load_state_dict(saved_opt)
    s2.load_state_dict(saved)
    assert s2.last_epoch == 8 and s2.get_last_lr() == s.get_last_lr()
    for _ in range(STEPS - 8):
        opt.step()
        s.step()
        opt2.step()
        s2.step()
        assert s2.get_last_lr() == s.get_last_lr()
        assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert saved["last_epoch"] == 8  # a copy, not a live view


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match=r"initial_lr.*param_groups\[0\]"):
        sched.StepLR(make_optimizer(), step_size=2, last_epoch=4)
    opt = make_optimizer()
    sched.StepLR(opt, step_size=2)
    s = sched.StepLR(opt, step_size=2, gamma=0.5, last_epoch=4)
    assert s.last_epoch == 5


# ------------------------------------------------------------------ argument errors

def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        sched.StepLR([], step_size=1)
    with pytest.raises(TypeError, match="dict is not an Optimizer"):
        sched.OneCycleLR({}, max_lr=1.0, total_steps=3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(start_factor=0.0), "Starting multiplicative factor expected to be greater than 0"),
    (dict(start_factor=1.5), "Starting multiplicative factor"),
    (dict(end_factor=-0.1), "Ending multiplicative factor expected to be between 0 and 1"),
])
def test_linear_lr_factor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sched.LinearLR(make_optimizer(), **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(), r"either total_steps OR \(epochs AND steps_per_epoch\)"),
    (dict(epochs=3), r"either total_steps OR"),
    (dict(total_steps=0), "Expected positive integer total_steps, but got 0"),
    (dict(total_steps=2.5), "Expected positive integer total_steps, but got 2.5"),
    (dict(epochs=-1, steps_per_epoch=3), "Expected positive integer epochs, but got -1"),
    (dict(epochs=2, steps_per_epoch=0), "Expected positive integer steps_per_epoch, but got 0"),
    (dict(total_steps=10, pct_start=1.5), "Expected float between 0 and 1 pct_start, but got 1.5"),
    (dict(total_steps=10, pct_start=1), "Expected float between 0 and 1 pct_start, but got 1"),
    (dict(total_steps=10, anneal_strategy="exp"), "anneal_strategy must be one of 'cos' or "
                                                  "'linear', instead got exp"),
    (dict(total_steps=10, max_lr=[1.0]), "max_lr must have the same length as "
                                         "optimizer.param_groups. max_lr has 1 values, "
                                         "param_groups has 2."),
])
def test_one_cycle_argument_errors(kwargs, match):
    kwargs = dict({"max_lr": 1.0}, **kwargs)
    with pytest.raises(ValueError, match=match):
        sched.OneCycleLR(make_optimizer(), **kwargs)


def test_one_cycle_momentum_needs_a_momentum_optimizer():
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        sched.OneCycleLR(make_optimizer(optim.Adagrad), max_lr=1.0, total_steps=10)
    sched.OneCycleLR(make_optimizer(optim.Adagrad), max_lr=1.0, total_steps=10,
                     cycle_momentum=False)
