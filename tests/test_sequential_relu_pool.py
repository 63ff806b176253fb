"""Sequential's rewrites: ReLU -> unpadded MaxPool2d runs as pooling -> ReLU
(a smaller tensor for the ReLU), BatchNorm -> ReLU as one pass in evaluation,
Linear -> ReLU as one graph node, Linear -> BatchNorm1d (-> ReLU) in
evaluation without a graph as the product then one pass in place. Values and
gradients must equal the layer-by-layer result exactly, and no rewrite may
happen where it could be seen."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F


def _input(seed, shape=(2, 3, 7, 8)):
    # small integers: many ties and zeros; some NaN; whole windows <= 0
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, shape).astype(np.float64)
    x.flat[rng.integers(0, x.size, 3)] = np.nan
    x[0, 0, :4, :4] = -1.0
    return x


def _layer_by_layer(modules, x_np):
    x = mg.tensor(x_np, requires_grad=True)
    y = x
    for m in modules:
        y = m.forward(y)  # forward directly: no reordering
    return x, y


POOLS = [dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True),
         dict(kernel_size=2, stride=1, dilation=2), dict(kernel_size=(2, 3), stride=(1, 2))]


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("inplace", [False, True])
def test_values_and_gradients_equal_layer_by_layer(pool, inplace):
    x_np = _input(len(str(pool)))
    modules = [nn.ReLU(inplace=inplace), nn.MaxPool2d(**pool)]
    x, y = _layer_by_layer(modules, x_np)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(mg.tensor(dy))
    x2 = mg.tensor(x_np, requires_grad=True)
    y2 = nn.Sequential(*modules)(x2)
    y2.backward(mg.tensor(dy))
    np.testing.assert_array_equal(y2.detach().numpy(), y.detach().numpy())
    np.testing.assert_array_equal(x2.grad.numpy(), x.grad.numpy())


def _relu_input_shapes(monkeypatch):
    seen = []
    relu = F.relu

    def spy(t, inplace=False):
        seen.append(tuple(t.shape))
        return relu(t, inplace)
    monkeypatch.setattr("minigrad.nn.layers.activation.F.relu", spy)
    return seen


def test_relu_runs_on_the_pooled_tensor(monkeypatch):
    seen = _relu_input_shapes(monkeypatch)
    nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(mg.randn(2, 3, 8, 8))
    assert seen == [(2, 3, 4, 4)]


@pytest.mark.parametrize("make", [
    lambda: [nn.ReLU(), nn.MaxPool2d(2, return_indices=True)],     # indices of relu(x)
    lambda: [nn.ReLU(), nn.AvgPool2d(2)],                           # not a max
    lambda: [nn.ReLU(), nn.Identity(), nn.MaxPool2d(2)],            # not adjacent
])
def test_no_reorder_where_it_could_differ(monkeypatch, make):
    seen = _relu_input_shapes(monkeypatch)
    out = nn.Sequential(*make())(mg.randn(2, 3, 8, 8))
    assert seen == [(2, 3, 8, 8)]
    assert out is not None


def test_padded_pooling_keeps_the_layer_order():
    # dilation 3 with padding 1 on a 2x2 image: the one window is all padding,
    # so relu-then-pool gives -inf where pool-then-relu would give 0
    modules = [nn.ReLU(), nn.MaxPool2d(2, stride=1, padding=1, dilation=3)]
    x_np = np.random.default_rng(0).standard_normal((1, 2, 2, 2))
    _, want = _layer_by_layer(modules, x_np)
    assert np.isneginf(want.detach().numpy()).all()
    got = nn.Sequential(*modules)(mg.tensor(x_np))
    np.testing.assert_array_equal(got.numpy(), want.detach().numpy())


@pytest.mark.parametrize("hooked", ["relu", "pool"])
def test_hooks_see_the_layer_by_layer_tensors(hooked):
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    inputs = []
    target = relu if hooked == "relu" else pool
    target.register_forward_hook(lambda m, args, out: inputs.append(args[0].detach().numpy()))
    x = mg.randn(2, 3, 8, 8)
    y = nn.Sequential(relu, pool)(x)
    if hooked == "relu":  # the ReLU saw the full-size input
        np.testing.assert_array_equal(inputs[0], x.numpy())
    else:  # the pooling saw the ReLU's output
        np.testing.assert_array_equal(inputs[0], F.relu(x).numpy())
    np.testing.assert_array_equal(y.numpy(), F.max_pool2d(F.relu(x), 2).numpy())


def test_relu_chains_and_trailing_relu():
    x_np = _input(3)
    modules = [nn.ReLU(), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.ReLU()]
    x, y = _layer_by_layer(modules, x_np)
    y.sum().backward()
    x2 = mg.tensor(x_np, requires_grad=True)
    y2 = nn.Sequential(*modules)(x2)
    y2.sum().backward()
    np.testing.assert_array_equal(y2.detach().numpy(), y.detach().numpy())
    np.testing.assert_array_equal(x2.grad.numpy(), x.grad.numpy())


# ------------------------------------------------------------ BatchNorm then ReLU

def _bn_relu(bn_cls, shape, seed):
    mg.manual_seed(seed)
    bn = bn_cls(shape[1])
    rng = np.random.default_rng(seed)
    bn.running_mean.numpy()[:] = rng.standard_normal(shape[1])
    bn.running_var.numpy()[:] = rng.uniform(0.5, 2.0, shape[1])
    bn.weight.data = mg.tensor(rng.standard_normal(shape[1]).astype(np.float32))
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[:3] = np.nan
    return bn, x


@pytest.mark.parametrize("bn_cls,shape", [(nn.BatchNorm1d, (33, 20)), (nn.BatchNorm2d, (4, 6, 5, 7)),
                                          (nn.BatchNorm1d, (8, 5, 9))])
def test_eval_batchnorm_relu_runs_fused_with_the_same_values(monkeypatch, bn_cls, shape):
    bn, x_np = _bn_relu(bn_cls, shape, len(shape))
    model = nn.Sequential(bn, nn.ReLU()).eval()
    with mg.no_grad():
        want = F.relu(bn(mg.tensor(x_np)))
        seen = _relu_input_shapes(monkeypatch)
        got = model(mg.tensor(x_np))
    assert seen == []  # no separate ReLU ran
    np.testing.assert_array_equal(got.numpy(), want.numpy())


BN_SHAPES = [(nn.BatchNorm1d, (33, 20)), (nn.BatchNorm2d, (4, 6, 5, 7)), (nn.BatchNorm1d, (8, 5, 9))]


def _bn_twins(bn_cls, shape, training):
    bn, x_np = _bn_relu(bn_cls, shape, len(shape))
    x_np = np.nan_to_num(x_np)
    x_np.flat[::7] = 0.0  # repeated values: outputs at the relu's kink
    bn.train(training)
    ref_bn = bn_cls(shape[1])
    ref_bn.load_state_dict(bn.state_dict())
    ref_bn.train(training)
    return bn, ref_bn, x_np


@pytest.mark.parametrize("bn_cls,shape", BN_SHAPES)
@pytest.mark.parametrize("training", [False, True])
def test_batchnorm_relu_with_grad_equals_layer_by_layer(bn_cls, shape, training):
    """One fused node in training and in evaluation with a graph: the same
    output, input and parameter gradients and running statistics."""
    bn, ref_bn, x_np = _bn_twins(bn_cls, shape, training)
    dy = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    x, y = _layer_by_layer([ref_bn, nn.ReLU()], x_np)
    y.backward(mg.tensor(dy))
    x2 = mg.tensor(x_np, requires_grad=True)
    y2 = nn.Sequential(bn, nn.ReLU())(x2)
    assert y2.grad_fn.name == "BatchNormRelu"
    y2.backward(mg.tensor(dy))
    np.testing.assert_array_equal(y2.detach().numpy(), y.detach().numpy())
    assert (y.detach().numpy() == 0).any() and (y.detach().numpy() > 0).any()
    np.testing.assert_array_equal(x2.grad.numpy(), x.grad.numpy())
    np.testing.assert_array_equal(bn.weight.grad.numpy(), ref_bn.weight.grad.numpy())
    np.testing.assert_array_equal(bn.bias.grad.numpy(), ref_bn.bias.grad.numpy())
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(getattr(bn, name).numpy(), getattr(ref_bn, name).numpy())


def test_batchnorm_relu_second_derivatives_equal_layer_by_layer():
    bn, ref_bn, x_np = _bn_twins(nn.BatchNorm1d, (12, 5), True)
    x_np = x_np.astype(np.float64)
    bn.double()
    ref_bn.double()

    def grads(forward, module):
        x = mg.tensor(x_np, requires_grad=True)
        loss = (forward(x) ** 3).sum()
        (gw,) = mg.autograd.grad(loss, [module.weight], create_graph=True)
        (gx,) = mg.autograd.grad((gw * gw).sum(), [x])
        return gw.detach().numpy(), gx.numpy()

    want = grads(lambda x: F.relu(ref_bn(x)), ref_bn)
    got = grads(nn.Sequential(bn, nn.ReLU()), bn)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("hooked", ["bn", "relu"])
def test_hooked_batchnorm_or_relu_is_not_fused(monkeypatch, hooked):
    bn, x_np = _bn_relu(nn.BatchNorm1d, (10, 4), 1)
    relu = nn.ReLU()
    (bn if hooked == "bn" else relu).register_forward_hook(lambda *a: None)
    seen = _relu_input_shapes(monkeypatch)
    with mg.no_grad():
        nn.Sequential(bn, relu).eval()(mg.tensor(x_np))
    assert seen == [(10, 4)]


def test_batchnorm_relu_pool_keeps_the_pooling_reorder(monkeypatch):
    seen = _relu_input_shapes(monkeypatch)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2))
    model(mg.randn(2, 3, 8, 8))
    assert seen == [(2, 3, 4, 4)]


# ------------------------------------------------------------ Linear then ReLU

def _linear_relu_case(seed, dtype, lead, bias):
    mg.manual_seed(seed)
    lin = nn.Linear(6, 5, bias=bias).to(dtype=mg.float32 if dtype == np.float32 else mg.float64)
    rng = np.random.default_rng(seed)
    # small integers: exact zeros and ties at the relu's kink; NaN; signed zeros
    x = rng.integers(-2, 3, lead + (6,)).astype(dtype)
    x.reshape(-1, 6)[0] = np.nan
    x.reshape(-1, 6)[1] = -0.0
    lin.weight.data = mg.tensor(rng.integers(-2, 3, (5, 6)).astype(dtype))
    if bias:
        lin.bias.data = mg.tensor(rng.integers(-1, 2, 5).astype(dtype))
    return lin, x


def _grads(model_out, x, lin, dy):
    model_out.backward(mg.tensor(dy))
    got = [model_out.detach().numpy(), x.grad.numpy(), lin.weight.grad.numpy()]
    if lin.bias is not None:
        got.append(lin.bias.grad.numpy())
    lin.zero_grad()
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(7,), (2, 3), (0,)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("inplace", [False, True])
def test_linear_relu_values_and_gradients_equal_layer_by_layer(dtype, lead, bias, inplace):
    lin, x_np = _linear_relu_case(len(lead), dtype, lead, bias) if lead != (0,) else \
        _linear_relu_case(0, dtype, (3,), bias)
    if lead == (0,):
        x_np = x_np[:0]
    modules = [lin, nn.ReLU(inplace=inplace)]
    dy = np.random.default_rng(2).standard_normal(x_np.shape[:-1] + (5,)).astype(dtype)
    x = mg.tensor(x_np, requires_grad=True)
    want = _grads(modules[1].forward(lin.forward(x)), x, lin, dy)
    x2 = mg.tensor(x_np, requires_grad=True)
    y2 = nn.Sequential(*modules)(x2)
    assert y2.grad_fn.name == "LinearRelu"  # one node
    got = _grads(y2, x2, lin, dy)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(w))


def test_linear_relu_second_derivatives_equal_layer_by_layer():
    lin, x_np = _linear_relu_case(5, np.float64, (4,), True)
    x_np[:2] = np.random.default_rng(5).standard_normal((2, 6))  # finite values

    def hessian_row(forward):
        x = mg.tensor(x_np, requires_grad=True)
        loss = (forward(x) ** 3).sum()
        (gw,) = mg.autograd.grad(loss, [lin.weight], create_graph=True)
        (gx,) = mg.autograd.grad((gw * gw).sum(), [x])
        return gw.detach().numpy(), gx.numpy()

    want = hessian_row(lambda x: F.relu(lin(x)))
    got = hessian_row(nn.Sequential(lin, nn.ReLU()))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("hooked", ["linear", "relu"])
def test_linear_relu_not_fused_under_hooks(hooked):
    lin, x_np = _linear_relu_case(3, np.float32, (4,), True)
    relu = nn.ReLU()
    seen = []
    (lin if hooked == "linear" else relu).register_forward_hook(
        lambda m, args, out: seen.append(out.detach().numpy()))
    with mg.no_grad():
        pre = lin.forward(mg.tensor(x_np))
        y = nn.Sequential(lin, relu)(mg.tensor(x_np))
        want = F.relu(pre).numpy()
    np.testing.assert_array_equal(seen[0], pre.numpy() if hooked == "linear" else want)
    np.testing.assert_array_equal(y.numpy(), want)
    y = nn.Sequential(lin, relu)(mg.tensor(x_np))
    assert y.grad_fn.name != "LinearRelu"


def test_linear_relu_before_max_pool_keeps_the_pool_reorder(monkeypatch):
    # Linear -> ReLU -> MaxPool2d: the ReLU runs on the pooled tensor, as before
    lin, x_np = _linear_relu_case(4, np.float64, (2, 3, 4), True)
    seen = _relu_input_shapes(monkeypatch)
    modules = [lin, nn.ReLU(), nn.MaxPool2d(2)]
    with mg.no_grad():
        got = nn.Sequential(*modules)(mg.tensor(x_np))
        assert seen == [(2, 3, 2, 2)]
        want = F.max_pool2d(F.relu(lin.forward(mg.tensor(x_np))), 2)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# ------------------------------------------------------------ Linear then BatchNorm1d, evaluation

def _linear_bn_case(seed, dtype, relu, affine=True):
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lin = nn.Linear(12, 9).to(dtype=mg.float64 if dtype == np.float64 else mg.float32)
    bn = nn.BatchNorm1d(9, affine=affine).to(dtype=lin.weight.dtype)
    bn.running_mean.numpy()[:] = rng.standard_normal(9)
    bn.running_var.numpy()[:] = rng.uniform(0.5, 2.0, 9)
    if affine:
        bn.weight.detach().numpy()[:] = rng.standard_normal(9)
        bn.bias.detach().numpy()[:] = rng.standard_normal(9)
    x = rng.integers(-3, 4, (17, 12)).astype(dtype)  # ties: outputs at the relu's kink
    x[0] = np.nan
    modules = [lin, bn] + ([nn.ReLU()] if relu else [])
    return modules, x


def _apply_spy(monkeypatch):
    """Records the pre_bias argument of every batch_norm_apply call."""
    backend = mg.device("cpu").backend
    real = backend.batch_norm_apply
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[6] if len(args) > 6 else kwargs.get("pre_bias"))
        return real(*args, **kwargs)
    monkeypatch.setattr(backend, "batch_norm_apply", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("affine", [True, False])
def test_eval_linear_batchnorm_is_one_pass_with_the_same_values(monkeypatch, dtype, relu, affine):
    modules, x_np = _linear_bn_case(5, dtype, relu, affine)
    model = nn.Sequential(*modules).eval()
    with mg.no_grad():
        _, want = _layer_by_layer(modules, x_np)
        calls = _apply_spy(monkeypatch)
        x = mg.tensor(x_np)
        got = model(x)
    assert len(calls) == 1 and calls[0] is not None  # the bias went into the one pass
    assert got.numpy().tobytes() == want.numpy().tobytes()  # bit for bit, signed zeros too
    np.testing.assert_array_equal(x.numpy(), x_np)  # the input is untouched
    bn = modules[1]
    assert bn.running_mean.numpy().tobytes() == _linear_bn_case(5, dtype, relu, affine)[0][1] \
        .running_mean.numpy().tobytes()


@pytest.mark.parametrize("case", ["grad", "training", "no_running_stats", "no_bias", "rank3",
                                  "hook_linear", "hook_bn"])
def test_linear_batchnorm_not_fused_where_it_could_be_seen(monkeypatch, case):
    modules, x_np = _linear_bn_case(6, np.float64, True)
    lin, bn = modules[0], modules[1]
    seen = []
    if case == "no_running_stats":
        bn.track_running_stats = False
        bn.running_mean = bn.running_var = None
    if case == "no_bias":
        lin.bias = None
    if case == "rank3":  # (N, L, features): BatchNorm1d then sees L as its channels
        x_np = np.random.default_rng(6).integers(-3, 4, (17, 9, 12)).astype(np.float64)
    if case in ("hook_linear", "hook_bn"):
        (lin if case == "hook_linear" else bn).register_forward_hook(
            lambda m, args, out: seen.append(out.detach().numpy().copy()))
    model = nn.Sequential(*modules).train(case == "training")
    calls = _apply_spy(monkeypatch)
    with mg.set_grad_enabled(case == "grad"):
        got = model(mg.tensor(x_np))
        if case in ("hook_linear", "hook_bn"):
            seen.clear()
        want = mg.tensor(x_np)
        for m in modules:
            want = m(want)
    assert all(c is None for c in calls)
    assert got.detach().numpy().tobytes() == want.detach().numpy().tobytes()
    if case == "hook_linear":  # the hook saw the linear layer's own output, bias included
        np.testing.assert_array_equal(seen[0], lin.forward(mg.tensor(x_np)).detach().numpy())
    if case == "grad":
        assert got.grad_fn is not None

