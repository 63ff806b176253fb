"""Normalization layers and their one fused op: values against closed forms
written here in numpy, gradients against finite differences (float64), second
derivatives through the composite backward, compiled kernels against the
reference ones through the op, float32 accuracy for inputs with a large mean,
PyTorch when installed, and the error messages."""
import functools
import math
import re

import numpy as np
import pytest

import minigrad as mg
from minigrad.backend.cpu import backend as cpu_backend
from minigrad.backend.reference import norm as ref_norm
from minigrad.nn.layers.normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm,
                                              InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                                              LayerNorm, LocalResponseNorm, RMSNorm)
from minigrad.ops import norm as F

EPS = 1e-5


def _np(t):
    return np.asarray(t.detach())


def _randomize(module, rng, running=True):
    """Random affine parameters (so that they matter) and, when the module
    tracks them, random running statistics."""
    with mg.no_grad():
        for name, p in module.named_parameters():
            p.copy_(rng.uniform(0.5, 1.5, p.shape) if name.endswith("weight")
                    else rng.standard_normal(p.shape))
        if running and getattr(module, "running_mean", None) is not None:
            module.running_mean.copy_(rng.standard_normal(module.running_mean.shape))
            module.running_var.copy_(rng.uniform(0.5, 2.0, module.running_var.shape))
    return module


# ---------------------------------------------------------------- closed forms (numpy, float64)

def _normalize(x, axes, eps, center=True):
    mean = x.mean(axis=axes, keepdims=True) if center else 0.0
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _per_channel(a, ndim):
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def expected_output(module, x):
    """What `module` should return for x (float64 numpy), written out per layer."""
    params = {n: (None if p is None else _np(p).astype(np.float64))
              for n, p in module._parameters.items()}
    w, b = params.get("weight"), params.get("bias")
    if isinstance(module, (LayerNorm, RMSNorm)):
        axes = tuple(range(x.ndim - len(module.normalized_shape), x.ndim))
        eps = module.eps if module.eps is not None else np.finfo(np.float64).eps
        y = _normalize(x, axes, eps, center=isinstance(module, LayerNorm))
        return _affine(y, w, b, module.normalized_shape)
    if isinstance(module, GroupNorm):
        g = x.reshape(x.shape[0], module.num_groups, -1)
        y = _normalize(g, (2,), module.eps).reshape(x.shape)
        return _affine(y, w, b, (1, -1) + (1,) * (x.ndim - 2))
    if isinstance(module, LocalResponseNorm):
        return expected_lrn(x, module.size, module.alpha, module.beta, module.k)
    unbatched = isinstance(module, (InstanceNorm1d, InstanceNorm2d, InstanceNorm3d)) and \
        x.ndim == module._ranks[0]
    if unbatched:
        x = x[None]
    cshape = (1, -1) + (1,) * (x.ndim - 2)
    uses_running = not module.training and module.running_mean is not None
    if uses_running:
        rm, rv = _np(module.running_mean), _np(module.running_var)
        y = (x - _per_channel(rm, x.ndim)) / np.sqrt(_per_channel(rv, x.ndim) + module.eps)
    elif isinstance(module, (BatchNorm1d, BatchNorm2d, BatchNorm3d)):
        y = _normalize(x, (0,) + tuple(range(2, x.ndim)), module.eps)
    else:
        y = _normalize(x, tuple(range(2, x.ndim)), module.eps)
    y = _affine(y, w, b, cshape)
    return y[0] if unbatched else y


def expected_lrn(x, size, alpha, beta, k):
    C = x.shape[1]
    sq = x * x
    div = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1)
        div[:, c] = sq[:, lo:hi].sum(axis=1)
    return x / (k + alpha / size * div) ** beta


