"""The whole-training-step workloads: mlp, cnn, tiny, eval (float32, synthetic
N(0, 1) inputs, labels in [0, 10)). Each minigrad model has a PyTorch twin
built from the same layer list, so both sides do identical work.

Where CUDA is available (mg.cuda.is_available()), the mlp and cnn steps also
run on the GPU at batch 128 and 512 (`gpu:` rows), PyTorch on its CUDA
device beside; each timed step ends with a device synchronization."""
import sys

import numpy as np

from harness import Workload


def _layers(lib, kind):
    nn = lib.nn
    if kind in ("mlp", "eval"):
        return [nn.Linear(784, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 256),
                nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 10)]
    if kind == "cnn":
        return [nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(1568, 10)]
    if kind == "tiny":
        return [nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)]
    raise ValueError(kind)


_SHAPES = {"mlp": (128, 784), "cnn": (64, 1, 28, 28), "tiny": (32, 64), "eval": (1024, 784)}


def _data(kind, batch=None):
    shape = _SHAPES[kind] if batch is None else (batch,) + _SHAPES[kind][1:]
    r = np.random.default_rng(0)
    x = r.standard_normal(shape).astype(np.float32)
    y = r.integers(0, 10, shape[0]).astype(np.int64)
    return x, y


def _optimizer(lib, kind, params):
    if kind == "mlp":
        return lib.optim.SGD(params, lr=0.01, momentum=0.9)
    if kind == "cnn":
        return lib.optim.Adam(params, lr=1e-3)
    return lib.optim.SGD(params, lr=0.1)


def _setup(libname, kind, device="cpu", batch=None):
    def setup():
        if libname == "minigrad":
            import minigrad as lib
            sync = lib.cuda.synchronize
        else:
            import torch as lib
            sync = lib.cuda.synchronize
        lib.manual_seed(0)
        model = lib.nn.Sequential(*_layers(lib, kind)).to(device)
        x_np, y_np = _data(kind, batch)
        x, y = lib.tensor(x_np).to(device), lib.tensor(y_np).to(device)
        if kind == "eval":
            model.eval()

            def step():
                with lib.no_grad():
                    model(x)
            return step
        opt = _optimizer(lib, kind, model.parameters())
        loss_fn = lib.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if device != "cpu":
                sync()  # launches are asynchronous: time the work, not its queuing
        return step
    return setup


def _cuda_available():
    if "torch" in sys.modules and "minigrad" not in sys.modules:
        # PyTorch's worker: importing minigrad there would change that
        # process (its malloc and thread settings) under PyTorch's timings
        return sys.modules["torch"].cuda.is_available()
    import minigrad
    return minigrad.cuda.is_available()


WORKLOADS = {
    f"train: {kind}": Workload(_setup("minigrad", kind), _setup("torch", kind), note)
    for kind, note in (("mlp", "784-512-256-10 BN, SGD momentum, batch 128"),
                       ("cnn", "2x conv3x3+BN+ReLU+pool, Adam, batch 64"),
                       ("tiny", "64-64-64-10, SGD, batch 32"),
                       ("eval", "mlp in eval mode, no_grad, batch 1024"))
}

if _cuda_available():
    WORKLOADS.update({
        f"gpu: {kind} b{batch}": Workload(_setup("minigrad", kind, "cuda", batch),
                                          _setup("torch", kind, "cuda", batch),
                                          f"{kind} training step on cuda, batch {batch}")
        for kind in ("mlp", "cnn") for batch in (128, 512)
    })
