"""Compiled Cython kernels. Each module mirrors a reference module in
minigrad/backend/reference/ (same function names, without the leading xp)."""