# layer factories with the input shapes they are checked on (batch 2, odd sizes)
LAYERS = {
    "bn1d_2d": (lambda: BatchNorm1d(3), [(2, 3), (5, 3)]),
    "bn1d_3d": (lambda: BatchNorm1d(3), [(2, 3, 5), (3, 3, 1)]),
    "bn2d": (lambda: BatchNorm2d(3), [(2, 3, 3, 5), (1, 3, 3, 1)]),
    "bn3d": (lambda: BatchNorm3d(2), [(2, 2, 3, 1, 3)]),
    "bn_no_affine": (lambda: BatchNorm2d(3, affine=False), [(2, 3, 2, 3)]),
    "bn_no_tracking": (lambda: BatchNorm1d(3, track_running_stats=False), [(3, 3, 3)]),
    "ln": (lambda: LayerNorm(5), [(2, 5), (2, 3, 5)]),
    "ln_2d_shape": (lambda: LayerNorm((3, 5)), [(2, 3, 5)]),
    "ln_no_bias": (lambda: LayerNorm(7, bias=False), [(3, 7)]),
    "ln_no_affine": (lambda: LayerNorm(4, elementwise_affine=False), [(2, 4)]),
    "gn": (lambda: GroupNorm(2, 6), [(2, 6, 5), (3, 6, 3, 1)]),
    "gn_one_group": (lambda: GroupNorm(1, 3), [(2, 3, 3)]),
    "gn_per_channel": (lambda: GroupNorm(4, 4, affine=False), [(2, 4, 7)]),
    "in1d": (lambda: InstanceNorm1d(3, affine=True), [(2, 3, 5), (3, 5)]),
    "in2d": (lambda: InstanceNorm2d(3, affine=True), [(2, 3, 3, 3)]),
    "in2d_tracking": (lambda: InstanceNorm2d(3, affine=True, track_running_stats=True),
                      [(2, 3, 2, 3), (3, 2, 3)]),
    "in3d": (lambda: InstanceNorm3d(2), [(2, 2, 2, 3, 2)]),
    "rms": (lambda: RMSNorm(5), [(2, 5), (3, 2, 5)]),
    "rms_eps": (lambda: RMSNorm((2, 3), eps=1e-3), [(2, 2, 3)]),
    "lrn": (lambda: LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.5), [(2, 5, 3), (2, 4, 2, 3)]),
    "lrn_even": (lambda: LocalResponseNorm(2, alpha=0.3, k=0.5), [(2, 3, 4)]),
}
CASES = [(name, shape) for name, (_, shapes) in LAYERS.items() for shape in shapes]


def make(name, rng, training):
    module = _randomize(LAYERS[name][0]().double(), rng)
    return module.train(training)


