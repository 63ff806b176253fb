"""Every layer, loss and optimizer on a second device (the numpy-backed
stand-in from conftest, running the plain reference kernels) against the CPU
(compiled kernels): proves the device plumbing and that no backend entry point
is missing, without a GPU."""
import pytest

import minigrad as mg
from minigrad import nn, optim

from device_cases import LAYERS, LOSSES, OPTIMIZERS, check_layer, check_loss, check_optimizer


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_standin_matches_cpu(name):
    check_layer(name, mg.device("standin"))


@pytest.mark.parametrize("name", ["linear", "conv2d", "batchnorm2d", "groupnorm", "gelu"])
def test_layer_on_standin_matches_cpu_float32(name):
    check_layer(name, mg.device("standin"), mg.float32)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_on_standin_matches_cpu(name):
    check_loss(name, mg.device("standin"))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_on_standin_matches_cpu(name):
    check_optimizer(name, mg.device("standin"))


def test_module_to_moves_params_grads_and_buffers_and_optimizer_follows():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = optim.Adam(model.parameters(), lr=0.1)
    x = mg.randn(5, 3)
    model(x).sum().backward()
    opt.step()
    model.to("standin")
    assert all(p.device == "standin" and p.grad.device == "standin" for p in model.parameters())
    assert all(b.device == "standin" for b in model.buffers())
    opt.zero_grad()
    model(x.to("standin")).sum().backward()
    opt.step()
    for state in opt.state.values():
        assert state["exp_avg"].device == "standin"


def test_mixing_devices_in_a_layer_names_both():
    layer = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="cpu.*standin|standin.*cpu"):
        layer(mg.randn(4, 3, device="standin"))


def test_checkpoint_loads_onto_a_device(tmp_path):
    model = nn.Linear(3, 2)
    path = str(tmp_path / "m.safetensors")
    mg.save(model.state_dict(), path)
    sd = mg.load(path, device="standin")
    assert all(t.device == "standin" for t in sd.values())
