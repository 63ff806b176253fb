"""Device plumbing, exercised with the numpy-backed stand-in device from conftest."""
import numpy as np
import pytest

import minigrad as mg


def test_to_moves_and_back_keeps_values_and_gradients():
    x = mg.randn(3, 4, requires_grad=True)
    y = x.to("standin")
    assert y.device == "standin" and y.requires_grad
    z = (y * 2).sum()
    z.backward()
    assert x.grad.device == "cpu"
    assert np.allclose(x.grad.numpy(), 2.0)
    assert np.array_equal(y.cpu().detach().numpy(), x.detach().numpy())


def test_ops_dispatch_to_the_tensor_backend():
    a = mg.randn(2, 3, device="standin", requires_grad=True)
    b = mg.randn(3, 4, device="standin")
    out = (a @ b).relu().sum()
    out.backward()
    assert a.grad.device == "standin" and out.device == "standin"


def test_default_device():
    prev = mg.get_default_device()
    try:
        mg.set_default_device("standin")
        assert mg.zeros(2).device == "standin"
    finally:
        mg.set_default_device(prev)
    assert mg.zeros(2).device == "cpu"


def test_device_objects_compare_with_strings():
    assert mg.device("cpu") == "cpu"
    assert mg.device("standin:0") == "standin"
    assert mg.device("standin:0") != "cpu"
    assert repr(mg.device("cpu")) == "device(type='cpu')"
    with pytest.raises(ValueError, match="index after ':'"):
        mg.device("standin:x")
