"""The checkers of other people's gradient code, thin layers over the engine.

* :func:`check_op` -- a forward and/or VJP of an op in ``OPS`` against the
  reference (:mod:`.op`, with :class:`Oracle` for shared defaults);
* :func:`check_network`, :func:`check_sgd_step` -- a network's gradients and a
  gradient-descent step (:mod:`.network`);
* :func:`check_vjp`, :func:`check_grad` -- any function and its VJP, any
  scalar loss over a pytree (:mod:`.function`, one example through every
  check in :mod:`.function_checks`);
* :mod:`.args` and :mod:`.controls` -- their arguments: misuse named, the
  inputs, ``wrt``, conventions, size caps and time budgets.

May import the engine, the strategies, the frameworks and the reference;
imports hypothesis, so ``import reference_impl`` loads it on first use.
"""

from __future__ import annotations

from ..strategies.inputs import KINDS, Arg, Inputs
from .function import check_grad, check_vjp
from .function_report import GradcheckResult
from .network import check_network, check_sgd_step
from .op import Oracle, OracleResult, check_op

__all__ = ["check_op", "check_network", "check_sgd_step", "check_vjp", "check_grad", "Oracle", "OracleResult",
           "GradcheckResult", "Arg", "Inputs", "KINDS"]