# ---------------------------------------------------------------- values and gradients

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,shape", CASES)
def test_forward_matches_closed_form(rng, name, shape, training):
    module = make(name, rng, training)
    x = rng.standard_normal(shape) * 2.0 + 0.5
    expected = expected_output(module, x)
    out = module(mg.tensor(x))
    assert out.shape == shape and out.dtype == mg.float64
    np.testing.assert_allclose(_np(out), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,shape", CASES)
def test_gradcheck_input_weight_bias(rng, name, shape, training):
    module = make(name, rng, training)
    x = mg.tensor(rng.standard_normal(shape), requires_grad=True)
    assert mg.gradcheck_module(module, x)


@pytest.mark.parametrize("name,shape", [("bn2d", (2, 3, 2, 3)), ("bn1d_2d", (3, 3)), ("ln", (2, 5)),
                                        ("gn", (2, 6, 2)), ("in1d", (2, 3, 4)),
                                        ("in2d_tracking", (2, 3, 2, 2)), ("rms", (3, 5))])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_second_derivatives_through_composite_backward(rng, name, shape, training):
    module = make(name, rng, training)
    params = [p for p in module.parameters()]
    x = mg.tensor(rng.standard_normal(shape), requires_grad=True)

    def fn(x, *params):
        return module(x)

    assert mg.gradgradcheck(fn, (x, *params))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,shape", CASES)
def test_composite_backward_equals_the_kernels(rng, name, shape, training):
    # create_graph=True builds the gradient from Tensor ops; it must agree with
    # the fused kernels that plain backward uses
    module = make(name, rng, training)
    x = mg.tensor(rng.standard_normal(shape), requires_grad=True)
    targets = [x] + list(module.parameters())
    g = mg.tensor(rng.standard_normal(shape))
    fused = mg.autograd.grad(module(x), targets, g)
    composite = mg.autograd.grad(module(x), targets, g, create_graph=True)
    for a, b in zip(fused, composite):
        np.testing.assert_allclose(_np(b), _np(a), rtol=1e-10, atol=1e-12)


def test_double_backward_gives_gradient_penalty(rng):
    # d/dw of ||d(sum(y * c))/dx||^2, by autograd and by finite differences of the first gradient
    module = _randomize(LayerNorm(6).double(), rng)
    x = mg.tensor(rng.standard_normal((3, 6)), requires_grad=True)
    c = mg.tensor(rng.standard_normal((3, 6)))

    def penalty():
        (gx,) = mg.autograd.grad((module(x) * c).sum(), x, create_graph=True)
        return (gx * gx).sum()

    penalty().backward()
    analytic = _np(module.weight.grad)
    numeric = np.empty(6)
    for i in range(6):
        vals = []
        for delta in (1e-6, -1e-6):
            with mg.no_grad():
                module.weight._data[i] += delta
            vals.append(penalty().item())
            with mg.no_grad():
                module.weight._data[i] -= delta
        numeric[i] = (vals[0] - vals[1]) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("factory,name", [(lambda: BatchNorm1d(3), "BatchNorm"),
                                          (lambda: LayerNorm(3), "LayerNorm"),
                                          (lambda: GroupNorm(1, 3), "GroupNorm"),
                                          (lambda: InstanceNorm1d(3, affine=True), "InstanceNorm"),
                                          (lambda: RMSNorm(3), "RMSNorm")])
def test_each_layer_is_one_graph_node_of_the_shared_op(factory, name):
    module = factory()
    out = module(mg.randn(4, 3, 5) if name in ("GroupNorm", "InstanceNorm") else mg.randn(4, 3))
    node = out.grad_fn
    assert isinstance(node, F.Normalization) and node.name == name
    assert node.edges[1] is module.weight


def test_contiguous_input_is_viewed_not_copied():
    x = mg.randn(4, 3, 5, 6, requires_grad=True)
    for module in (BatchNorm2d(3), GroupNorm(3, 3), LayerNorm(6), InstanceNorm2d(3)):
        assert np.shares_memory(module(x).grad_fn.xd, x._data)


def test_weight_without_grad_and_bias_only(rng):
    # weight=None with a bias still gets its gradient (sum of dy); and a frozen weight gets none
    x = mg.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    b = mg.tensor(rng.standard_normal(3), requires_grad=True)
    g = rng.standard_normal((4, 3, 2))
    F.batch_norm(x, None, None, None, b, training=True).backward(mg.tensor(g))
    np.testing.assert_allclose(_np(b.grad), g.sum(axis=(0, 2)), rtol=1e-12)
    w = mg.tensor(rng.standard_normal(3))
    y = F.group_norm(x, 3, w, b)
    y.backward(mg.tensor(g))
    assert w.grad is None and x.grad is not None


# ---------------------------------------------------------------- compiled vs reference, through the op

@pytest.fixture
def compiled_norm():
    missing = [n for n in ref_norm.__all__ if n not in cpu_backend.compiled]
    if missing:
        pytest.skip(f"compiled norm kernels not built (missing {missing})")


def _run(module, x, g):
    """Output and gradients (input and parameters) of one forward/backward."""
    for p in module.parameters():
        p.grad = None
    x = x.detach().requires_grad_()
    out = module(x)
    out.backward(g)
    return [_np(out), _np(x.grad)] + [_np(p.grad) for p in module.parameters()]


def _noncontiguous(rng, shape, dtype):
    """A tensor of `shape` whose memory is in reversed axis order."""
    base = rng.standard_normal(shape[::-1]).astype(dtype)
    t = mg.tensor(base).permute(*reversed(range(len(shape))))
    assert not t.is_contiguous()
    return t


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-11)])
@pytest.mark.parametrize("name,shape", [("bn2d", (3, 3, 4, 5)), ("bn1d_2d", (6, 3)),
                                        ("ln_2d_shape", (2, 3, 5)), ("gn", (2, 6, 5)),
                                        ("in2d", (2, 3, 3, 3)), ("rms", (3, 2, 5)),
                                        ("bn_no_affine", (2, 3, 3, 3))])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_compiled_matches_reference_through_the_op(rng, monkeypatch, compiled_norm, name, shape,
                                                   dtype, tol, training):
    module = make(name, rng, training).to(mg.float32 if dtype == np.float32 else mg.float64)
    x = _noncontiguous(rng, shape, dtype)
    g = _noncontiguous(rng, shape, dtype)
    fast = _run(module, x, g)
    with monkeypatch.context() as m:
        for fn_name in ref_norm.__all__:
            m.setattr(cpu_backend, fn_name, functools.partial(getattr(ref_norm, fn_name), np))
        slow = _run(module, x, g)
    for a, b in zip(fast, slow):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))


