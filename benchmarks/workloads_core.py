"""Per-op overhead and a raw-op MLP (foundation workloads)."""
import numpy as np

from harness import Workload

import minigrad as mg


def _pair(shape, requires_grad):
    r = np.random.default_rng(0)
    a = r.standard_normal(shape).astype(np.float32)
    b = r.standard_normal(shape[::-1] if len(shape) == 2 else shape).astype(np.float32)
    return a, b


def _mg_binary(fn, shape=(32, 64), square=False):
    def setup():
        a, b = _pair(shape, True)
        if not square:
            b = b.T.copy()
        ta = mg.tensor(a, requires_grad=True)
        tb = mg.tensor(b, requires_grad=True)

        def step():
            ta.grad = tb.grad = None
            fn(ta, tb).sum().backward()
        return step
    return setup


def _torch_binary(fn, shape=(32, 64), square=False):
    def setup():
        import torch
        a, b = _pair(shape, True)
        if not square:
            b = b.T.copy()
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)

        def step():
            ta.grad = tb.grad = None
            fn(ta, tb).sum().backward()
        return step
    return setup


def _mg_forward_only(fn):
    def setup():
        a, b = _pair((32, 64), True)
        ta = mg.tensor(a, requires_grad=True)
        tb = mg.tensor(b.T.copy(), requires_grad=True)
        return lambda: fn(ta, tb)
    return setup


def _torch_forward_only(fn):
    def setup():
        import torch
        a, b = _pair((32, 64), True)
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b.T.copy(), requires_grad=True)
        return lambda: fn(ta, tb)
    return setup


def _numpy_add():
    a, b = _pair((32, 64), False)
    b = b.T.copy()
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


WORKLOADS = {
    "op: numpy a+b (32x64, reference)": Workload(_numpy_add, None, "plain numpy, the floor"),
    "op: a+b forward (32x64, grad on)": Workload(_mg_forward_only(lambda a, b: a + b),
                                                 _torch_forward_only(lambda a, b: a + b)),
    "op: a+b fwd+bwd (32x64)": Workload(_mg_binary(lambda a, b: a + b),
                                        _torch_binary(lambda a, b: a + b)),
    "op: a@b fwd+bwd (32x64 @ 64x32)": Workload(_mg_binary(lambda a, b: a @ b.T),
                                               _torch_binary(lambda a, b: a @ b.T)),
    "op: relu fwd+bwd (32x64)": Workload(_mg_binary(lambda a, b: a.relu()),
                                         _torch_binary(lambda a, b: a.relu())),
    "raw-op mlp fwd+bwd (128x784)": Workload(_raw_mlp("mg"), _raw_mlp("torch")),
}
