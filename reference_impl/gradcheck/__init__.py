"""Check any gradient: ``check_vjp`` for a function of arrays and its VJP,
``check_grad`` for a scalar loss over a pytree of parameters.

The verdict needs no finite-difference step: the Taylor remainder of
``phi(x) = <v, f(x)>`` shrinks like ``h^2`` when the VJP is right and like
``h`` when it is not, and the check reports the observed order. Beside it, an
adjoint test against Richardson-extrapolated central differences, the float32
gradient against the float64 one under a measured backward-stability model,
the calling contract (finite gradients of the input's dtype, shape and
structure; no argument modified in place) and, for functions written against
the array API, torch's and jax's autograd of the same source.

Pieces, each usable alone:

* :mod:`.pytree` -- flatten / unflatten nested tuples, lists and dicts;
* :mod:`.inputs` -- :class:`Arg` / :class:`Inputs` descriptions and their strategy;
* :mod:`.calls` -- running user code: exceptions, ``assume()``, in-place writes;
* :mod:`.numerics` -- Taylor order fit, Ridders' extrapolation, error models;
* :mod:`.frameworks` -- torch / jax autograd of an array-API function;
* :mod:`.engine` -- one example through every check, and the budgeted search.

Imports hypothesis; ``import reference_impl`` loads this package on first use.
"""

from __future__ import annotations

from .api import DEFAULT_MAX_ELEMENTS, DEFAULT_TIME_BUDGET, check_grad, check_vjp
from .inputs import KINDS, Arg, Inputs
from .report import Counterexample, GradcheckResult, Row

__all__ = ["check_vjp", "check_grad", "Arg", "Inputs", "KINDS", "GradcheckResult", "Row", "Counterexample",
           "DEFAULT_MAX_ELEMENTS", "DEFAULT_TIME_BUDGET"]
