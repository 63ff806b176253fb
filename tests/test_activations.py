"""Activation modules and functions: values and derivatives against closed
forms (kinks and saturation included), finite differences in float64,
PyTorch when installed; softmax/log_softmax stability."""
import math
import warnings

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erfc = np.vectorize(math.erfc)


def _sig(x):
    # 1 / (1 + exp(-x)), arranged so neither branch overflows or cancels
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _phi(x):
    return 0.5 * _erfc(-x / math.sqrt(2))  # erfc keeps relative accuracy in the lower tail


def _gelu_tanh_u(x):
    return math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)


# (module, f(x), f'(x)) written from the definitions, independently of the kernels
CASES = {
    "relu": (nn.ReLU(), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "leaky_relu": (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda x: np.where(x > 0, 1.0, 0.2)),
    "elu": (nn.ELU(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(np.minimum(x, 0))),
            lambda x: np.where(x > 0, 1.0, 0.7 * np.exp(np.minimum(x, 0)))),
    "selu": (nn.SELU(), lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
             lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0)))),
    "gelu": (nn.GELU(), lambda x: x * _phi(x),
             lambda x: _phi(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    # 0.5 (1 + tanh(u)) = sigmoid(2u), the form without cancellation for negative u
    "gelu_tanh": (nn.GELU("tanh"), lambda x: x * _sig(2 * _gelu_tanh_u(x)),
                  lambda x: _sig(2 * _gelu_tanh_u(x)) + x * 2 * _sig(2 * _gelu_tanh_u(x)) * _sig(-2 * _gelu_tanh_u(x))
                  * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2)),
    "silu": (nn.SiLU(), lambda x: x * _sig(x), lambda x: _sig(x) * (1 + x * (1 - _sig(x)))),
    "sigmoid": (nn.Sigmoid(), _sig, lambda x: _sig(x) * (1 - _sig(x))),
    "tanh": (nn.Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "softplus": (nn.Softplus(beta=2.0, threshold=5.0),
                 lambda x: np.where(2 * x > 5, x, np.logaddexp(0, 2 * x) / 2),
                 lambda x: np.where(2 * x > 5, 1.0, _sig(2 * x))),
    "hardtanh": (nn.Hardtanh(-0.5, 2.0), lambda x: np.clip(x, -0.5, 2.0),
                 lambda x: ((x > -0.5) & (x < 2.0)) * 1.0),
    "relu6": (nn.ReLU6(), lambda x: np.clip(x, 0, 6), lambda x: ((x > 0) & (x < 6)) * 1.0),
}
# kinks (0, the hardtanh/relu6 corners, the softplus threshold) and saturation (+-50)
POINTS = np.array([-50.0, -6.0, -3.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 6.0, 50.0])


@pytest.mark.parametrize("name", list(CASES))
def test_value_and_derivative_closed_form(name):
    module, f, df = CASES[name]
    x = mg.tensor(POINTS, requires_grad=True)
    y = module(x)
    np.testing.assert_allclose(np.asarray(y.detach()), f(POINTS), rtol=1e-12, atol=1e-300)
    y.backward(mg.ones_like(y))
    np.testing.assert_allclose(np.asarray(x.grad), df(POINTS), rtol=1e-10, atol=1e-300)


def test_derivative_conventions_at_kinks():
    # PyTorch's choices where the derivative is undefined
    at = {"relu": (0.0, 0.0), "leaky_relu": (0.0, 0.2), "hardtanh": (-0.5, 0.0), "relu6": (6.0, 0.0)}
    for name, (point, slope) in at.items():
        x = mg.tensor([point], dtype=mg.float64, requires_grad=True)
        CASES[name][0](x).sum().backward()
        assert x.grad.item() == slope, name


def test_sigmoid_softplus_saturation_exact():
    x = mg.tensor([-50.0, 50.0, 30.0], dtype=mg.float64)
    s = F.sigmoid(x).tolist()
    assert s[1] == 1.0 and math.isclose(s[0], math.exp(-50), rel_tol=1e-12)
    sp = F.softplus(x).tolist()
    assert sp[1] == 50.0 and sp[2] == 30.0  # above threshold 20: the identity
    assert math.isclose(sp[0], math.log1p(math.exp(-50)), rel_tol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_extreme_inputs_are_finite_without_warnings(name):
    module = CASES[name][0]
    x = mg.tensor([-1e4, -88.0, 88.0, 1e4], requires_grad=True)  # float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = module(x)
        y.backward(mg.ones_like(y))
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()


# points away from the kinks, where finite differences are valid
SMOOTH = np.array([-3.1, -1.3, -0.7, -0.2, 0.3, 0.9, 1.7, 2.9])


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    module = CASES[name][0]
    x = mg.tensor(SMOOTH.reshape(2, 4), requires_grad=True)
    assert mg.gradcheck(module, (x,))


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("gelu")])
def test_gradgradcheck(name):
    module = CASES[name][0]
    x = mg.tensor(SMOOTH.reshape(2, 4), requires_grad=True)
    assert mg.gradgradcheck(module, (x,))


