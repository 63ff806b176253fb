"""nn-core workloads: forward + backward of Linear, activations, softmax,
cross-entropy, dropout and small MLPs, each with a PyTorch twin of the same
shapes. A step is one forward and one backward pass (gradients are reset each
step; no optimizer update)."""
import numpy as np

from harness import Workload


def _mg():
    import minigrad as mg
    import minigrad.nn.functional as F
    from minigrad import nn
    return mg, nn, F


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, torch.nn, F


def _data(shape, classes=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, classes, shape[0]) if classes else None
    return x, y


# ------------------------------------------------------------------ MLP training steps

def _mlp_sizes(kind):
    return {"tiny": ([16, 32, 32, 4], 16), "mlp": ([784, 256, 256, 10], 128)}[kind]


def mlp_minigrad(kind):
    def setup():
        mg, nn, F = _mg()
        sizes, batch = _mlp_sizes(kind)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        x, y = _data((batch, sizes[0]), sizes[-1])
        x, y = mg.tensor(x), mg.tensor(y)

        def step():
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
        return step
    return setup


def mlp_torch(kind):
    def setup():
        torch, nn, F = _torch()
        sizes, batch = _mlp_sizes(kind)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        x, y = _data((batch, sizes[0]), sizes[-1])
        x, y = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
        return step
    return setup


# ------------------------------------------------------------------ single ops

def op_minigrad(shape, fn_name, classes=None):
    """fn_name is evaluated against (mg, nn, F, x, y); the step backprops its sum."""
    def setup():
        mg, nn, F = _mg()
        x_np, y_np = _data(shape, classes)
        x = mg.tensor(x_np, requires_grad=True)
        y = mg.tensor(y_np) if y_np is not None else None
        fn = _OPS[fn_name][0]

        def step():
            x.grad = None
            fn(mg, nn, F, x, y).sum().backward()
        return step
    return setup


def op_torch(shape, fn_name, classes=None):
    def setup():
        torch, nn, F = _torch()
        x_np, y_np = _data(shape, classes)
        x = torch.tensor(x_np, requires_grad=True)
        y = torch.from_numpy(y_np) if y_np is not None else None
        fn = _OPS[fn_name][1]

        def step():
            x.grad = None
            fn(torch, nn, F, x, y).sum().backward()
        return step
    return setup


def _linear_pair():
    cache = {}

    def ours(mg, nn, F, x, y):
        if "m" not in cache:
            cache["m"] = nn.Linear(x.shape[1], x.shape[1])
        return cache["m"](x)

    def theirs(torch, nn, F, x, y):
        if "t" not in cache:
            cache["t"] = nn.Linear(x.shape[1], x.shape[1])
        return cache["t"](x)
    return ours, theirs


_OPS = {
    "linear": _linear_pair(),
    "gelu": (lambda mg, nn, F, x, y: F.gelu(x), lambda t, nn, F, x, y: F.gelu(x)),
    "tanh": (lambda mg, nn, F, x, y: F.tanh(x), lambda t, nn, F, x, y: F.tanh(x)),
    "log_softmax": (lambda mg, nn, F, x, y: F.log_softmax(x, 1), lambda t, nn, F, x, y: F.log_softmax(x, 1)),
    "cross_entropy": (lambda mg, nn, F, x, y: F.cross_entropy(x, y, label_smoothing=0.1),
                      lambda t, nn, F, x, y: F.cross_entropy(x, y, label_smoothing=0.1)),
    "dropout": (lambda mg, nn, F, x, y: F.dropout(x, 0.5), lambda t, nn, F, x, y: F.dropout(x, 0.5)),
}


def _op(shape, name, classes=None, note=""):
    return Workload(op_minigrad(shape, name, classes), op_torch(shape, name, classes), note)


WORKLOADS = {
    "nn_tiny_mlp_fwd_bwd": Workload(mlp_minigrad("tiny"), mlp_torch("tiny"),
                                    "MLP 16-32-32-4, batch 16, CE (per-op overhead)"),
    "nn_mlp_fwd_bwd": Workload(mlp_minigrad("mlp"), mlp_torch("mlp"), "MLP 784-256-256-10, batch 128, CE"),
    "nn_linear_1024_fwd_bwd": _op((256, 1024), "linear", note="Linear 1024->1024, batch 256"),
    "nn_gelu_fwd_bwd": _op((1024, 1024), "gelu", note="exact GELU, 1M elements"),
    "nn_tanh_fwd_bwd": _op((1024, 1024), "tanh", note="tanh, 1M elements"),
    "nn_log_softmax_fwd_bwd": _op((256, 1000), "log_softmax", note="(256, 1000), dim 1"),
    "nn_cross_entropy_fwd_bwd": _op((512, 1000), "cross_entropy", 1000, "(512, 1000), label_smoothing 0.1"),
    "nn_dropout_fwd_bwd": _op((1024, 1024), "dropout", note="p=0.5, 1M elements"),
}
