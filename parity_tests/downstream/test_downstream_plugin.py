"""Run against an installed wheel, from a folder outside the checkout (see
``.ci/run``): the ``gradient_oracle`` fixture of the installed plugin works,
and ``reference_impl`` comes from site-packages, not from a source tree.

Not part of the normal collection (``--ignore=parity_tests/downstream`` in
pyproject.toml). Run it as::

    python -m pytest -p no:cacheprovider --gradient-oracle-examples=5 test_downstream_plugin.py
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np

import reference_impl


def softmax_vjp(g, x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return (s * (g - (g * s).sum(axis=-1, keepdims=True)),)


def diagonal_softmax_vjp(g, x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return (g * s * (1 - s),)  # keeps only the Jacobian's diagonal


def test_reference_impl_is_imported_from_site_packages() -> None:
    where = Path(reference_impl.__file__).resolve()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert where.is_relative_to(site), f"reference_impl imported from {where}, not from site-packages {site}"


def test_gradient_oracle_fixture_passes_a_right_vjp(gradient_oracle) -> None:
    result = gradient_oracle.check_op("softmax", vjp=softmax_vjp).raise_if_failed()
    assert result.ok and result.examples > 0


def test_gradient_oracle_fixture_fails_a_wrong_vjp(gradient_oracle) -> None:
    result = gradient_oracle.check_op("softmax", vjp=diagonal_softmax_vjp)
    assert not result.ok and result.counterexamples, result.report()
