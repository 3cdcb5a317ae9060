"""Parity suite: the reference against PyTorch, JAX and finite differences.

Tests only. The framework recipes and adapters they use live in the library
(``reference_impl.frameworks``); ``harness.py`` turns the check engine's
comparisons into test failures.
"""
