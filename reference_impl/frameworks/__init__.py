"""The other opinions and the judge: PyTorch, JAX and ball arithmetic.

Everything that needs an optional dependency is here, and only here: torch,
jax and optax (the ``frameworks`` extra), python-flint (the ``truth``
extra), array-api-compat (the ``generic`` extra). Each is imported on first
use; ``import reference_impl`` does not import this package.

* :mod:`.recipes` -- one row per op: how torch and jax compute it with their
  own operations, its exact value in ball arithmetic, the conventions that
  may explain a difference, named special cases. Imports no framework.
* :mod:`.backends` -- run an op through torch or jax and their autograd,
  eager or compiled (``torch.compile``, ``jax.jit``), on the CPU or a GPU.
* :mod:`.networks` -- whole networks as ``torch.nn.Linear`` layers and as
  ``jax.nn`` functions, with their gradients and SGD (imports both).
* :mod:`.array_api` -- torch's and jax's autograd of a user's function
  written against the array API standard (an opinion for ``check_vjp``).
* :mod:`.truth` -- the truth: each op's recipes (the longer ones in
  :mod:`.truth_recipes`) evaluated in ``arb`` balls and rounded once.
* the user's own torch and jax code, for the checkers: :mod:`.detection`
  (which framework, without importing one), :mod:`.user_code` (tensors in
  and out, the framework's autograd as the VJP under test) and
  :mod:`.callables` (the hooks ``check_vjp``, ``check_grad`` and
  ``check_op`` call).

May import the reference and the accuracy model; nothing that checks.
"""
