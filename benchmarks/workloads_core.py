"""Per-op overhead and a raw-op MLP (foundation workloads)."""
import numpy as np

from harness import Workload

import minigrad as mg


def _pair(shape):
    r = np.random.default_rng(0)
    return (r.standard_normal(shape).astype(np.float32), r.standard_normal(shape).astype(np.float32))


def _library(name):
    if name == "minigrad":
        return mg.tensor
    import torch
    return torch.tensor


def _binary(libname, fn, backward=True):
    """One step of fn(a, b) on 32x64 float32 leaves: forward only, or forward+backward."""
    def setup():
        tensor = _library(libname)
        a, b = _pair((32, 64))
        ta = tensor(a, requires_grad=True)
        tb = tensor(b, requires_grad=True)

        def step():
            ta.grad = tb.grad = None
            fn(ta, tb).sum().backward()
        return step if backward else (lambda: fn(ta, tb))
    return setup


def _numpy_add():
    a, b = _pair((32, 64))
    return lambda: a + b


def _raw_mlp(lib):
    def setup():
        r = np.random.default_rng(0)
        x = r.standard_normal((128, 784)).astype(np.float32)
        y = r.integers(0, 10, 128)
        sizes = [784, 256, 128, 10]
        if lib == "mg":
            X, Y = mg.tensor(x), mg.tensor(y)
            make = lambda a: mg.tensor(a, requires_grad=True)  # noqa: E731
            rows = mg.arange(128)
        else:
            import torch
            X, Y = torch.tensor(x), torch.tensor(y)
            make = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
            rows = torch.arange(128)
        ws = [make((r.standard_normal((i, o)) * (2 / i) ** 0.5).astype(np.float32))
              for i, o in zip(sizes, sizes[1:])]
        bs = [make(np.zeros(o, np.float32)) for o in sizes[1:]]

        def step():
            h = X
            for i, (w, b) in enumerate(zip(ws, bs)):
                h = h @ w + b
                if i < 2:
                    h = h.relu()
            logp = h - h.logsumexp(dim=1, keepdim=True)
            loss = -logp[rows, Y].mean()
            for p in ws + bs:
                p.grad = None
            loss.backward()
        return step
    return setup


def _add(a, b):
    return a + b


def _matmul_t(a, b):
    return a @ b.T


def _relu(a, b):
    return a.relu()


WORKLOADS = {
    "op: numpy a+b (32x64, reference)": Workload(_numpy_add, None, "plain numpy, the floor"),
    "op: a+b forward (32x64, grad on)": Workload(_binary("minigrad", _add, backward=False),
                                                 _binary("torch", _add, backward=False)),
    "op: a+b fwd+bwd (32x64)": Workload(_binary("minigrad", _add), _binary("torch", _add)),
    "op: a@b fwd+bwd (32x64 @ 64x32)": Workload(_binary("minigrad", _matmul_t),
                                               _binary("torch", _matmul_t)),
    "op: relu fwd+bwd (32x64)": Workload(_binary("minigrad", _relu), _binary("torch", _relu)),
    "raw-op mlp fwd+bwd (128x784)": Workload(_raw_mlp("mg"), _raw_mlp("torch")),
}
