"""Parity with PyTorch and JAX: every op, whole networks, gradient descent and the conventions the README states."""
