import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import Backend
from minigrad.device import register_device_type


def _stand_in_backend(dev):
    # A second "device" on top of numpy running the reference kernels: it
    # exercises device plumbing (moves, mixing errors, dispatch) without a GPU.
    return Backend("standin", np)


register_device_type("standin", _stand_in_backend)


def pytest_collection_modifyitems(config, items):
    if mg.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available (no CuPy, driver or visible NVIDIA GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
