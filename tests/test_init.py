"""nn.init: statistics of large tensors against the formulas (within 3 %),
bounds, structure (orthogonal, sparse, eye, dirac), gains, fans and errors."""
import math
import statistics
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import init


def _np(t):
    return np.asarray(t.detach())


def _close(value, expected, tol=0.03):
    assert abs(value / expected - 1) < tol, (value, expected)


@pytest.fixture(autouse=True)
def _seed():
    mg.manual_seed(1234)


# ------------------------------------------------------------------ gains and fans

def test_calculate_gain_values():
    for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid"):
        assert init.calculate_gain(name) == 1
    assert init.calculate_gain("tanh") == 5.0 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.calculate_gain("leaky_relu", 1) == 1.0
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


def test_calculate_gain_matches_pytorch():
    torch = pytest.importorskip("torch")
    for args in (("linear",), ("tanh",), ("relu",), ("leaky_relu",), ("leaky_relu", 0.3), ("selu",)):
        assert init.calculate_gain(*args) == torch.nn.init.calculate_gain(*args)


def test_fans_use_the_receptive_field():
    w = mg.empty(8, 3, 5, 5)
    assert init._calculate_fan_in_and_fan_out(w) == (75, 200)
    assert init._calculate_fan_in_and_fan_out(mg.empty(4, 6)) == (6, 4)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(mg.empty(5))


# ------------------------------------------------------------------ distributions

def test_uniform_and_normal_statistics():
    t = init.uniform_(mg.empty(600, 500), -2.0, 3.0)
    v = _np(t)
    assert v.min() >= -2.0 and v.max() < 3.0
    _close(v.mean(), 0.5)
    _close(v.std(), 5 / math.sqrt(12))
    v = _np(init.normal_(mg.empty(600, 500), 1.5, 0.2))
    _close(v.mean(), 1.5)
    _close(v.std(), 0.2)
    with pytest.raises(ValueError, match="from=2 > to=1"):
        init.uniform_(mg.empty(3), 2, 1)
    with pytest.raises(ValueError, match="std >= 0.0"):
        init.normal_(mg.empty(3), 0, -1)


@pytest.mark.parametrize("shape", [(500, 700), (64, 32, 5, 5)])
def test_xavier(shape):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(mg.empty(*shape))
    std = 1.7 * math.sqrt(2 / (fan_in + fan_out))
    v = _np(init.xavier_uniform_(mg.empty(*shape), gain=1.7))
    assert np.abs(v).max() <= math.sqrt(3) * std
    _close(v.std(), std)
    assert abs(v.mean()) < 0.01 * std
    v = _np(init.xavier_normal_(mg.empty(*shape), gain=1.7))
    _close(v.std(), std)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.2), ("tanh", 0)])
def test_kaiming(mode, nonlinearity, a):
    shape = (256, 64, 3, 3)
    fan = 64 * 9 if mode == "fan_in" else 256 * 9
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    v = _np(init.kaiming_uniform_(mg.empty(*shape), a=a, mode=mode, nonlinearity=nonlinearity))
    assert np.abs(v).max() <= math.sqrt(3) * std
    _close(v.std(), std)
    v = _np(init.kaiming_normal_(mg.empty(*shape), a=a, mode=mode, nonlinearity=nonlinearity))
    _close(v.std(), std)
    assert abs(v.mean()) < 0.01 * std


def test_kaiming_errors_and_empty_tensor():
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(mg.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_normal_(mg.empty(3))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.kaiming_normal_(mg.empty(3, 3), nonlinearity="swish")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(mg.empty(4))
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(mg.empty(0, 3))
    init.kaiming_uniform_(mg.empty(3, 3), mode="FAN_OUT")  # mode is case-insensitive, as PyTorch


def _truncated_normal_moments(mean, std, a, b):
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * math.erfc(-z / math.sqrt(2))  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    shift = (pdf(alpha) - pdf(beta)) / mass
    var = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - shift ** 2
    return mean + std * shift, std * math.sqrt(var)


@pytest.mark.filterwarnings("ignore:mean is more than 2 std")  # the tail cases, on purpose
@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (1.0, 2.0, 0.0, 3.0),
                                          (0.0, 0.02, -0.04, 0.04), (0.0, 1.0, 3.0, 5.0),
                                          (0.0, 1.0, -6.0, -4.0)])