# ---------------------------------------------------------------- float32 with a large mean

@pytest.mark.parametrize("factory,shape", [(lambda: BatchNorm2d(4), (8, 4, 6, 6)),
                                           (lambda: LayerNorm(256), (4, 256)),
                                           (lambda: GroupNorm(2, 8), (4, 8, 32)),
                                           (lambda: InstanceNorm1d(4), (3, 4, 300))])
def test_float32_large_mean_normalizes_accurately(rng, factory, shape):
    module = factory()
    x64 = 1e4 + rng.standard_normal(shape)
    x32 = x64.astype(np.float32)
    exact = expected_output(module.double(), x32.astype(np.float64))
    module.float()
    x = mg.tensor(x32, requires_grad=True)
    out = module(x)
    g = rng.standard_normal(shape)
    out.backward(mg.tensor(g.astype(np.float32)))
    assert np.abs(_np(out) - exact).max() < 1e-4
    # the input gradient too, against float64 on the same float32 values
    module.double()
    x_ref = mg.tensor(x32.astype(np.float64), requires_grad=True)
    module(x_ref).backward(mg.tensor(g))
    grad_exact = _np(x_ref.grad)
    assert np.abs(_np(x.grad) - grad_exact).max() < 1e-4 * max(1.0, np.abs(grad_exact).max())
    # the case the accuracy guards against: a one-pass float32 variance fails here
    axes = tuple(range(1, len(shape))) if isinstance(module, LayerNorm) else (0, 2, 3)
    if isinstance(module, BatchNorm2d):
        mean = x32.mean(axis=axes, dtype=np.float32)
        naive_var = (x32 * x32).mean(axis=axes, dtype=np.float32) - mean * mean
        true_var = x32.astype(np.float64).var(axis=axes)
        assert np.abs(naive_var - true_var).max() > 1e-2


# ---------------------------------------------------------------- PyTorch

def _torch_module(torch, name):
    tnn = torch.nn
    return {
        "bn1d_2d": lambda: tnn.BatchNorm1d(3), "bn1d_3d": lambda: tnn.BatchNorm1d(3),
        "bn2d": lambda: tnn.BatchNorm2d(3), "bn3d": lambda: tnn.BatchNorm3d(2),
        "bn_no_affine": lambda: tnn.BatchNorm2d(3, affine=False),
        "bn_no_tracking": lambda: tnn.BatchNorm1d(3, track_running_stats=False),
        "ln": lambda: tnn.LayerNorm(5), "ln_2d_shape": lambda: tnn.LayerNorm((3, 5)),
        "ln_no_bias": lambda: tnn.LayerNorm(7, bias=False),
        "ln_no_affine": lambda: tnn.LayerNorm(4, elementwise_affine=False),
        "gn": lambda: tnn.GroupNorm(2, 6), "gn_one_group": lambda: tnn.GroupNorm(1, 3),
        "gn_per_channel": lambda: tnn.GroupNorm(4, 4, affine=False),
        "in1d": lambda: tnn.InstanceNorm1d(3, affine=True),
        "in2d": lambda: tnn.InstanceNorm2d(3, affine=True),
        "in2d_tracking": lambda: tnn.InstanceNorm2d(3, affine=True, track_running_stats=True),
        "in3d": lambda: tnn.InstanceNorm3d(2),
        "rms": lambda: tnn.RMSNorm(5), "rms_eps": lambda: tnn.RMSNorm((2, 3), eps=1e-3),
        "lrn": lambda: tnn.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.5),
        "lrn_even": lambda: tnn.LocalResponseNorm(2, alpha=0.3, k=0.5),
    }[name]()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,shape", CASES)
