"""nn.Linear (fused op) and nn.Dropout: closed forms, finite differences,
PyTorch when installed, and error messages."""
import math

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn


def _np(t):
    return np.asarray(t.detach())


# ------------------------------------------------------------------ Linear

@pytest.mark.parametrize("lead", [(), (5,), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_and_backward_closed_form(rng, lead, bias):
    layer = nn.Linear(6, 3, bias=bias).double()
    x = mg.tensor(rng.standard_normal(lead + (6,)), requires_grad=True)
    g = rng.standard_normal(lead + (3,))
    out = layer(x)
    w = _np(layer.weight)
    expected = x.detach().numpy() @ w.T + (_np(layer.bias) if bias else 0)
    assert out.shape == lead + (3,)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-12)
    out.backward(mg.tensor(g))
    g2, x2 = g.reshape(-1, 3), x.detach().numpy().reshape(-1, 6)
    np.testing.assert_allclose(_np(x.grad), (g2 @ w).reshape(x.shape), rtol=1e-12)
    np.testing.assert_allclose(_np(layer.weight.grad), g2.T @ x2, rtol=1e-12)
    if bias:
        np.testing.assert_allclose(_np(layer.bias.grad), g2.sum(0), rtol=1e-12)


def test_linear_is_one_graph_node():
    layer = nn.Linear(4, 2)
    out = layer(mg.randn(3, 4))
    assert out.grad_fn.name == "Linear"
    assert len(out.grad_fn.edges) == 3 and out.grad_fn.edges[1] is layer.weight


@pytest.mark.parametrize("shape", [(3, 4), (2, 2, 4), (4,)])
def test_linear_gradcheck_input_and_params(rng, shape):
    w = mg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = mg.tensor(rng.standard_normal(3), requires_grad=True)
    x = mg.tensor(rng.standard_normal(shape), requires_grad=True)
    assert mg.gradcheck(F.linear, (x, w, b))
    assert mg.gradgradcheck(F.linear, (x, w, b))


def test_linear_module_gradcheck():
    mg.manual_seed(1)
    layer = nn.Linear(3, 2).double()
    assert mg.gradcheck_module(layer, mg.randn(4, 3, dtype=mg.float64, requires_grad=True))


def test_linear_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    ours = nn.Linear(7, 5)
    theirs = torch.nn.Linear(7, 5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 3, 7)).astype(np.float32)
    g = rng.standard_normal((2, 3, 5)).astype(np.float32)
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = ours(xm), theirs(xt)
    np.testing.assert_allclose(_np(ym), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    ym.backward(mg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(_np(xm.grad), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(ours.weight.grad), theirs.weight.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(ours.bias.grad), theirs.bias.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_linear_errors():
    layer = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"in_features=4, got input of shape \(3, 5\)"):
        layer(mg.randn(3, 5))
    with pytest.raises(TypeError, match="floating point input, got minigrad.int64"):
        layer(mg.ones(3, 4, dtype=mg.int64))
    with pytest.raises(TypeError, match="input is minigrad.float64 but weight is minigrad.float32"):
        layer(mg.randn(3, 4, dtype=mg.float64))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.linear(mg.randn(3, 4), layer.weight.detach(), mg.zeros(3))
    with pytest.raises(ValueError, match="non-negative int"):
        nn.Linear(-1, 2)
    with pytest.raises(TypeError, match="must be a Tensor"):
        layer([1.0, 2.0, 3.0, 4.0])


def test_linear_construction_options():
    layer = nn.Linear(3, 2, bias=False, dtype=mg.float64, device="standin")
    assert layer.bias is None and layer.weight.dtype == mg.float64 and layer.weight.device == "standin"
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == "Linear(in_features=3, out_features=2, bias=False)"


def test_linear_default_init_ranges():
    mg.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = _np(layer.weight), _np(layer.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound): std bound / sqrt(3), and the range is actually used
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.03
    assert np.abs(w).max() > 0.99 * bound and abs(w.mean()) < 0.01 * bound


# ------------------------------------------------------------------ Dropout

def test_dropout_train_scales_survivors_and_zeroes_the_rest():
    mg.manual_seed(0)
    x = mg.ones(200, 500, requires_grad=True)
    p = 0.3
    out = nn.Dropout(p)(x)
    values = _np(out)
    kept = values != 0
    np.testing.assert_allclose(values[kept], 1 / (1 - p), rtol=1e-6)
    # fraction dropped ~ p (binomial: 100000 draws, std 0.0015)
    assert abs((~kept).mean() - p) < 0.01
    assert abs(values.mean() - 1) < 0.02  # inverted dropout keeps the expectation
    out.backward(mg.ones(200, 500))
    np.testing.assert_allclose(_np(x.grad), np.where(kept, 1 / (1 - p), 0), rtol=1e-6)


def test_dropout_eval_p0_p1_and_errors():
    x = mg.randn(10, 10)
    d = nn.Dropout(0.5)
    d.eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert not _np(nn.Dropout(1.0)(x)).any()
    for bad in (-0.1, 1.5, "a"):
        with pytest.raises(ValueError, match="between 0 and 1, but got"):
            nn.Dropout(bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 2.0)
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"


def test_dropout_reproducible_under_manual_seed():
    x = mg.randn(50, 50)
    mg.manual_seed(42)
    a = _np(F.dropout(x, 0.5))
    mg.manual_seed(42)
    b = _np(F.dropout(x, 0.5))
    c = _np(F.dropout(x, 0.5))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_dropout_gradcheck_with_fixed_mask():
    x = mg.randn(4, 5, dtype=mg.float64, requires_grad=True)

    def fn(t):
        mg.manual_seed(7)  # the same mask on every evaluation
        return F.dropout(t, 0.4)

    assert mg.gradcheck(fn, (x,))
    assert mg.gradgradcheck(fn, (x,))


def test_dropout_keeps_dtype_and_device():
    x = mg.randn(3, 3, dtype=mg.float64, device="standin")
    out = F.dropout(x, 0.5)
    assert out.dtype == mg.float64 and out.device == "standin"