def test_trunc_normal_moments_and_bounds(mean, std, a, b):
    t = init.trunc_normal_(mg.empty(400, 500, dtype=mg.float64), mean, std, a, b)
    v = _np(t)
    assert v.min() >= a and v.max() <= b
    m, s = _truncated_normal_moments(mean, std, a, b)
    assert abs(v.mean() - m) < 0.03 * s
    _close(v.std(), s)


def test_trunc_normal_warns_far_mean_and_rejects_swapped_bounds():
    with pytest.warns(UserWarning, match="more than 2 std"):
        init.trunc_normal_(mg.empty(10), mean=10.0, std=1.0, a=-2.0, b=2.0)
    with pytest.raises(ValueError, match="above upper bound"):
        init.trunc_normal_(mg.empty(10), a=1.0, b=0.0)


def test_normal_quantile_against_the_standard_library():
    p = np.array([1e-300, 1e-30, 1e-8, 0.001, 0.02425, 0.1, 0.5, 0.7, 0.97575, 0.999, 1 - 1e-12, 1 - 1e-16])
    got = init.normal_quantile(np, p)
    expected = [statistics.NormalDist().inv_cdf(float(q)) for q in p]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


# ------------------------------------------------------------------ structured

@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (12, 4, 3, 3)])
def test_orthogonal(shape):
    w = _np(init.orthogonal_(mg.empty(*shape, dtype=mg.float64), gain=2.0)).reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-10)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(mg.empty(5))


def test_sparse_zeroes_a_fraction_of_every_column():
    w = _np(init.sparse_(mg.empty(200, 300), sparsity=0.1, std=0.05))
    assert ((w == 0).sum(axis=0) == 20).all()
    _close(w[w != 0].std(), 0.05)
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        init.sparse_(mg.empty(3, 3, 3), 0.5)


def test_eye_constant_ones_zeros():
    assert _np(init.eye_(mg.empty(3, 5))).tolist() == np.eye(3, 5).tolist()
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        init.eye_(mg.empty(3))
    assert (_np(init.constant_(mg.empty(2, 2), 0.25)) == 0.25).all()
    assert (_np(init.ones_(mg.empty(4))) == 1).all()
    assert not _np(init.zeros_(mg.randn(4))).any()


@pytest.mark.parametrize("shape,groups", [((4, 4, 3), 1), ((6, 2, 3, 3), 2), ((3, 5, 3, 3, 3), 1)])
def test_dirac(shape, groups):
    w = _np(init.dirac_(mg.randn(*shape), groups))
    expected = np.zeros(shape)
    per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min(per_group, shape[1])):
            expected[(g * per_group + d, d) + centre] = 1
    np.testing.assert_array_equal(w, expected)


def test_dirac_errors():
    with pytest.raises(ValueError, match="3, 4, or 5 dimensions"):
        init.dirac_(mg.empty(3, 3))
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac_(mg.empty(5, 2, 3), groups=2)


# ------------------------------------------------------------------ in place, no graph

def test_initializers_work_in_place_on_parameters_without_a_graph():
    p = nn.Parameter(mg.empty(6, 4))
    data = p._data
    calls = [lambda t: init.uniform_(t), lambda t: init.normal_(t), lambda t: init.trunc_normal_(t),
             lambda t: init.constant_(t, 2), init.ones_, init.zeros_, init.eye_, init.xavier_uniform_,
             init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_, init.orthogonal_,
             lambda t: init.sparse_(t, 0.5)]
    for fn in calls:
        assert fn(p) is p
        assert p.is_leaf and p.requires_grad and p.grad_fn is None and p._data is data
    assert mg.is_grad_enabled()


def test_reproducible_and_dtype_preserving():
    mg.manual_seed(5)
    a = _np(init.kaiming_normal_(mg.empty(10, 10, dtype=mg.float64)))
    mg.manual_seed(5)
    b = init.kaiming_normal_(mg.empty(10, 10, dtype=mg.float64))
    assert b.dtype == mg.float64
    np.testing.assert_array_equal(a, _np(b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init.trunc_normal_(mg.empty(5, 5, device="standin"))


def test_default_linear_init_ranges_and_spread():
    layer = nn.Linear(800, 600)
    bound = 1 / math.sqrt(800)
    w, b = _np(layer.weight), _np(layer.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    _close(w.std(), bound / math.sqrt(3))
    _close(b.std(), bound / math.sqrt(3), tol=0.1)  # only 600 values
