"""Hypothesis profiles shared by the test suite, the pytest plugin and
``certify`` (imports hypothesis; not imported by ``import reference_impl``).

* ``dev``: quick local iteration (25 examples per property, random seed).
* ``quick``: 25 examples per property like ``dev``, derandomized like
  ``ci`` (the same examples every run): the test suite's ``--quick`` tier.
* ``ci``: derandomized (same examples every run), no deadline, failing
  examples printed as a reproduction blob, 100 examples per property.
* ``nightly``: 100 examples per property like ``ci``, but a fresh random
  seed each run (``--hypothesis-seed=N`` fixes one): for scheduled runs
  that explore beyond the fixed ``ci`` examples.
* ``thorough``: 1000 examples per property, random seed, no deadline.

Select one with ``--hypothesis-profile NAME`` or the environment variable
``REFERENCE_IMPL_PROFILE``; the default is ``dev``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = {"dev": 25, "quick": 25, "ci": 100, "nightly": 100, "thorough": 1000}
ENV_VAR = "REFERENCE_IMPL_PROFILE"
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]


def register() -> None:
    settings.register_profile("dev", max_examples=PROFILES["dev"], deadline=None, print_blob=True,
                              suppress_health_check=_SLOW_OK)
    settings.register_profile("quick", max_examples=PROFILES["quick"], derandomize=True, deadline=None,
                              print_blob=True, database=None, suppress_health_check=_SLOW_OK)
    settings.register_profile("ci", max_examples=PROFILES["ci"], derandomize=True, deadline=None,
                              print_blob=True, database=None, suppress_health_check=_SLOW_OK)
    settings.register_profile("nightly", max_examples=PROFILES["nightly"], deadline=None, print_blob=True,
                              database=None, suppress_health_check=_SLOW_OK)
    settings.register_profile("thorough", max_examples=PROFILES["thorough"], deadline=None, print_blob=True,
                              suppress_health_check=_SLOW_OK)


def load_from_env(default: str = "dev") -> str:
    name = os.environ.get(ENV_VAR, default)
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}={name!r} is not one of {sorted(PROFILES)}")
    settings.load_profile(name)
    return name
