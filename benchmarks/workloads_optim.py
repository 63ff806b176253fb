"""Optimizer step time, SGD with momentum and Adam, on a ~10M-parameter model
(two 2048x2048 layers and a 1536x1024 one, with biases: bound by memory) and
on the parameters of the `train: mlp` model (0.54M, which stay in cache).

Rows: minigrad's optimizer (fused compiled kernels on the CPU) against
torch.optim (its default CPU path), and the same update through the plain
reference kernels (`*_reference`, called directly since the compiled kernels
can't be switched off inside one process).
"""
import functools

import numpy as np

from harness import Workload

SHAPES = [(2048, 2048), (2048,), (2048, 2048), (2048,), (1536, 1024), (1536,)]
# Linear(784,512)-BatchNorm1d-Linear(512,256)-BatchNorm1d-Linear(256,10)
MLP_SHAPES = [(512, 784), (512,), (512,), (512,), (256, 512), (256,), (256,), (256,),
              (10, 256), (10,)]
SGD_ARGS = dict(lr=0.01, momentum=0.9)
ADAM_ARGS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)


def _arrays(shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s).astype(np.float32), rng.standard_normal(s).astype(np.float32))
            for s in shapes]


def _minigrad_step(make_optimizer, shapes=SHAPES):
    import minigrad as mg
    params = []
    for value, grad in _arrays(shapes):
        p = mg.tensor(value, requires_grad=True)
        p.grad = mg.tensor(grad)
        params.append(p)
    return make_optimizer(params).step


def _torch_step(make_optimizer, shapes=SHAPES):
    import torch
    params = []
    for value, grad in _arrays(shapes):
        p = torch.nn.Parameter(torch.from_numpy(value))
        p.grad = torch.from_numpy(grad)
        params.append(p)
    return make_optimizer(torch, params).step


def _reference_step(update, make_state):
    """One step calling reference kernel `update(param, grad, state, t)` per array."""
    pairs = _arrays()
    states = [make_state(p) for p, _ in pairs]
    counter = [0]

    def step():
        counter[0] += 1
        for (p, g), s in zip(pairs, states):
            update(p, g, s, counter[0])
    return step


def _sgd_reference():
    from minigrad.backend.reference.optim import sgd_step
    kernel = functools.partial(sgd_step, np)
    return _reference_step(
        lambda p, g, buf, t: kernel(p, g, buf, SGD_ARGS["lr"], SGD_ARGS["momentum"], 0.0, 0.0,
                                    False, False, t == 1),
        np.zeros_like)


def _adam_reference():
    from minigrad.backend.reference.optim import adam_step
    kernel = functools.partial(adam_step, np)
    b1, b2 = ADAM_ARGS["betas"]
    return _reference_step(
        lambda p, g, s, t: kernel(p, g, s[0], s[1], None, t, ADAM_ARGS["lr"], b1, b2,
                                  ADAM_ARGS["eps"], 0.0, False, False, False),
        lambda p: (np.zeros_like(p), np.zeros_like(p)))


def _mg_sgd(params):
    from minigrad import optim
    return optim.SGD(params, **SGD_ARGS)


def _mg_adam(params):
    from minigrad import optim
    return optim.Adam(params, **ADAM_ARGS)


def _torch_sgd(torch, params):
    return torch.optim.SGD(params, **SGD_ARGS)


def _torch_adam(torch, params):
    return torch.optim.Adam(params, **ADAM_ARGS)


WORKLOADS = {
    "optim_sgd_momentum_10M": Workload(
        functools.partial(_minigrad_step, _mg_sgd),
        functools.partial(_torch_step, _torch_sgd),
        note="float32, 9.96M params, fused kernel"),
    "optim_sgd_momentum_10M_reference": Workload(
        _sgd_reference, note="reference (numpy) kernel, same update"),
    "optim_adam_10M": Workload(
        functools.partial(_minigrad_step, _mg_adam),
        functools.partial(_torch_step, _torch_adam),
        note="float32, 9.96M params, fused kernel"),
    "optim_adam_10M_reference": Workload(
        _adam_reference, note="reference (numpy) kernel, same update"),
    "optim_sgd_momentum_mlp": Workload(
        functools.partial(_minigrad_step, _mg_sgd, MLP_SHAPES),
        functools.partial(_torch_step, _torch_sgd, MLP_SHAPES),
        note="float32, the mlp's 0.54M params in 10 tensors, fused kernel"),
    "optim_adam_mlp": Workload(
        functools.partial(_minigrad_step, _mg_adam, MLP_SHAPES),
        functools.partial(_torch_step, _torch_adam, MLP_SHAPES),
        note="float32, the mlp's 0.54M params in 10 tensors, fused kernel"),
}
