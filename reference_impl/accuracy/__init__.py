"""The accuracy model: every tolerance in the project, written down once.

:mod:`.ops` is the error model of each registered op (forward and VJP: the
acceptance rule, its terms, the per-op rules registered beside each other);
:mod:`.networks` extends it to whole computations (networks, gradient-descent
trajectories, the sum-over-paths oracle, document 002's composite). The
bounds depend on the dtype, the shapes and the exact values only, never on
how the reference computes, so the reference and every implementation are
judged by the same rule. The truth they are checked against lives in
:mod:`reference_impl.frameworks.truth` (ball arithmetic, an optional extra).

NumPy only; imports nothing of the package but :mod:`reference_impl.broadcasting`.
"""
