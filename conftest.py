"""Root pytest configuration: hypothesis profiles and float64 for JAX.

Profiles (see ``reference_impl/profiles.py``): ``dev`` (default), ``ci``,
``thorough``. Choose with ``--hypothesis-profile=ci`` (hypothesis' own option,
which wins) or ``REFERENCE_IMPL_PROFILE=ci``.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")  # before any jax array exists: float64 must stay float64
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from reference_impl import profiles

profiles.register()
profiles.load_from_env()
