"""Gradient clipping: clip_grad_norm_ and clip_grad_value_ against closed forms
and torch.nn.utils when installed; clip_grad_adaptive_ against the NFNets rule
written out per unit in numpy."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.utils import clip_grad_adaptive_, clip_grad_norm_, clip_grad_value_

SHAPES = [(4, 3), (3,), (2, 3, 2, 2), ()]


def params_with_grads(rng, dtype=np.float64, scale=1.0, shapes=SHAPES):
    params = []
    for shape in shapes:
        p = mg.tensor(np.asarray(rng.standard_normal(shape), dtype), requires_grad=True)
        p.grad = mg.tensor(np.asarray(scale * rng.standard_normal(shape), dtype))
        params.append(p)
    return params


def grads_of(params):
    return [p.grad.numpy().copy() for p in params]


def closed_form_total_norm(grads, p):
    flat = np.concatenate([g.ravel() for g in grads]).astype(np.float64)
    if p == math.inf:
        return np.abs(flat).max()
    return (np.abs(flat) ** p).sum() ** (1 / p)


# ------------------------------------------------------------------ clip_grad_norm_

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norm_clipping_closed_form(rng, norm_type, dtype):
    params = params_with_grads(rng, dtype)
    before = grads_of(params)
    p = float(norm_type)
    total = closed_form_total_norm(before, p)
    max_norm = total / 3
    out = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert out.shape == () and out.dtype == mg.tensor(np.zeros(1, dtype)).dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(out.item(), total, rtol=rtol)
    coef = max_norm / (total + 1e-6)
    for g, b in zip(grads_of(params), before):
        np.testing.assert_allclose(g, b * coef, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(closed_form_total_norm(grads_of(params), p), max_norm, rtol=1e-5)


def test_norm_below_limit_leaves_gradients(rng):
    params = params_with_grads(rng)
    before = grads_of(params)
    total = clip_grad_norm_(params, max_norm=1e6).item()
    np.testing.assert_allclose(total, closed_form_total_norm(before, 2.0), rtol=1e-12)
    for g, b in zip(grads_of(params), before):
        np.testing.assert_array_equal(g, b)


def test_norm_accepts_single_tensor_generator_and_skips_missing_grads(rng):
    params = params_with_grads(rng)
    params[1].grad = None
    before = grads_of([params[0], params[2], params[3]])
    total = clip_grad_norm_((p for p in params), 0.5)
    np.testing.assert_allclose(total.item(), closed_form_total_norm(before, 2.0), rtol=1e-12)
    assert params[1].grad is None

    single = params_with_grads(rng, shapes=[(5,)])[0]
    g = single.grad.numpy().copy()
    total = clip_grad_norm_(single, 0.1)
    np.testing.assert_allclose(total.item(), np.linalg.norm(g), rtol=1e-12)
    np.testing.assert_allclose(single.grad.numpy(), g * 0.1 / (np.linalg.norm(g) + 1e-6))


def test_norm_without_gradients_is_zero():
    p = mg.zeros(3, requires_grad=True)
    total = clip_grad_norm_([p], 1.0)
    assert total.item() == 0.0 and total.dtype == mg.float32 and p.grad is None


def test_nonfinite_norm(rng):
    params = params_with_grads(rng)
    params[0].grad = mg.tensor(np.array([[np.nan, 1, 2]] * 4))
    with pytest.raises(RuntimeError, match=r"total norm of order 2.0 .* is non-finite \(nan\)"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert not np.isnan(params[1].grad.numpy()).any()  # nothing was scaled before the error
    total = clip_grad_norm_(params, 1.0)  # as PyTorch: scaled by the nan coefficient
    assert math.isnan(total.item())
    assert np.isnan(params[1].grad.numpy()).all()

    params = params_with_grads(rng)
    params[2].grad = mg.full(params[2].shape, np.inf, dtype=mg.float64)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, norm_type="inf", error_if_nonfinite=True)


def test_mixed_dtypes_give_float64_norm(rng):
    params = params_with_grads(rng, np.float32, shapes=[(3,)]) + \
        params_with_grads(rng, np.float64, shapes=[(2,)])
    assert clip_grad_norm_(params, 1e6).dtype == mg.float64


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norm_matches_torch(rng, norm_type, dtype):
    torch = pytest.importorskip("torch")
    params = params_with_grads(rng, dtype, scale=3.0)
    tparams = []
    for p in params:
        t = torch.tensor(p.detach().numpy(), requires_grad=True)
        t.grad = torch.tensor(p.grad.numpy())
        tparams.append(t)
    got = clip_grad_norm_(params, 0.7, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(tparams, 0.7, norm_type=norm_type, foreach=False)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got.item(), want.item(), rtol=rtol)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=1e-7)


# ------------------------------------------------------------------ clip_grad_value_

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_value_clipping(rng, dtype):
    params = params_with_grads(rng, dtype, scale=2.0)
    before = grads_of(params)
    assert clip_grad_value_(params, 0.75) is None
    for g, b in zip(grads_of(params), before):
        np.testing.assert_array_equal(g, np.clip(b, -0.75, 0.75))
        assert g.dtype == dtype
    assert any((np.abs(b) > 0.75).any() for b in before)


def test_value_clipping_matches_torch(rng):
    torch = pytest.importorskip("torch")
    params = params_with_grads(rng, scale=2.0)
    tgrads = [torch.tensor(p.grad.numpy()) for p in params]
    tparams = []
    for p, g in zip(params, tgrads):
        t = torch.zeros(p.shape, dtype=torch.float64, requires_grad=True)
        t.grad = g
        tparams.append(t)
    clip_grad_value_(params, 0.5)
    torch.nn.utils.clip_grad_value_(tparams, 0.5, foreach=False)
    for p, t in zip(params, tparams):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


# ------------------------------------------------------------------ clip_grad_adaptive_

def agc_closed_form(w, g, clipping, eps):
    """NFNets AGC per unit: rows along dim 0 for ndim >= 2, the whole tensor for
    ndim <= 1; a unit whose grad norm reaches clipping*max(|W_i|, eps) is scaled
    to that norm."""
    w, g = np.asarray(w, np.float64), np.asarray(g, np.float64).copy()
    units = [g] if w.ndim <= 1 else list(g)  # views into g
    weights = [w] if w.ndim <= 1 else list(w)
    for gu, wu in zip(units, weights):
        limit = clipping * max(np.sqrt((wu ** 2).sum()), eps)
        norm = np.sqrt((gu ** 2).sum())
        if norm >= limit:
            gu *= limit / max(norm, 1e-6)
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_clipping_per_unit(rng, dtype):
    shapes = [(5, 4), (5,), (3, 2, 3, 3), ()]
    params = params_with_grads(rng, dtype, scale=0.2, shapes=shapes)
    # Unit 0 of each weight gets a tiny gradient: it must stay as it is.
    for p in params[::2]:
        p.grad._data[0] *= 1e-4
    weights = [p.detach().numpy().copy() for p in params]
    before = grads_of(params)
    assert clip_grad_adaptive_(params, clipping=0.05, eps=1e-3) is None
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    changed = 0
    for w, b, g in zip(weights, before, grads_of(params)):
        want = agc_closed_form(w, b, 0.05, 1e-3)
        np.testing.assert_allclose(g, want, rtol=rtol, atol=1e-12)
        assert g.dtype == dtype
        changed += int(not np.array_equal(g, b))
    assert changed >= 3
    for w, b, g in zip(weights[::2], before[::2], grads_of(params)[::2]):
        np.testing.assert_array_equal(g[0], b[0])


def test_adaptive_clipping_bias_is_one_unit():
    p = mg.tensor(np.array([3.0, 4.0]), requires_grad=True)  # |W| = 5
    p.grad = mg.tensor(np.array([0.6, 0.8]))  # |G| = 1
    clip_grad_adaptive_(p, clipping=0.1)  # limit 0.5: the whole vector halves
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4], rtol=1e-15)


def test_adaptive_clipping_uses_eps_for_zero_weights():
    p = mg.zeros(2, 3, dtype=mg.float64, requires_grad=True)
    p.grad = mg.tensor(np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0]]))
    clip_grad_adaptive_([p], clipping=0.01, eps=1e-3)  # limit 1e-5 per row
    np.testing.assert_allclose(p.grad.numpy(), [[6e-6, 0.0, 8e-6], [0.0, 0.0, 0.0]], rtol=1e-12)


def test_adaptive_clipping_skips_missing_grads():
    a = mg.ones(2, 2, requires_grad=True)
    clip_grad_adaptive_([a])
    assert a.grad is None


def test_clipping_a_read_only_gradient_replaces_it():
    p = mg.ones(3, dtype=mg.float64, requires_grad=True)
    shared = np.full(3, 2.0)
    shared.flags.writeable = False
    p.grad = mg.from_numpy(shared)
    clip_grad_norm_([p], 1.0)
    np.testing.assert_allclose(np.linalg.norm(p.grad.numpy()), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(shared, 2.0)
