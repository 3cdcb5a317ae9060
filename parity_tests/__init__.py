"""Parity suite: the reference against PyTorch, JAX and finite differences.

``spec.py`` is the one table that drives every op test; ``backends.py`` holds
the framework adapters (the only place torch and jax are imported for ops).
"""
