"""Losses: hand-computed values, a naive numpy reference of PyTorch's formulas
(weights, ignore_index, label smoothing, reductions), finite differences in
float64, PyTorch when installed, stability and error messages."""
import math
import warnings

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn

REDUCTIONS = ["mean", "sum", "none"]


def _np(t):
    return np.asarray(t.detach())


def naive_cross_entropy(z, t, w=None, ignore_index=-100, eps=0.0, reduction="mean"):
    """Per-row loops over PyTorch's documented formula, (N, C) logits."""
    n, c = z.shape
    w = np.ones(c) if w is None else w
    losses, denom = np.zeros(n), 0.0
    for i in range(n):
        if t[i] == ignore_index:
            continue
        logp = z[i] - z[i].max() - math.log(np.exp(z[i] - z[i].max()).sum())
        losses[i] = (1 - eps) * w[t[i]] * -logp[t[i]] + eps / c * sum(w[k] * -logp[k] for k in range(c))
        denom += w[t[i]]
    if reduction == "none":
        return losses
    return losses.sum() / denom if reduction == "mean" else losses.sum()


# ------------------------------------------------------------------ cross-entropy

def test_cross_entropy_hand_computed():
    z = mg.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    t = mg.tensor([2, 0])
    first = -(3 - math.log(math.e + math.e ** 2 + math.e ** 3))
    second = math.log(3)
    assert math.isclose(F.cross_entropy(z, t).item(), (first + second) / 2, rel_tol=1e-6)
    assert math.isclose(F.cross_entropy(z, t, reduction="sum").item(), first + second, rel_tol=1e-6)
    np.testing.assert_allclose(_np(F.cross_entropy(z, t, reduction="none")), [first, second], rtol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot(rng):
    data = rng.standard_normal((4, 5))
    t = np.array([0, 4, 2, 2])
    z = mg.tensor(data, requires_grad=True)
    F.cross_entropy(z, mg.tensor(t)).backward()
    p = np.exp(data) / np.exp(data).sum(1, keepdims=True)
    np.testing.assert_allclose(_np(z.grad), (p - np.eye(5)[t]) / 4, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_naive_formula(rng, reduction, weighted, eps):
    z = rng.standard_normal((6, 4)) * 3
    t = np.array([0, 3, -100, 1, 3, 2])
    w = rng.uniform(0.2, 2.0, 4) if weighted else None
    got = F.cross_entropy(mg.tensor(z), mg.tensor(t), weight=None if w is None else mg.tensor(w),
                          reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(_np(got), naive_cross_entropy(z, t, w, -100, eps, reduction), rtol=1e-12)


def test_weighted_mean_divides_by_target_weights():
    z = mg.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    t = mg.tensor([0, 1, 1])
    w = mg.tensor([1.0, 3.0])
    # each row loses log 2; weighted sum 7 log 2 over weight sum 7
    assert math.isclose(F.cross_entropy(z, t, weight=w).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(F.cross_entropy(z, t, weight=w, reduction="sum").item(), 7 * math.log(2), rel_tol=1e-6)


def test_ignore_index_rows_get_no_loss_and_no_gradient():
    z = mg.tensor([[2.0, 0.0, 1.0], [5.0, -5.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    t = mg.tensor([1, 7, 2])
    loss = F.cross_entropy(z, t, ignore_index=7)
    expected = naive_cross_entropy(_np(z).astype(np.float64), np.array([1, 7, 2]), ignore_index=7)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    loss.backward()
    assert not _np(z.grad)[1].any()
    assert math.isnan(F.cross_entropy(z, mg.tensor([7, 7, 7]), ignore_index=7).item())  # 0 / 0, as PyTorch


def test_label_smoothing_spreads_eps_over_classes():
    z = mg.tensor([[0.0, 0.0, 0.0, 0.0]])
    t = mg.tensor([1])
    # uniform logits: every class has -log p = log 4 whatever the smoothing
    assert math.isclose(F.cross_entropy(z, t, label_smoothing=0.3).item(), math.log(4), rel_tol=1e-6)
    z = mg.tensor([[10.0, 0.0, 0.0, 0.0]], dtype=mg.float64, requires_grad=True)
    loss = F.cross_entropy(z, mg.tensor([0]), label_smoothing=0.4)
    loss.backward()
    p = np.exp(_np(z)[0]) / np.exp(_np(z)[0]).sum()
    target = np.full(4, 0.1)
    target[0] += 0.6
    assert math.isclose(loss.item(), -(target * np.log(p)).sum(), rel_tol=1e-12)
    np.testing.assert_allclose(_np(z.grad)[0], p - target, rtol=1e-10)


def test_cross_entropy_spatial_and_unbatched(rng):
    z = rng.standard_normal((2, 3, 4, 5))
    t = rng.integers(0, 3, (2, 4, 5))
    rows = z.transpose(0, 2, 3, 1).reshape(-1, 3)
    got = F.cross_entropy(mg.tensor(z), mg.tensor(t), reduction="none")
    assert got.shape == (2, 4, 5)
    np.testing.assert_allclose(_np(got).reshape(-1), naive_cross_entropy(rows, t.reshape(-1), reduction="none"),
                               rtol=1e-12)
    zt = mg.tensor(z, requires_grad=True)
    assert mg.gradcheck(lambda a: F.cross_entropy(a, mg.tensor(t), label_smoothing=0.2), (zt,), atol=1e-6)
    single = F.cross_entropy(mg.tensor(z[0, :, 0, 0]), mg.tensor(t[0, 0, 0]))
    assert single.shape == () and math.isclose(single.item(), naive_cross_entropy(rows[:1], t.reshape(-1)[:1]),
                                               rel_tol=1e-12)


def test_cross_entropy_probability_targets(rng):
    z = rng.standard_normal((3, 4))
    q = rng.uniform(size=(3, 4))
    q /= q.sum(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    got = F.cross_entropy(mg.tensor(z), mg.tensor(q))
    assert math.isclose(got.item(), -(q * logp).sum(1).mean(), rel_tol=1e-12)
    zt = mg.tensor(z, requires_grad=True)
    w = mg.tensor(rng.uniform(0.5, 2, 4))
    assert mg.gradcheck(lambda a: F.cross_entropy(a, mg.tensor(q), weight=w, label_smoothing=0.1), (zt,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_gradcheck_and_gradgradcheck(rng, reduction):
    z = mg.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    t = mg.tensor([0, 3, 1, -100, 2])
    w = mg.tensor(rng.uniform(0.5, 2, 4))

    def fn(a):
        return F.cross_entropy(a, t, weight=w, reduction=reduction, label_smoothing=0.15)

    assert mg.gradcheck(fn, (z,))
    assert mg.gradgradcheck(fn, (z,))


def test_cross_entropy_finite_for_huge_logits():
    z = mg.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(z, mg.tensor([1, 2]), label_smoothing=0.1)
        loss.backward()
    assert math.isfinite(loss.item()) and np.isfinite(_np(z.grad)).all()
    # row 0 has -log p_1 = 2e4; row 1 loses nothing on its target
    expected = naive_cross_entropy(_np(z).astype(np.float64), np.array([1, 2]), eps=0.1)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_pytorch(rng, reduction):
    torch = pytest.importorskip("torch")
    z = rng.standard_normal((8, 5)).astype(np.float32) * 4
    t = np.array([0, 4, 1, 3, 3, 2, 1, 0])
    w = rng.uniform(0.3, 2, 5).astype(np.float32)
    for kwargs in ({}, {"ignore_index": 3}, {"label_smoothing": 0.2}):
        zm, zt = mg.tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
        ours = F.cross_entropy(zm, mg.tensor(t), weight=mg.tensor(w), reduction=reduction, **kwargs)
        theirs = torch.nn.functional.cross_entropy(zt, torch.tensor(t), weight=torch.tensor(w),
                                                   reduction=reduction, **kwargs)
        np.testing.assert_allclose(_np(ours), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
        ours.sum().backward()
        theirs.sum().backward()
        np.testing.assert_allclose(_np(zm.grad), zt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_errors():
    z = mg.randn(3, 4)
    with pytest.raises(RuntimeError, match="expected scalar type Long"):
        F.cross_entropy(z, mg.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="Target 12 is out of bounds for 4 classes"):
        F.cross_entropy(z, mg.tensor([0, 12, 1]))
    with pytest.raises(ValueError, match="Target -1 is out of bounds"):
        F.cross_entropy(z, mg.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\)"):
        F.cross_entropy(z, mg.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.cross_entropy(z, mg.tensor([0, 1, 2]), weight=mg.ones(3))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(z, mg.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)


def test_cross_entropy_module_and_weight_buffer():
    w = mg.tensor([1.0, 2.0, 0.5])
    loss = nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.05)
    assert list(loss.state_dict()) == ["weight"]
    z, t = mg.randn(4, 3), mg.tensor([0, 1, 2, 2])
    assert loss(z, t).item() == F.cross_entropy(z, t, w, 1, "mean", 0.05).item()
    loss.double()
    assert loss.weight.dtype == mg.float64
    assert repr(nn.CrossEntropyLoss(reduction="sum")) == "CrossEntropyLoss(reduction='sum')"


# ------------------------------------------------------------------ NLL

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_matches_cross_entropy_of_log_softmax(rng, reduction):
    z = rng.standard_normal((5, 3, 2))
    t = np.array([[0, 2], [1, 1], [2, -100], [0, 0], [1, 2]])
    w = mg.tensor(rng.uniform(0.5, 2, 3))
    logp = F.log_softmax(mg.tensor(z), 1)
    got = F.nll_loss(logp, mg.tensor(t), weight=w, reduction=reduction)
    expected = F.cross_entropy(mg.tensor(z), mg.tensor(t), weight=w, reduction=reduction)
    np.testing.assert_allclose(_np(got), _np(expected), rtol=1e-12)
    x = mg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    tt = mg.tensor([0, 2, 1, 2])
    assert mg.gradcheck(lambda a: F.nll_loss(a, tt, weight=w, reduction=reduction), (x,))
    assert mg.gradgradcheck(lambda a: F.nll_loss(a, tt, weight=w, reduction=reduction), (x,))


def test_nll_hand_computed_and_errors():
    x = mg.tensor([[-1.0, -2.0], [-3.0, -4.0]])
    assert F.nll_loss(x, mg.tensor([1, 0])).item() == 2.5
    assert nn.NLLLoss(reduction="sum")(x, mg.tensor([1, 0])).item() == 5.0
    with pytest.raises(ValueError, match="Target 2 is out of bounds for 2 classes"):
        F.nll_loss(x, mg.tensor([2, 0]))
    with pytest.raises(RuntimeError, match="expected scalar type Long"):
        F.nll_loss(x, mg.tensor([True, False]))


def test_nll_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = np.array([0, 1, 2, 3, 2, 1])
    w = rng.uniform(0.5, 2, 4).astype(np.float32)
    ours = F.nll_loss(mg.tensor(x), mg.tensor(t), weight=mg.tensor(w), ignore_index=2)
    theirs = torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(t), weight=torch.tensor(w), ignore_index=2)
    assert math.isclose(ours.item(), theirs.item(), rel_tol=1e-6)


# ------------------------------------------------------------------ MSE / L1

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_and_l1_closed_form_and_gradcheck(rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    np.testing.assert_allclose(_np(F.mse_loss(mg.tensor(a), mg.tensor(b), reduction=reduction)),
                               reduce((a - b) ** 2), rtol=1e-12)
    np.testing.assert_allclose(_np(nn.L1Loss(reduction=reduction)(mg.tensor(a), mg.tensor(b))),
                               reduce(np.abs(a - b)), rtol=1e-12)
    x, y = mg.tensor(a, requires_grad=True), mg.tensor(b, requires_grad=True)
    for fn in (F.mse_loss, F.l1_loss):
        assert mg.gradcheck(lambda p, q: fn(p, q, reduction=reduction), (x, y))
    assert mg.gradgradcheck(lambda p, q: F.mse_loss(p, q, reduction=reduction), (x, y))


def test_mse_gradient_and_l1_gradient_at_zero():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    F.mse_loss(x, mg.tensor([0.0, 2.0, 5.0])).backward()
    np.testing.assert_allclose(_np(x.grad), [2 / 3, 0, -4 / 3], rtol=1e-6)
    x.grad = None
    F.l1_loss(x, mg.tensor([0.0, 2.0, 5.0]), reduction="sum").backward()
    assert x.grad.tolist() == [1.0, 0.0, -1.0]  # sign, 0 where equal (PyTorch)


def test_elementwise_loss_broadcast_warning_and_errors():
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(mg.randn(3, 1), mg.randn(3))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="batchmean")
    with pytest.raises(TypeError, match="must be Tensors"):
        F.l1_loss(mg.randn(2), [1.0, 2.0])


# ------------------------------------------------------------------ BCE

def _bce_np(x, y, w=1.0):
    return -w * (y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_closed_form_and_gradcheck(rng, reduction):
    x = rng.uniform(0.05, 0.95, (3, 4))
    y = rng.uniform(size=(3, 4))
    w = rng.uniform(0.5, 2, 4)
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    got = F.binary_cross_entropy(mg.tensor(x), mg.tensor(y), weight=mg.tensor(w), reduction=reduction)
    np.testing.assert_allclose(_np(got), reduce(_bce_np(x, y, w)), rtol=1e-12)
    xt, yt = mg.tensor(x, requires_grad=True), mg.tensor(y, requires_grad=True)
    fn = lambda a, b: F.binary_cross_entropy(a, b, weight=mg.tensor(w), reduction=reduction)  # noqa: E731
    assert mg.gradcheck(fn, (xt, yt))
    assert mg.gradgradcheck(fn, (xt, yt))


def test_bce_clamps_logs_at_minus_100():
    x = mg.tensor([0.0, 1.0, 0.0, 1.0], requires_grad=True)
    y = mg.tensor([1.0, 0.0, 0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy(x, y, reduction="none")
        loss.sum().backward()
    assert loss.tolist() == [100.0, 100.0, 0.0, 0.0]
    # (x - y) / max(x (1 - x), 1e-12): finite, as PyTorch
    np.testing.assert_allclose(_np(x.grad), [-1e12, 1e12, 0, 0], rtol=1e-5)


def test_bce_errors_and_pytorch(rng):
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(mg.tensor([1.5]), mg.tensor([1.0]))
    with pytest.raises(ValueError, match="same size"):
        nn.BCELoss()(mg.tensor([0.5, 0.5]), mg.tensor([1.0]))
    torch = pytest.importorskip("torch")
    x = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    x[0, 0], x[1, 1] = 0.0, 1.0
    y = rng.uniform(size=(4, 3)).astype(np.float32)
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = F.binary_cross_entropy(xm, mg.tensor(y))
    theirs = torch.nn.functional.binary_cross_entropy(xt, torch.tensor(y))
    assert math.isclose(ours.item(), theirs.item(), rel_tol=1e-5)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(_np(xm.grad), xt.grad.numpy(), rtol=1e-5)


# ------------------------------------------------------------------ BCE with logits

def _bce_logits_np(x, y, w=1.0, pw=1.0):
    log_sig = -np.logaddexp(0, -x)
    log_one_minus = -np.logaddexp(0, x)
    return -w * (pw * y * log_sig + (1 - y) * log_one_minus)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_closed_form_and_gradcheck(rng, reduction):
    x = rng.standard_normal((3, 4)) * 3
    x[0, 0] = 0.0  # logits exactly 0 (zero-initialized heads) need the right derivative
    y = rng.uniform(size=(3, 4))
    w, pw = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 3, 4)
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    got = F.binary_cross_entropy_with_logits(mg.tensor(x), mg.tensor(y), mg.tensor(w), reduction, mg.tensor(pw))
    np.testing.assert_allclose(_np(got), reduce(_bce_logits_np(x, y, w, pw)), rtol=1e-12)
    xt, yt = mg.tensor(x, requires_grad=True), mg.tensor(y, requires_grad=True)
    pwt = mg.tensor(pw, requires_grad=True)
    fn = lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, reduction=reduction, pos_weight=c)  # noqa: E731
    assert mg.gradcheck(fn, (xt, yt, pwt))
    assert mg.gradgradcheck(fn, (xt, yt, pwt))


def test_bce_with_logits_stable_for_huge_logits():
    x = mg.tensor([1e4, -1e4, 50.0, -50.0], requires_grad=True)
    y = mg.tensor([0.0, 1.0, 1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = nn.BCEWithLogitsLoss(reduction="none")(x, y)
        loss.sum().backward()
    np.testing.assert_allclose(_np(loss), [1e4, 1e4, math.exp(-50), math.exp(-50)], rtol=1e-5)
    np.testing.assert_allclose(_np(x.grad), [1.0, -1.0, -math.exp(-50), math.exp(-50)], rtol=1e-5)


def test_bce_with_logits_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((5, 3)) * 5).astype(np.float32)
    y = (rng.uniform(size=(5, 3)) > 0.5).astype(np.float32)
    pw = np.array([1.0, 2.0, 0.5], np.float32)
    w = rng.uniform(0.5, 2, (5, 3)).astype(np.float32)
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = nn.BCEWithLogitsLoss(weight=mg.tensor(w), pos_weight=mg.tensor(pw))(xm, mg.tensor(y))
    theirs = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(pw))(xt, torch.tensor(y))
    assert math.isclose(ours.item(), theirs.item(), rel_tol=1e-5)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(_np(xm.grad), xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert list(nn.BCEWithLogitsLoss(pos_weight=mg.ones(3)).state_dict()) == \
        list(torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)).state_dict())
