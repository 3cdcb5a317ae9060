"""The frameworks the reference is checked against: PyTorch and JAX.

Optional (the ``frameworks`` extra: ``pip install "reference-impl[frameworks]"``)
and loaded only when a check asks for a framework; ``import reference_impl``
does not import this package.

* :mod:`.recipes` -- one row per op: how torch and jax compute it with their
  own operations, the conventions that may explain a difference, named
  special cases. Imports neither framework.
* :mod:`.backends` -- run an op through torch or jax and their autograd.
* :mod:`.networks` -- whole networks as ``torch.nn.Linear`` layers and as
  ``jax.nn`` functions, with their gradients and SGD (imports both).
"""
