"""The matrix products of the mlp step (float32, batch 128), through the CPU
backend's products (side by side on two threads where they can be, see
minigrad/_core/products.pyx) and through numpy's matmul (the reference, one
product at a time threaded by OpenBLAS), PyTorch's beside each."""
import numpy as np

from harness import Workload

# name (the product's M x K x N) -> shapes of the arrays, and which products:
# fwd x @ W.T, dW g.T @ x, dx+dW both of a linear layer's gradients
_CASES = {
    "fwd 128x784x512": ([(128, 784), (512, 784)], "forward"),
    "dW 512x128x784": ([(128, 512), (128, 784)], "weight_grad"),
    "dx+dW 128x256x512": ([(128, 256), (256, 512), (128, 512)], "pair"),
}


def _arrays(shapes):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _minigrad(case, path):
    def setup():
        import minigrad as mg  # noqa: F401  (its thread settings and the products' BLAS)
        from minigrad.backend.cpu import backend
        from minigrad.backend.reference import products as reference
        matmul = backend.matmul if path == "backend" else (lambda a, b: reference.matmul(np, a, b))
        pair = backend.matmul_pair if path == "backend" else (
            lambda *ops: reference.matmul_pair(np, *ops))
        shapes, kind = _CASES[case]
        arrays = _arrays(shapes)
        if kind == "forward":
            x, w = arrays
            return lambda: matmul(x, w.T)
        if kind == "weight_grad":
            g, x = arrays
            return lambda: matmul(g.T, x)
        g, w, x = arrays
        return lambda: pair(g, w, g.T, x)
    return setup


def _torch(case):
    def setup():
        import torch
        shapes, kind = _CASES[case]
        arrays = [torch.from_numpy(a) for a in _arrays(shapes)]
        if kind == "forward":
            x, w = arrays
            return lambda: x @ w.t()
        if kind == "weight_grad":
            g, x = arrays
            return lambda: g.t() @ x
        g, w, x = arrays
        return lambda: (g @ w, g.t() @ x)
    return setup


WORKLOADS = {}
for _case in _CASES:
    WORKLOADS[f"products: {_case}"] = Workload(_minigrad(_case, "backend"), _torch(_case),
                                               "CPU backend")
    WORKLOADS[f"products: {_case} np"] = Workload(_minigrad(_case, "numpy"), _torch(_case),
                                                      "numpy's matmul (the reference)")