def test_matches_pytorch_values_grads_and_buffers(rng, name, shape, training, dtype):
    torch = pytest.importorskip("torch")
    ours = make(name, rng, training).to(getattr(mg, dtype))
    theirs = _torch_module(torch, name).to(getattr(torch, dtype)).train(training)
    theirs.load_state_dict({k: torch.from_numpy(np.array(_np(v))) for k, v in ours.state_dict().items()})
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = ours(xm), theirs(xt)
    ym.backward(mg.tensor(g))
    yt.backward(torch.from_numpy(g))
    tol = 1e-4 if dtype == "float32" else 1e-10

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))

    close(_np(ym), yt.detach().numpy())
    close(_np(xm.grad), xt.grad.numpy())
    for (n, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        close(_np(p.grad), tp.grad.numpy())
    for (n, b), tb in zip(ours.named_buffers(), theirs.buffers()):
        close(_np(b), tb.numpy())


# ---------------------------------------------------------------- defaults, buffers, repr

def test_defaults_and_state_dict_keys():
    bn = BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert bn.eps == 1e-5 and bn.momentum == 0.1 and bn.affine and bn.track_running_stats
    np.testing.assert_array_equal(_np(bn.weight), np.ones(4))
    np.testing.assert_array_equal(_np(bn.bias), np.zeros(4))
    np.testing.assert_array_equal(_np(bn.running_var), np.ones(4))
    assert bn.num_batches_tracked.dtype == mg.int64 and bn.num_batches_tracked.shape == ()
    inorm = InstanceNorm2d(4)
    assert not inorm.affine and not inorm.track_running_stats
    assert list(inorm.state_dict()) == [] and inorm.weight is None and inorm.running_mean is None
    assert list(LayerNorm((2, 3), bias=False).state_dict()) == ["weight"]
    assert LayerNorm(5).normalized_shape == (5,)
    assert list(RMSNorm(3).state_dict()) == ["weight"] and RMSNorm(3).eps is None
    assert list(GroupNorm(2, 4, affine=False).state_dict()) == []
    assert list(LocalResponseNorm(2).state_dict()) == []


def test_reprs():
    assert repr(BatchNorm2d(4)) == ("BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, "
                                    "track_running_stats=True)")
    assert repr(LayerNorm(8)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True)"
    assert repr(GroupNorm(2, 4)) == "GroupNorm(2, 4, eps=1e-05, affine=True)"
    assert repr(RMSNorm([2, 3])) == "RMSNorm((2, 3), eps=None, elementwise_affine=True)"
    assert repr(LocalResponseNorm(2)) == "LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=1.0)"
    assert repr(InstanceNorm1d(3)) == ("InstanceNorm1d(3, eps=1e-05, momentum=0.1, affine=False, "
                                       "track_running_stats=False)")


def test_rms_norm_default_eps_is_dtype_machine_epsilon():
    x = np.full((1, 4), 1e-5)
    for dtype in (np.float32, np.float64):
        out = F.rms_norm(mg.tensor(x.astype(dtype)), 4)
        expected = x / np.sqrt(np.mean(x * x) + np.finfo(dtype).eps)
        np.testing.assert_allclose(_np(out), expected, rtol=1e-5)


def test_unbatched_instance_norm_equals_batch_of_one(rng):
    module = _randomize(InstanceNorm1d(3, affine=True).double(), rng)
    x = rng.standard_normal((3, 6))
    np.testing.assert_allclose(_np(module(mg.tensor(x))), _np(module(mg.tensor(x[None])))[0],
                               rtol=1e-14)


def test_layer_norm_group_norm_functionals_match_modules(rng):
    x = mg.tensor(rng.standard_normal((2, 6, 4)))
    w, b = mg.tensor(rng.standard_normal(4)), mg.tensor(rng.standard_normal(4))
    ln = LayerNorm(4).double()
    with mg.no_grad():
        ln.weight.copy_(w)
        ln.bias.copy_(b)
    np.testing.assert_array_equal(_np(F.layer_norm(x, (4,), w, b)), _np(ln(x)))
    gw, gb = mg.tensor(rng.standard_normal(6)), mg.tensor(rng.standard_normal(6))
    expected = _normalize(_np(x).reshape(2, 3, -1), (2,), EPS).reshape(2, 6, 4)
    np.testing.assert_allclose(_np(F.group_norm(x, 3, gw, gb)),
                               expected * _np(gw)[:, None] + _np(gb)[:, None], rtol=1e-10)


# ---------------------------------------------------------------- errors

def test_batch_norm_needs_more_than_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 3\)"):
        BatchNorm1d(3)(mg.randn(1, 3))
    with pytest.raises(ValueError, match=r"input size \(1, 2, 1, 1\)"):
        BatchNorm2d(2)(mg.randn(1, 2, 1, 1))
    BatchNorm1d(3).eval()(mg.randn(1, 3))  # evaluation uses running statistics: fine


