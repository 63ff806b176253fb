"""F.pad (constant, reflect, replicate, circular): numpy.pad as the reference,
gradients by finite differences (first and second order), PyTorch when
installed, and error messages."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.ops.pad import pad

NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _np(t):
    return np.asarray(t.detach())


def numpy_pad(x, amounts, mode, value=0.0):
    """numpy.pad with PyTorch's (last dim first) amounts; negative amounts crop."""
    pairs = [(amounts[i], amounts[i + 1]) for i in range(0, len(amounts), 2)][::-1]
    pairs = [(0, 0)] * (x.ndim - len(pairs)) + pairs
    crop = tuple(slice(max(-b, 0), x.shape[d] - max(-a, 0)) for d, (b, a) in enumerate(pairs))
    grow = [(max(b, 0), max(a, 0)) for b, a in pairs]
    kw = dict(constant_values=value) if mode == "constant" else {}
    return np.pad(x[crop], grow, mode=NUMPY_MODE[mode], **kw)


CASES = [  # (shape, pad) valid for every mode
    ((2, 5), (1, 2)),
    ((2, 3, 4), (3, 0)),
    ((1, 2, 4, 5), (1, 2, 3, 0)),
    ((2, 3, 3), (2, 1, 0, 2)),
    ((1, 1, 4, 4, 4), (1, 1, 2, 0, 3, 2)),
    ((2, 2, 3, 4), (0, 0, 0, 0)),
]


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, amounts", CASES)
def test_matches_numpy_pad_and_finite_differences(shape, amounts, mode):
    x = np.random.default_rng(0).standard_normal(shape)
    X = mg.tensor(x, requires_grad=True)
    y = pad(X, amounts, mode=mode)
    np.testing.assert_array_equal(_np(y), numpy_pad(x, amounts, mode))
    assert mg.gradcheck(lambda t: pad(t, amounts, mode=mode), [X])
    assert mg.gradgradcheck(lambda t: pad(t, amounts, mode=mode), [X])


@pytest.mark.parametrize("amounts", [(2, -1), (-1, -2, 1, 0), (0, 0, -1, 3), (1, 1, 1, 1, 1, 1)])
def test_constant_fill_value_and_negative_amounts(amounts):
    x = np.random.default_rng(1).standard_normal((2, 3, 5))
    X = mg.tensor(x, requires_grad=True)
    y = pad(X, amounts, value=2.5)
    np.testing.assert_array_equal(_np(y), numpy_pad(x, amounts, "constant", 2.5))
    # the fill value is a constant: gradients are those of the zero-filled pad
    assert mg.gradcheck(lambda t: pad(t, amounts, value=2.5), [X])
    assert mg.gradgradcheck(lambda t: pad(t, amounts, value=2.5), [X])


def test_constant_pad_of_integer_tensor():
    x = mg.tensor([[1, 2], [3, 4]])
    y = pad(x, (1, 0), value=7)
    assert y.dtype == mg.int64
    np.testing.assert_array_equal(y.numpy(), [[7, 1, 2], [7, 3, 4]])


def test_replicate_gradient_sums_onto_the_edge():
    x = mg.tensor(np.arange(3.0), requires_grad=True)
    pad(x.reshape(1, 3), (2, 1), mode="replicate").sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [3.0, 1.0, 2.0])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_matches_pytorch(mode):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    amounts = (2, 1, 3, 2) if mode != "constant" else (2, -1, 3, -2)
    X, Xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = pad(X, amounts, mode=mode), torch.nn.functional.pad(Xt, amounts, mode=mode)
    np.testing.assert_array_equal(_np(y), yt.detach().numpy())
    dy = np.random.default_rng(3).standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(mg.tensor(dy))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(_np(X.grad), Xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((mg.zeros(2, 3), (1,)), {}, ValueError, "divisible by 2, got 1 values"),
    ((mg.zeros(2, 3), (1, 1, 1, 1, 1, 1)), {}, ValueError, "padding length 6 is too large for an input of 2"),
    ((mg.zeros(2, 3), (1.5, 1)), {}, TypeError, "pad must be a tuple of ints"),
    ((mg.zeros(2, 3), (-2, -2)), {}, ValueError, "input size 3 plus padding -2 and -2 gives a negative"),
    ((mg.zeros(1, 2, 3), (3, 0)), dict(mode="reflect"), ValueError, r"reflect padding \(3, 0\) must be less "
                                                                    "than the dimension size 3"),
    ((mg.zeros(1, 2, 3), (0, 4)), dict(mode="circular"), ValueError, "at most the dimension size 3"),
    ((mg.zeros(1, 2, 3), (-1, 0)), dict(mode="replicate"), ValueError, "needs non-negative padding"),
    ((mg.zeros(4), (1, 1)), dict(mode="reflect"), ValueError, r"got 2 values for input of shape \(4,\)"),
    ((mg.zeros(1, 2, 3), (1, 1)), dict(mode="wrap"), ValueError, "mode must be one of constant, reflect"),
    ((mg.zeros(1, 2, 3), (1, 1)), dict(mode="reflect", value=1.0), ValueError, "does not take a fill value"),
    ((mg.zeros(1, 2, 3, dtype=mg.int64), (1, 1)), dict(mode="reflect"), TypeError, "floating point input"),
])
def test_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        pad(*args, **kwargs)
