"""Sequential runs ReLU -> unpadded MaxPool2d as pooling -> ReLU (a smaller
tensor for the ReLU); values and gradients must equal the layer-by-layer
result exactly, and the reorder must not happen where it could be seen."""
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


def test_batchnorm_relu_with_grad_or_training_equals_layer_by_layer():
    bn, x_np = _bn_relu(nn.BatchNorm2d, (4, 6, 5, 7), 0)
    x_np = np.nan_to_num(x_np)
    for training in (False, True):
        bn.train(training)
        ref_bn = nn.BatchNorm2d(6)
        ref_bn.load_state_dict(bn.state_dict())
        ref_bn.train(training)
        x, y = _layer_by_layer([ref_bn, nn.ReLU()], x_np)
        y.sum().backward()
        x2 = mg.tensor(x_np, requires_grad=True)
        y2 = nn.Sequential(bn, nn.ReLU())(x2)
        y2.sum().backward()
        np.testing.assert_array_equal(y2.detach().numpy(), y.detach().numpy())
        np.testing.assert_array_equal(x2.grad.numpy(), x.grad.numpy())
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_array_equal(getattr(bn, name).numpy(), getattr(ref_bn, name).numpy())


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
