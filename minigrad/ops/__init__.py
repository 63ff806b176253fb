"""Differentiable ops: one Op (autograd node) per operation. Forward computes
with the input's backend; backward is written with Tensor ops, so it is itself
differentiable (higher-order gradients)."""
