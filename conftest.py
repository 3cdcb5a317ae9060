"""Root pytest configuration: hypothesis profiles, float64 for JAX, the
double-double kernels loaded, and the ``decimal_fallback`` fixture.

Profiles (see ``reference_impl/profiles.py``): ``dev`` (default), ``ci``,
``thorough``. Choose with ``--hypothesis-profile=ci`` (hypothesis' own option,
which wins) or ``REFERENCE_IMPL_PROFILE=ci``.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")  # before any jax array exists: float64 must stay float64
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest

from reference_impl import double_double as ddm
from reference_impl import wide
from reference_impl.engine import profiles

profiles.register()
profiles.load_from_env()

# The compiled double-double kernels (where numba is installed) import parts of
# numba as they compile. Compile (or load) them all here, before any in-process
# pytester run snapshots sys.modules and drops what was imported during it
# (a second import of those numba modules fails on its duplicate registrations).
if ddm.KERNELS:
    ddm._kernels().warm()


@pytest.fixture
def decimal_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference as on a platform whose ``longdouble`` is plain float64
    (Windows, Apple silicon); float64 computes in double-double either way,
    so no result may change."""
    monkeypatch.setattr(wide, "_LONG", np.float64)
    assert not wide.extended()
