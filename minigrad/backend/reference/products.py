"""The matrix products of the layers, as kernels a backend may run its own way.

`matmul` is one 2-D product; `matmul_pair` two independent ones, such as a
linear layer's input and weight gradients (dx = g @ W and dW = g.T @ x, which
take the same number of operations). Here they are the array module's
matmul; the compiled CPU version runs large ones with one BLAS call per
thread side by side (see minigrad/_core/products.pyx).
"""
__all__ = ["matmul", "matmul_pair"]


def matmul(xp, a, b):
    """a @ b for 2-D a (M, K) and b (K, N)."""
    return a @ b


def matmul_pair(xp, a1, b1, a2, b2):
    """(a1 @ b1, a2 @ b2) for 2-D operands."""
    return a1 @ b1, a2 @ b2
