"""Beyond PyTorch's layers: SwitchableNorm2d and BatchRenorm1d/2d against
closed forms written here, their limits (the layers they reduce to), finite
differences and running statistics; and the classic weight_norm /
spectral_norm reparametrizations against closed forms, finite differences
and PyTorch when installed."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.layers.linear import Linear
from minigrad.nn.layers.normalization import (BatchNorm2d, BatchRenorm1d,
                                              BatchRenorm2d, GroupNorm, InstanceNorm2d,
                                              SwitchableNorm2d)
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.nn.utils import remove_spectral_norm, remove_weight_norm, spectral_norm, weight_norm

EPS = 1e-5


def _np(t):
    return np.asarray(t.detach())


def _set(t, value):
    with mg.no_grad():
        t.copy_(np.asarray(value, dtype=np.float64))


def _softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


# ---------------------------------------------------------------- SwitchableNorm2d

def switchable_closed_form(x, mean_logits, var_logits, weight, bias, running=None):
    """Mixed statistics written out directly on the (N, C, H, W) array."""
    mean_in = x.mean(axis=(2, 3), keepdims=True)
    var_in = x.var(axis=(2, 3), keepdims=True)
    mean_ln = x.mean(axis=(1, 2, 3), keepdims=True)
    var_ln = x.var(axis=(1, 2, 3), keepdims=True)
    if running is None:
        mean_bn = x.mean(axis=(0, 2, 3), keepdims=True)
        var_bn = x.var(axis=(0, 2, 3), keepdims=True)
    else:
        mean_bn, var_bn = (r.reshape(1, -1, 1, 1) for r in running)
    mw, vw = _softmax(mean_logits), _softmax(var_logits)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    y = (x - mean) / np.sqrt(var + EPS)
    return y * weight.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


def random_switchable(rng, C=3, **kwargs):
    module = SwitchableNorm2d(C, **kwargs).double()
    _set(module.weight, rng.uniform(0.5, 1.5, C))
    _set(module.bias, rng.standard_normal(C))
    _set(module.mean_weight, rng.standard_normal(3))
    _set(module.var_weight, rng.standard_normal(3))
    return module


@pytest.mark.parametrize("shape", [(2, 3, 3, 3), (4, 3, 1, 5), (1, 3, 2, 2)])
def test_switchable_norm_matches_closed_form_in_training(rng, shape):
    module = random_switchable(rng)
    x = rng.standard_normal(shape) * 2 + 1
    expected = switchable_closed_form(x, _np(module.mean_weight), _np(module.var_weight),
                                      _np(module.weight), _np(module.bias))
    np.testing.assert_allclose(_np(module(mg.tensor(x))), expected, rtol=1e-10, atol=1e-12)


def test_switchable_norm_eval_uses_running_batch_stats(rng):
    module = random_switchable(rng, momentum=0.3)
    rm, rv = np.zeros(3), np.ones(3)
    for k in range(3):
        x = rng.standard_normal((4, 3, 2, 3)) * (k + 1) + k
        module(mg.tensor(x))
        rm = 0.7 * rm + 0.3 * x.mean(axis=(0, 2, 3))
        rv = 0.7 * rv + 0.3 * x.var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(_np(module.running_mean), rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_np(module.running_var), rv, rtol=1e-12)
    module.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    expected = switchable_closed_form(x, _np(module.mean_weight), _np(module.var_weight),
                                      _np(module.weight), _np(module.bias), (rm, rv))
    np.testing.assert_allclose(_np(module(mg.tensor(x))), expected, rtol=1e-10)
    np.testing.assert_allclose(_np(module.running_mean), rm, rtol=1e-12)


@pytest.mark.parametrize("which,reference", [(0, lambda: InstanceNorm2d(3)),
                                             (1, lambda: GroupNorm(1, 3, affine=False)),
                                             (2, lambda: BatchNorm2d(3, affine=False))])
def test_switchable_norm_reduces_to_instance_layer_and_batch_norm(rng, which, reference):
    module = SwitchableNorm2d(3, affine=False).double()
    logits = np.full(3, -50.0)
    logits[which] = 50.0  # softmax = one-hot to within e^-100
    _set(module.mean_weight, logits)
    _set(module.var_weight, logits)
    x = mg.tensor(rng.standard_normal((3, 3, 2, 4)) + 2)
    np.testing.assert_allclose(_np(module(x)), _np(reference().double()(x)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (3, 3, 1, 3)])
def test_switchable_norm_gradcheck_including_mixing_weights(rng, shape, training):
    module = random_switchable(rng)
    _set(module.running_mean, rng.standard_normal(3))
    _set(module.running_var, rng.uniform(0.5, 2, 3))
    module.train(training)
    x = mg.tensor(rng.standard_normal(shape), requires_grad=True)
    assert mg.gradcheck_module(module, x)
    module(x).sum().backward()
    assert module.mean_weight.grad is not None and module.var_weight.grad is not None


def test_switchable_norm_float32_large_mean(rng):
    module = SwitchableNorm2d(4)
    x = (1e4 + rng.standard_normal((4, 4, 6, 6))).astype(np.float32)
    expected = switchable_closed_form(x.astype(np.float64), np.ones(3), np.ones(3), np.ones(4),
                                      np.zeros(4))
    assert np.abs(_np(module(mg.tensor(x))) - expected).max() < 1e-4


def test_switchable_norm_errors_and_state():
    module = SwitchableNorm2d(3)
    assert list(module.state_dict()) == ["weight", "bias", "mean_weight", "var_weight",
                                         "running_mean", "running_var", "num_batches_tracked"]
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        module(mg.randn(2, 3, 4))
    with pytest.raises(RuntimeError, match="num_features=3"):
        module(mg.randn(2, 4, 2, 2))


# ---------------------------------------------------------------- BatchRenorm

def renorm_closed_form(x, running_mean, running_var, weight, bias, rmax, dmax):
    """(output, r, d) of a training step, per channel of (N, C, *)."""
    axes = (0,) + tuple(range(2, x.ndim))
    c = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    sigma = np.sqrt(running_var + EPS)
    r = np.clip(np.sqrt(var + EPS) / sigma, 1 / rmax, rmax)
    d = np.clip((mean - running_mean) / sigma, -dmax, dmax)
    xhat = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + EPS)
    y = (xhat * r.reshape(c) + d.reshape(c)) * weight.reshape(c) + bias.reshape(c)
    return y, r, d, xhat


def random_renorm(rng, cls, C=3, **kwargs):
    module = cls(C, **kwargs).double()
    _set(module.weight, rng.uniform(0.5, 1.5, C))
    _set(module.bias, rng.standard_normal(C))
    _set(module.running_mean, rng.standard_normal(C))
    _set(module.running_var, rng.uniform(0.3, 3.0, C))
    return module


@pytest.mark.parametrize("cls,shape", [(BatchRenorm1d, (5, 3)), (BatchRenorm1d, (2, 3, 4)),
                                       (BatchRenorm2d, (2, 3, 3, 3))])
@pytest.mark.parametrize("rmax,dmax", [(3.0, 5.0), (1.2, 0.1)])
def test_batch_renorm_forward_backward_and_running_stats(rng, cls, shape, rmax, dmax):
    module = random_renorm(rng, cls, rmax=rmax, dmax=dmax, momentum=0.2)
    x = rng.standard_normal(shape) * 2.5 + 1.5
    rm, rv = _np(module.running_mean).copy(), _np(module.running_var).copy()
    w, b = _np(module.weight).copy(), _np(module.bias).copy()
    expected, r, d, xhat = renorm_closed_form(x, rm, rv, w, b, rmax, dmax)
    xt = mg.tensor(x, requires_grad=True)
    out = module(xt)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-10, atol=1e-12)
    # gradients with r and d held constant (the paper's stop-gradient)
    g = rng.standard_normal(shape)
    out.backward(mg.tensor(g))
    axes = (0,) + tuple(range(2, x.ndim))
    c = (1, -1) + (1,) * (x.ndim - 2)
    rstd = 1 / np.sqrt(x.var(axis=axes) + EPS)
    gx = g * (w * r).reshape(c)
    dx = rstd.reshape(c) * (gx - gx.mean(axis=axes, keepdims=True)
                            - xhat * (gx * xhat).mean(axis=axes, keepdims=True))
    np.testing.assert_allclose(_np(xt.grad), dx, rtol=1e-9, atol=1e-12)
    dweight = ((xhat * r.reshape(c) + d.reshape(c)) * g).sum(axis=axes)
    np.testing.assert_allclose(_np(module.weight.grad), dweight, rtol=1e-10)
    np.testing.assert_allclose(_np(module.bias.grad), g.sum(axis=axes), rtol=1e-10)
    # running statistics: BatchNorm's update
    count = x.size // x.shape[1]
    np.testing.assert_allclose(_np(module.running_mean), 0.8 * rm + 0.2 * x.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(_np(module.running_var),
                               0.8 * rv + 0.2 * x.var(axis=axes) * count / (count - 1), rtol=1e-12)


def test_batch_renorm_with_rmax_1_dmax_0_is_batch_norm(rng):
    renorm = random_renorm(rng, BatchRenorm2d, rmax=1.0, dmax=0.0)
    bn = BatchNorm2d(3).double()
    bn.load_state_dict(renorm.state_dict())
    x = rng.standard_normal((3, 3, 2, 2)) + 3
    g = mg.tensor(rng.standard_normal((3, 3, 2, 2)))
    outs = []
    for module in (renorm, bn):
        xt = mg.tensor(x, requires_grad=True)
        out = module(xt)
        out.backward(g)
        outs.append([_np(out), _np(xt.grad), _np(module.weight.grad), _np(module.bias.grad),
                     _np(module.running_mean), _np(module.running_var)])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    renorm.eval()
    bn.eval()
    np.testing.assert_allclose(_np(renorm(mg.tensor(x))), _np(bn(mg.tensor(x))), rtol=1e-12)


@pytest.mark.parametrize("cls,shape", [(BatchRenorm1d, (4, 3)), (BatchRenorm2d, (2, 3, 2, 3))])
def test_batch_renorm_gradcheck_where_r_and_d_are_clipped(rng, cls, shape):
    # far from the running statistics r and d sit at their clip bounds, so they
    # are locally constant and the stop-gradient backward is the true derivative
    module = random_renorm(rng, cls, momentum=0.0)
    _set(module.running_var, np.full(3, 1e4))
    _set(module.running_mean, np.full(3, -1e3))
    x = mg.tensor(rng.standard_normal(shape), requires_grad=True)
    assert mg.gradcheck_module(module, x)
    module.eval()
    assert mg.gradcheck_module(module, x)


def test_batch_renorm_errors():
    with pytest.raises(ValueError, match="rmax >= 1 and dmax >= 0"):
        BatchRenorm1d(3, rmax=0.5)
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        BatchRenorm2d(3)(mg.randn(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        BatchRenorm1d(3)(mg.randn(1, 3))
    assert repr(BatchRenorm1d(2)) == ("BatchRenorm1d(2, eps=1e-05, momentum=0.1, affine=True, "
                                      "rmax=3.0, dmax=5.0)")


# ---------------------------------------------------------------- weight_norm

class Holder(Module):
    """A module with one parameter of any shape, used as x * weight summed."""

    def __init__(self, weight):
        super().__init__()
        self.weight = Parameter(mg.tensor(weight))

    def forward(self, x):
        return x * self.weight


def _row_norms(w, dim):
    if dim is None:
        return np.sqrt((w * w).sum())
    axes = tuple(a for a in range(w.ndim) if a != dim)
    return np.sqrt((w * w).sum(axis=axes, keepdims=True))


@pytest.mark.parametrize("shape,dim", [((3, 4), 0), ((3, 4), 1), ((3, 4), None), ((2, 3, 2, 2), 0),
                                       ((2, 3, 2, 2), 1), ((5,), 0)])
def test_weight_norm_reparametrizes_and_keeps_the_weight(rng, shape, dim):
    w0 = rng.standard_normal(shape)
    module = weight_norm(Holder(w0), dim=dim)
    assert [n for n, _ in module.named_parameters()] == ["weight_g", "weight_v"]
    np.testing.assert_allclose(_np(module.weight_g), _row_norms(w0, dim), rtol=1e-14)
    np.testing.assert_array_equal(_np(module.weight_v), w0)
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(_np(module(mg.tensor(x))), x * w0, rtol=1e-13)
    # the weight follows g and v on the next forward
    g_new = rng.uniform(0.5, 2.0, module.weight_g.shape)
    _set(module.weight_g, g_new)
    module(mg.tensor(x))
    np.testing.assert_allclose(_np(module.weight), g_new * w0 / _row_norms(w0, dim), rtol=1e-13)


def test_weight_norm_gradients(rng):
    module = weight_norm(Linear(4, 3).double())
    x = mg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    assert mg.gradcheck_module(module, x)


def test_weight_norm_remove_and_errors(rng):
    module = weight_norm(Linear(4, 3).double())
    _set(module.weight_g, rng.uniform(0.5, 2.0, (3, 1)))
    expected = _np(module.weight_g) * _np(module.weight_v) / _row_norms(_np(module.weight_v), 0)
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm hooks on the same "
                                           "parameter weight"):
        weight_norm(module)
    remove_weight_norm(module)
    assert isinstance(module.weight, Parameter)
    assert list(module.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(_np(module.weight), expected, rtol=1e-14)
    assert not module._forward_pre_hooks
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        remove_weight_norm(module)
    with pytest.raises(ValueError, match="no parameter named 'scale'"):
        weight_norm(Linear(2, 2), name="scale")


def test_weight_norm_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    ours = Linear(5, 3).double()
    theirs = torch.nn.Linear(5, 3).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(_np(v))) for k, v in ours.state_dict().items()})
    weight_norm(ours, dim=1)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(theirs, dim=1)
    x = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 3))
    ym, yt = ours(mg.tensor(x)), theirs(torch.from_numpy(x))
    ym.backward(mg.tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(_np(ym), yt.detach().numpy(), rtol=1e-12)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(_np(p.grad), tp.grad.numpy(), rtol=1e-10, err_msg=name)


# ---------------------------------------------------------------- spectral_norm

def _unit(v):
    return v / max(np.linalg.norm(v), 1e-12)


def test_spectral_norm_buffers_and_one_power_step_per_training_forward(rng):
    module = spectral_norm(Linear(4, 3).double())
    assert list(module.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    w = _np(module.weight_orig)
    u = _np(module.weight_u).copy()
    assert abs(np.linalg.norm(u) - 1) < 1e-12 and abs(np.linalg.norm(_np(module.weight_v)) - 1) < 1e-12
    x = rng.standard_normal((2, 4))
    out = module(mg.tensor(x))
    v = _unit(w.T @ u)
    u = _unit(w @ v)
    np.testing.assert_allclose(_np(module.weight_u), u, rtol=1e-12)
    np.testing.assert_allclose(_np(module.weight_v), v, rtol=1e-12)
    sigma = u @ w @ v
    np.testing.assert_allclose(_np(out), x @ (w / sigma).T + _np(module.bias), rtol=1e-12)
    # eval: no power iteration, so the buffers stay exactly as training left them
    trained_u, trained_v = _np(module.weight_u).copy(), _np(module.weight_v).copy()
    module.eval()
    module(mg.tensor(x))
    np.testing.assert_array_equal(_np(module.weight_u), trained_u)
    np.testing.assert_array_equal(_np(module.weight_v), trained_v)


def test_spectral_norm_converges_to_the_top_singular_value(rng):
    module = spectral_norm(Holder(rng.standard_normal((5, 3, 2))), n_power_iterations=3)
    w = _np(module.weight_orig)
    for _ in range(30):
        module(mg.tensor(np.ones((5, 3, 2))))
    top = np.linalg.svd(w.reshape(5, -1), compute_uv=False)[0]
    np.testing.assert_allclose(_np(module.weight), w / top, rtol=1e-8)
    assert abs(np.linalg.svd(_np(module.weight).reshape(5, -1), compute_uv=False)[0] - 1) < 1e-8


def test_spectral_norm_dim_1_uses_columns(rng):
    module = spectral_norm(Holder(rng.standard_normal((2, 4, 3))), dim=1, n_power_iterations=50)
    module(mg.tensor(np.ones((2, 4, 3))))
    w = _np(module.weight_orig)
    top = np.linalg.svd(w.transpose(1, 0, 2).reshape(4, -1), compute_uv=False)[0]
    np.testing.assert_allclose(_np(module.weight), w / top, rtol=1e-8)


def test_spectral_norm_gradcheck_in_eval(rng):
    module = spectral_norm(Linear(3, 4).double()).eval()
    x = mg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert mg.gradcheck_module(module, x)


def test_spectral_norm_graph_keeps_its_own_u_v(rng):
    # two training forwards before one backward: the first graph must use the
    # u, v of its own forward, not the ones the second forward wrote in place
    module = spectral_norm(Linear(3, 2).double())
    x = mg.tensor(rng.standard_normal((4, 3)))
    snapshot = {k: np.array(_np(v)) for k, v in module.state_dict().items()}
    module(x).sum().backward()
    expected = _np(module.weight_orig.grad).copy()
    module.load_state_dict(snapshot)
    module.weight_orig.grad = None
    first = module(x)
    module(x)
    first.sum().backward()
    np.testing.assert_allclose(_np(module.weight_orig.grad), expected, rtol=1e-12)


def test_spectral_norm_remove_and_errors(rng):
    module = spectral_norm(Linear(3, 4).double())
    module(mg.tensor(rng.standard_normal((2, 3))))
    expected = _np(module.weight).copy()
    with pytest.raises(RuntimeError, match="Cannot register two spectral_norm hooks"):
        spectral_norm(module)
    remove_spectral_norm(module)
    assert list(module.state_dict()) == ["bias", "weight"] and isinstance(module.weight, Parameter)
    np.testing.assert_allclose(_np(module.weight), expected, rtol=1e-14)
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        remove_spectral_norm(module)
    with pytest.raises(ValueError, match="Expected n_power_iterations to be positive, but got "
                                         "n_power_iterations=0"):
        spectral_norm(Linear(2, 2), n_power_iterations=0)


def test_spectral_norm_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    ours = spectral_norm(Linear(5, 4).double(), n_power_iterations=2)
    theirs = torch.nn.utils.spectral_norm(torch.nn.Linear(5, 4).double(), n_power_iterations=2)
    ours.load_state_dict({k: np.array(v.numpy()) for k, v in theirs.state_dict().items()})
    for step in range(3):
        x = rng.standard_normal((3, 5))
        g = rng.standard_normal((3, 4))
        ours.zero_grad()
        theirs.zero_grad()
        ym, yt = ours(mg.tensor(x)), theirs(torch.from_numpy(x))
        ym.backward(mg.tensor(g))
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(_np(ym), yt.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(_np(ours.weight_orig.grad), theirs.weight_orig.grad.numpy(), rtol=1e-9)
        for key in ("weight_u", "weight_v"):
            np.testing.assert_allclose(_np(getattr(ours, key)), getattr(theirs, key).numpy(), rtol=1e-10)