@pytest.mark.parametrize("module,shape,text", [
    (BatchNorm1d(3), (2, 3, 4, 5), "expected 2D or 3D input (got 4D input)"),
    (BatchNorm1d(3), (3,), "expected 2D or 3D input (got 1D input)"),
    (BatchNorm2d(3), (2, 3, 4), "expected 4D input (got 3D input)"),
    (BatchNorm3d(3), (2, 3, 4, 4), "expected 5D input (got 4D input)"),
    (InstanceNorm1d(3), (2, 3, 4, 4), "expected 2D or 3D input (got 4D input)"),
    (InstanceNorm2d(3), (3, 4), "expected 3D or 4D input (got 2D input)"),
])
def test_wrong_rank(module, shape, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        module(mg.randn(*shape))


def test_channel_mismatch_names_num_features_and_channels():
    with pytest.raises(RuntimeError, match=r"num_features=4 .*\(2, 3, 5, 5\) with 3 channels"):
        BatchNorm2d(4)(mg.randn(2, 3, 5, 5))
    with pytest.raises(RuntimeError, match=r"num_features=4"):
        BatchNorm1d(4, affine=False, track_running_stats=False)(mg.randn(2, 3))
    with pytest.raises(RuntimeError, match=r"running_mean must have shape \(3,\)"):
        F.batch_norm(mg.randn(2, 3), mg.zeros(4), mg.ones(4), training=True)
    with pytest.raises(ValueError, match=r"size at dim=1 to match num_features \(4\), but got: 3"):
        InstanceNorm1d(4, affine=True)(mg.randn(2, 3, 5))
    with pytest.warns(UserWarning, match="does not match num_features"):
        InstanceNorm1d(4)(mg.randn(2, 3, 5))
    with pytest.raises(RuntimeError, match=r"num_channels=6 .*\(2, 4, 3\)"):
        GroupNorm(2, 6)(mg.randn(2, 4, 3))


def test_group_norm_divisibility():
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        GroupNorm(4, 6)
    with pytest.raises(RuntimeError, match=r"divisible by num_groups, but got input of shape "
                                           r"\(2, 6, 4\) and num_groups=4"):
        F.group_norm(mg.randn(2, 6, 4), 4)


def test_layer_norm_trailing_shape():
    with pytest.raises(RuntimeError, match=re.escape(
            "Given normalized_shape=[4], expected input with shape [*, 4], but got input of size [2, 3]")):
        LayerNorm(4)(mg.randn(2, 3))
    with pytest.raises(RuntimeError, match=re.escape("normalized_shape=[2, 3]")):
        RMSNorm((2, 3))(mg.randn(3, 2))
    with pytest.raises(RuntimeError, match=r"weight must have shape \(4,\)"):
        F.layer_norm(mg.randn(2, 4), 4, weight=mg.ones(3))


def test_other_errors():
    with pytest.raises(RuntimeError, match="must be given when .*evaluation mode"):
        F.batch_norm(mg.randn(2, 3), None, None, training=False)
    with pytest.raises(TypeError, match="input is float32 but weight is float64"):
        F.batch_norm(mg.randn(2, 3), None, None, mg.ones(3, dtype=mg.float64), training=True)
    with pytest.raises(TypeError, match="floating point input, got int64"):
        LayerNorm(3)(mg.tensor([[1, 2, 3]]))
    with pytest.raises(ValueError, match=re.escape("Expected 3D or higher dimensionality input "
                                                  "(got 2 dimensions)")):
        LocalResponseNorm(2)(mg.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 spatial element when training"):
        InstanceNorm1d(3)(mg.randn(2, 3, 1))
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm1d(0)
    with pytest.raises(RuntimeError, match="running_mean is on standin:0 but the input is on cpu"):
        F.batch_norm(mg.randn(2, 3), mg.zeros(3).to("standin"), mg.ones(3).to("standin"))


def test_runs_on_a_second_device_backend(rng):
    # the 'standin' device (tests/conftest.py) runs the reference kernels on numpy
    module = _randomize(BatchNorm2d(3).double(), rng)
    x = rng.standard_normal((2, 3, 4, 4))
    expected = _np(module(mg.tensor(x)))
    module.to("standin")
    assert module.running_mean.device == "standin"
    out = module(mg.tensor(x, device="standin"))
    assert out.device == "standin"
    np.testing.assert_allclose(np.asarray(out.detach().cpu()), expected, rtol=1e-12)
    assert math.isfinite(float(module.num_batches_tracked.item()))