def test_gelu_double_backward_is_a_clear_error():
    x = mg.tensor([0.5], dtype=mg.float64, requires_grad=True)
    with pytest.raises(NotImplementedError, match="gelu"):
        mg.autograd.grad(F.gelu(x).sum(), [x], create_graph=True)


TORCH_FUNCS = {
    "relu": lambda F, x: F.relu(x), "leaky_relu": lambda F, x: F.leaky_relu(x, 0.2),
    "elu": lambda F, x: F.elu(x, 0.7), "selu": lambda F, x: F.selu(x),
    "gelu": lambda F, x: F.gelu(x), "gelu_tanh": lambda F, x: F.gelu(x, approximate="tanh"),
    "silu": lambda F, x: F.silu(x), "sigmoid": lambda F, x: F.sigmoid(x), "tanh": lambda F, x: F.tanh(x),
    "softplus": lambda F, x: F.softplus(x, beta=2.0, threshold=5.0),
    "hardtanh": lambda F, x: F.hardtanh(x, -0.5, 2.0), "relu6": lambda F, x: F.relu6(x),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_pytorch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    data = (rng.standard_normal((6, 7)) * 4).astype(dtype)
    data[0, :4] = [0.0, -0.5, 2.0, 6.0]
    g = rng.standard_normal((6, 7)).astype(dtype)
    xm, xt = mg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    ym, yt = TORCH_FUNCS[name](F, xm), TORCH_FUNCS[name](torch.nn.functional, xt)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(ym.detach()), yt.detach().numpy(), **tol)
    ym.backward(mg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(np.asarray(xm.grad), xt.grad.numpy(), **tol)


def test_inplace_flag():
    x = mg.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    leaf = mg.tensor([-1.0, 2.0], requires_grad=True)
    out = nn.ReLU(inplace=True)(leaf)  # a graph is recorded: computed out of place
    assert out is not leaf and leaf.tolist() == [-1.0, 2.0] and out.tolist() == [0.0, 2.0]
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"


def test_constructor_errors_and_reprs():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="min_val"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="beta must be nonzero"):
        nn.Softplus(beta=0)
    with pytest.raises(TypeError, match="floating point"):
        F.relu(mg.tensor([1, 2]))
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_activation_reprs_match_pytorch():
    torch = pytest.importorskip("torch")
    pairs = [(nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1)),
             (nn.ELU(), torch.nn.ELU()), (nn.GELU(), torch.nn.GELU()), (nn.Tanh(), torch.nn.Tanh()),
             (nn.Hardtanh(), torch.nn.Hardtanh()), (nn.Softplus(), torch.nn.Softplus()),
             (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)), (nn.Sigmoid(), torch.nn.Sigmoid())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


# ------------------------------------------------------------------ softmax family

def _softmax_np(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_values(rng, dim):
    data = rng.standard_normal((3, 4, 5))
    x = mg.tensor(data)
    expected = _softmax_np(data, dim)
    np.testing.assert_allclose(F.softmax(x, dim).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(nn.LogSoftmax(dim)(x).numpy(), np.log(expected), rtol=1e-12)
    np.testing.assert_allclose(x.softmax(dim).numpy().sum(axis=dim), 1.0, rtol=1e-12)


def test_softmax_is_stable_for_huge_logits():
    x = mg.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = F.softmax(x, 1)
        ls = F.log_softmax(x, 1)
        (s.sum() + ls.sum()).backward()
    np.testing.assert_allclose(s.detach().numpy(), [[1, 0, 0], [1 / 3] * 3], rtol=1e-6)
    np.testing.assert_allclose(ls.detach().numpy(), [[0, -1e4, -2e4], [-math.log(3)] * 3], rtol=1e-6)
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_gradcheck_and_gradgradcheck(rng, fn):
    x = mg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert mg.gradcheck(lambda t: fn(t, 1), (x,))
    assert mg.gradgradcheck(lambda t: fn(t, 0), (x,))


def test_softmax_backward_closed_form(rng):
    data, g = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    x = mg.tensor(data, requires_grad=True)
    F.softmax(x, 1).backward(mg.tensor(g))
    y = _softmax_np(data, 1)
    np.testing.assert_allclose(x.grad.numpy(), y * (g - (g * y).sum(1, keepdims=True)), rtol=1e-12)
    x.grad = None
    F.log_softmax(x, 1).backward(mg.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), g - y * g.sum(1, keepdims=True), rtol=1e-12)


def test_softmax_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    data, g = rng.standard_normal((4, 6)).astype(np.float32) * 10, rng.standard_normal((4, 6)).astype(np.float32)
    for ours, theirs in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
        xm, xt = mg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        ym, yt = ours(xm, 1), theirs(xt, 1)
        ym.backward(mg.tensor(g))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_softmax_argument_handling():
    x = mg.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(1), 1.0, rtol=1e-6)  # dim 1 for 2-D input
    assert F.softmax(x, 1, dtype=mg.float64).dtype == mg.float64
    assert F.softmax(mg.tensor(3.0), 0).item() == 1.0
    with pytest.raises(TypeError, match="floating point"):
        F.softmax(mg.tensor([1, 2]), 0)
    with pytest.raises(IndexError, match="out of range"):
        F.log_softmax(x, 2)
