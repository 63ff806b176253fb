"""The same cases as the stand-in device tests, on a real CUDA GPU (skipped,
with the reason, where mg.cuda.is_available() is False)."""
import os
import sys

import pytest

import minigrad as mg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from device_cases import LAYERS, LOSSES, OPTIMIZERS, check_layer, check_loss, check_optimizer  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [mg.float64, mg.float32], ids=["f64", "f32"])
def test_layer_on_cuda_matches_cpu(name, dtype):
    check_layer(name, mg.device("cuda"), dtype)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_on_cuda_matches_cpu(name):
    check_loss(name, mg.device("cuda"))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_on_cuda_matches_cpu(name):
    check_optimizer(name, mg.device("cuda"))


def test_gradcheck_on_cuda():
    x = mg.randn(3, 4, dtype=mg.float64, device="cuda", requires_grad=True)
    w = mg.randn(4, 2, dtype=mg.float64, device="cuda", requires_grad=True)
    assert mg.gradcheck(lambda x, w: (x @ w).tanh().sum(1), (x, w))


def test_numpy_on_cuda_tensor_says_call_cpu():
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        mg.ones(2, device="cuda").numpy()
