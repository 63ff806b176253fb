"""nn-core workloads: forward + backward of Linear, activations, softmax,
cross-entropy, dropout and small MLPs. Both libraries spell these the same
way, so one setup function builds either side from the same shapes. A step
is one forward and one backward pass (gradients are reset each step; no
optimizer update)."""
import numpy as np

from harness import Workload


def _lib(name):
    """(library module, its nn, its nn.functional) for 'minigrad' or 'torch'."""
    if name == "minigrad":
        import minigrad as lib
    else:
        import torch as lib
    return lib, lib.nn, lib.nn.functional


def _data(lib, shape, classes=None, seed=0):
    rng = np.random.default_rng(seed)
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    y = lib.tensor(rng.integers(0, classes, shape[0])) if classes else None
    return x, y


_MLP_SIZES = {"tiny": ([16, 32, 32, 4], 16), "mlp": ([784, 256, 256, 10], 128)}


def mlp(libname, kind):
    def setup():
        lib, nn, F = _lib(libname)
        sizes, batch = _MLP_SIZES[kind]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        x, y = _data(lib, (batch, sizes[0]), sizes[-1])
        x = x.detach()

        def step():
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
        return step
    return setup


def op(libname, shape, fn, classes=None):
    """fn(nn, F, x, y) -> tensor; the step backprops its sum."""
    def setup():
        lib, nn, F = _lib(libname)
        x, y = _data(lib, shape, classes)
        state = {}

        def step():
            x.grad = None
            fn(nn, F, x, y, state).sum().backward()
        return step
    return setup


def _linear(nn, F, x, y, state):
    if "layer" not in state:  # built once, on the side's own library
        state["layer"] = nn.Linear(x.shape[1], x.shape[1])
    return state["layer"](x)


_OPS = {
    "linear": _linear,
    "gelu": lambda nn, F, x, y, s: F.gelu(x),
    "tanh": lambda nn, F, x, y, s: F.tanh(x),
    "log_softmax": lambda nn, F, x, y, s: F.log_softmax(x, 1),
    "cross_entropy": lambda nn, F, x, y, s: F.cross_entropy(x, y, label_smoothing=0.1),
    "dropout": lambda nn, F, x, y, s: F.dropout(x, 0.5),
}


def _op(shape, name, classes=None, note=""):
    fn = _OPS[name]
    return Workload(op("minigrad", shape, fn, classes), op("torch", shape, fn, classes), note)


WORKLOADS = {
    "nn_tiny_mlp_fwd_bwd": Workload(mlp("minigrad", "tiny"), mlp("torch", "tiny"),
                                    "MLP 16-32-32-4, batch 16, CE (per-op overhead)"),
    "nn_mlp_fwd_bwd": Workload(mlp("minigrad", "mlp"), mlp("torch", "mlp"), "MLP 784-256-256-10, batch 128, CE"),
    "nn_linear_1024_fwd_bwd": _op((256, 1024), "linear", note="Linear 1024->1024, batch 256"),
    "nn_gelu_fwd_bwd": _op((1024, 1024), "gelu", note="exact GELU, 1M elements"),
    "nn_tanh_fwd_bwd": _op((1024, 1024), "tanh", note="tanh, 1M elements"),
    "nn_log_softmax_fwd_bwd": _op((256, 1000), "log_softmax", note="(256, 1000), dim 1"),
    "nn_cross_entropy_fwd_bwd": _op((512, 1000), "cross_entropy", 1000, "(512, 1000), label_smoothing 0.1"),
    "nn_dropout_fwd_bwd": _op((1024, 1024), "dropout", note="p=0.5, 1M elements"),
}
