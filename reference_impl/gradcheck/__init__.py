"""Deprecated path, kept for one release: ``check_vjp``, ``check_grad``,
``Arg`` and ``Inputs`` are ``reference_impl.check_vjp`` etc. (defined in
:mod:`reference_impl.oracle.function` and :mod:`reference_impl.strategies.inputs`);
``reference_impl.gradcheck.numerics`` is :mod:`reference_impl.engine.differences`.
"""

from __future__ import annotations

import warnings

from ..oracle.function import DEFAULT_MAX_ELEMENTS, DEFAULT_TIME_BUDGET, check_grad, check_vjp
from ..oracle.function_report import Counterexample, GradcheckResult, Row
from ..strategies.inputs import KINDS, Arg, Inputs

__all__ = ["check_vjp", "check_grad", "Arg", "Inputs", "KINDS", "GradcheckResult", "Row", "Counterexample",
           "DEFAULT_MAX_ELEMENTS", "DEFAULT_TIME_BUDGET"]

warnings.warn("reference_impl.gradcheck is deprecated; use reference_impl.check_vjp / check_grad / Arg / Inputs "
              "(defined in reference_impl.oracle)", DeprecationWarning, stacklevel=2)
