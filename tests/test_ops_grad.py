"""Every differentiable Tensor op against finite differences (float64), first
and (for elementwise, matmul and reductions) second order."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.gradcheck import GradcheckError

BROADCAST_PAIRS = [((), ()), ((3,), ()), ((), (4,)), ((2, 3), (3,)), ((2, 1), (1, 3)),
                   ((4, 1, 3), (2, 1)), ((1,), (2, 2)), ((2, 3, 1), (2, 1, 4))]


def leaf(shape, seed, low=None, high=None):
    r = np.random.default_rng(seed)
    data = r.standard_normal(shape) if low is None else r.uniform(low, high, shape)
    return mg.tensor(np.asarray(data, dtype=np.float64), requires_grad=True)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: mg.maximum(a, b),
    "minimum": lambda a, b: mg.minimum(a, b),
    "where": lambda a, b: mg.where(a > 0.9, a, b),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
def test_binary_ops_gradcheck(name, shapes):
    positive = name in ("pow", "div")
    a = leaf(shapes[0], 1, 0.5, 2.0) if positive else leaf(shapes[0], 1)
    b = leaf(shapes[1], 2, 0.5, 2.0) if positive else leaf(shapes[1], 2)
    fn = BINARY[name]
    assert mg.gradcheck(fn, (a, b))
    assert mg.gradgradcheck(fn, (a, b))


def test_scalar_operands_gradcheck():
    a = leaf((2, 3), 3, 0.5, 2.0)
    for fn in (lambda x: 2.0 - x, lambda x: 3.0 / x, lambda x: x ** 2.5, lambda x: 2.0 ** x,
               lambda x: x ** 0, lambda x: -x + 1):
        assert mg.gradcheck(fn, (a,))
        assert mg.gradgradcheck(fn, (a,))


UNARY = {
    "exp": (lambda x: x.exp(), None),
    "log": (lambda x: x.log(), (0.5, 3.0)),
    "sqrt": (lambda x: x.sqrt(), (0.5, 3.0)),
    "abs": (lambda x: x.abs(), None),
    "sin": (lambda x: x.sin(), None),
    "cos": (lambda x: x.cos(), None),
    "tanh": (lambda x: x.tanh(), None),
    "sigmoid": (lambda x: x.sigmoid(), None),
    "relu": (lambda x: x.relu(), None),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), None),
    "neg": (lambda x: -x, None),
    "square": (lambda x: x.square(), None),
    "rsqrt": (lambda x: x.rsqrt(), (0.5, 3.0)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (1,), (3, 1), (2, 3, 4)], ids=str)
def test_unary_ops_gradcheck(name, shape):
    fn, rng_range = UNARY[name]
    x = leaf(shape, 4) if rng_range is None else leaf(shape, 4, *rng_range)
    if name in ("abs", "relu", "clamp"):  # keep away from kinks
        with mg.no_grad():
            x.data.copy_(mg.where(x.abs() < 0.05, x + 0.2, x).data)
            if name == "clamp":
                d = x.detach().numpy()
                d[np.abs(d + 0.5) < 0.05] += 0.2
                d[np.abs(d - 0.7) < 0.05] += 0.2
    assert mg.gradcheck(fn, (x,))
    assert mg.gradgradcheck(fn, (x,))


REDUCTIONS = {
    "sum_all": lambda x: x.sum(),
    "sum_dim": lambda x: x.sum(dim=1),
    "sum_tuple_keep": lambda x: x.sum(dim=(0, 2), keepdim=True),
    "mean": lambda x: x.mean(axis=-1),
    "mean_all": lambda x: x.mean(),
    "var": lambda x: x.var(dim=1),
    "var_biased": lambda x: x.var(dim=(0, 1), unbiased=False, keepdim=True),
    "std": lambda x: x.std(),
    "amax": lambda x: x.amax(dim=2),
    "amin": lambda x: x.amin(dim=(0, 1)),
    "max_all": lambda x: x.max(),
    "max_dim": lambda x: x.max(dim=1)[0],
    "min_dim_keep": lambda x: x.min(dim=0, keepdim=True)[0],
    "logsumexp": lambda x: x.logsumexp(dim=1),
    "logsumexp_all": lambda x: x.logsumexp(),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_gradcheck(name):
    x = leaf((2, 3, 4), 5)
    assert mg.gradcheck(REDUCTIONS[name], (x,))
    assert mg.gradgradcheck(REDUCTIONS[name], (x,))


def test_amax_ties_share_gradient_like_pytorch():
    x = mg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.amax().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5]
    y = mg.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    y.max(dim=1)[0].sum().backward()
    assert y.grad.tolist() == [[0.0, 1.0, 0.0]]


SHAPE_OPS = {
    "reshape": lambda x: x.reshape(4, 6),
    "view_neg": lambda x: x.view(-1, 3),
    "flatten": lambda x: x.flatten(1),
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 2),
    "T": lambda x: x.T,
    "unsqueeze": lambda x: x.unsqueeze(1),
    "squeeze": lambda x: x[:, :1].squeeze(1),
    "expand": lambda x: x[:, :, :1].expand(2, 3, 5),
    "cat": lambda x: mg.cat([x, x * 2, x[:, :1]], dim=1),
    "stack": lambda x: mg.stack([x, x.exp()], dim=-1),
    "index_int": lambda x: x[1],
    "index_slice": lambda x: x[:, 1:, ::2],
    "index_none_ellipsis": lambda x: x[None, ..., 1],
    "index_array_repeats": lambda x: x[[0, 1, 1, 0]],
    "index_mixed_arrays": lambda x: x[mg.tensor([0, 1, 1]), :, mg.tensor([3, 3, 0])],
    "index_mask": lambda x: x[x > 0.1],
    "index_negative": lambda x: x[-1, -2],
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_and_index_ops_gradcheck(name):
    x = leaf((2, 3, 4), 6)
    assert mg.gradcheck(SHAPE_OPS[name], (x,))
    assert mg.gradgradcheck(SHAPE_OPS[name], (x,))


def test_repeated_indices_accumulate():
    x = mg.zeros(3, requires_grad=True)
    x[mg.tensor([0, 2, 2, 2])].sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 3.0]


MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradcheck(shapes):
    a, b = leaf(shapes[0], 7), leaf(shapes[1], 8)
    assert mg.gradcheck(lambda a, b: a @ b, (a, b))
    assert mg.gradgradcheck(lambda a, b: a @ b, (a, b))
    assert np.allclose((a @ b).detach().numpy(), a.detach().numpy() @ b.detach().numpy())


def test_to_and_clone_gradcheck():
    x = leaf((3,), 9)
    assert mg.gradcheck(lambda x: x.clone() * 2, (x,))
    y = mg.tensor([1.0, 2.0], requires_grad=True)
    y.double().sum().backward()
    assert y.grad.dtype == mg.float32


def test_fast_mode_gradcheck_and_failure_report():
    x = leaf((20, 10), 10)
    assert mg.gradcheck(lambda x: (x.tanh() @ x.T).sum(1), (x,), fast_mode=True)

    class Wrong(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g * 3.0

    x = leaf((2, 2), 11)
    with pytest.raises(GradcheckError, match=r"(?s)input 0.*element.*numerical"):
        mg.gradcheck(Wrong.apply, (x,))
    assert mg.gradcheck(Wrong.apply, (x,), raise_exception=False) is False
    assert mg.gradcheck(Wrong.apply, (x,), fast_mode=True, raise_exception=False) is False


def test_gradcheck_refuses_float32():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="float64"):
        mg.gradcheck(lambda x: x * 2, (x,))
