"""Cases run on a second device and compared with the CPU: every layer, loss
and optimizer. Used by tests/test_standin_device.py (a numpy-backed stand-in
device running the reference kernels, so it runs everywhere) and by
tests/gpu/test_cuda.py (a real GPU, where one exists)."""
import copy

import numpy as np

import minigrad as mg
from minigrad import nn, optim


LAYERS = {
    "linear": (lambda: nn.Linear(5, 4), (3, 5)),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 5)),
    "conv2d_strided_groups": (lambda: nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, dilation=(1, 2)),
                              (2, 4, 7, 8)),
    "maxpool": (lambda: nn.MaxPool2d(2), (2, 3, 6, 5)),
    "avgpool": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 6, 5)),
    "adaptive_avgpool": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 5)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(4), (5, 4)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (2, 3, 4, 5)),
    "layernorm": (lambda: nn.LayerNorm([4, 5]), (3, 4, 5)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "instancenorm": (lambda: nn.InstanceNorm2d(3, affine=True), (2, 3, 4, 4)),
    "rmsnorm": (lambda: nn.RMSNorm(6), (3, 6)),
    "lrn": (lambda: nn.LocalResponseNorm(3), (2, 5, 3, 3)),
    "relu": (lambda: nn.ReLU(), (4, 5)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.1), (4, 5)),
    "elu": (lambda: nn.ELU(), (4, 5)),
    "selu": (lambda: nn.SELU(), (4, 5)),
    "gelu": (lambda: nn.GELU(), (4, 5)),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), (4, 5)),
    "silu": (lambda: nn.SiLU(), (4, 5)),
    "sigmoid": (lambda: nn.Sigmoid(), (4, 5)),
    "tanh": (lambda: nn.Tanh(), (4, 5)),
    "softplus": (lambda: nn.Softplus(beta=2.0), (4, 5)),
    "hardtanh": (lambda: nn.Hardtanh(), (4, 5)),
    "softmax": (lambda: nn.Softmax(dim=1), (4, 5)),
    "log_softmax": (lambda: nn.LogSoftmax(dim=1), (4, 5)),
    "flatten_mlp": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Tanh()), (2, 3, 4)),
}

LOSSES = {
    "cross_entropy": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1), "classes"),
    "nll": (lambda: nn.NLLLoss(), "classes"),
    "mse": (lambda: nn.MSELoss(), "same"),
    "l1": (lambda: nn.L1Loss(reduction="sum"), "same"),
    "bce": (lambda: nn.BCELoss(), "probs"),
    "bce_logits": (lambda: nn.BCEWithLogitsLoss(), "probs"),
}

OPTIMIZERS = {
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam_amsgrad": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
    "rmsprop_centered": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01),
}


def _close(a, b, dtype):
    rtol, atol = (1e-10, 1e-12) if dtype == mg.float64 else (1e-5, 1e-6)
    np.testing.assert_allclose(a.cpu().detach().numpy(), b.cpu().detach().numpy(), rtol=rtol, atol=atol)


def check_layer(name, device, dtype=mg.float64):
    make, shape = LAYERS[name]
    mg.manual_seed(0)
    ref = make().to(dtype)
    other = copy.deepcopy(ref).to(device)
    x_np = np.random.default_rng(1).standard_normal(shape)
    outs = []
    for module, dev in ((ref, "cpu"), (other, device)):
        x = mg.tensor(x_np, dtype=dtype, device=dev, requires_grad=True)
        y = module(x)
        assert y.device == dev
        (y * mg.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape), dtype=dtype, device=dev)).sum().backward()
        outs.append((y, x.grad, [p.grad for p in module.parameters()],
                     [b for b in module.buffers()]))
    (y0, gx0, gp0, b0), (y1, gx1, gp1, b1) = outs
    _close(y0, y1, dtype)
    _close(gx0, gx1, dtype)
    for a, b in zip(gp0, gp1):
        assert b.device == device
        _close(a, b, dtype)
    for a, b in zip(b0, b1):
        assert b.device == device
        _close(a, b, dtype)


def check_loss(name, device, dtype=mg.float64):
    make, kind = LOSSES[name]
    r = np.random.default_rng(2)
    x_np = r.standard_normal((6, 4))
    if kind == "classes":
        t_np = r.integers(0, 4, 6)
    elif kind == "probs":
        x_np = 1 / (1 + np.exp(-x_np)) if name == "bce" else x_np
        t_np = r.uniform(0, 1, (6, 4))
    else:
        t_np = r.standard_normal((6, 4))
    if name == "nll":
        x_np = x_np - np.log(np.exp(x_np).sum(1, keepdims=True))
    results = []
    for dev in ("cpu", device):
        x = mg.tensor(x_np, dtype=dtype, device=dev, requires_grad=True)
        t = mg.tensor(t_np, device=dev) if kind == "classes" else mg.tensor(t_np, dtype=dtype, device=dev)
        loss = make()(x, t)
        loss.backward()
        results.append((loss, x.grad))
    _close(results[0][0], results[1][0], dtype)
    _close(results[0][1], results[1][1], dtype)


def check_optimizer(name, device, dtype=mg.float64, steps=5):
    params = []
    for dev in ("cpu", device):
        mg.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to(dtype).to(dev)
        opt = OPTIMIZERS[name](model.parameters())
        x = mg.tensor(np.random.default_rng(3).standard_normal((5, 4)), dtype=dtype, device=dev)
        for _ in range(steps):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
        for state in opt.state.values():
            for v in state.values():
                if isinstance(v, mg.Tensor) and v.ndim > 0:
                    assert v.device == dev
        params.append(list(model.parameters()))
    for a, b in zip(*params):
        _close(a, b, dtype)
