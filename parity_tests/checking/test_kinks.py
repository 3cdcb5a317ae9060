"""Kinks: a step that crosses a point where ``f`` is not smooth is detected
and the adjoint test is read below it (``reference_impl.engine.kinks``);
where nothing can be read below it the example is undecided at a kink, never
wrong; kinked functions whose VJP is wrong still fail as wrong. (Third-party
torch code at kinks: ``parity_tests/frameworks/test_entmax.py``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

import reference_impl as ri
from reference_impl.engine import kinks

pytestmark = pytest.mark.numpy_only

U64 = 2.0**-53


def _kinked(slope: float, jump: float, distance: float) -> Callable[[float], float]:
    """``phi(t)`` of slope ``slope`` whose slope changes by ``jump`` at ``t = -distance``."""
    return lambda t: slope * t - jump * max(0.0, -(t + distance))


def _read(phi: Callable[[float], float], ours: float) -> kinks.KinkVerdict:
    return kinks.below_kinks(kinks.Line(phi, phi(0.0)), ours, abs(ours), 1e-16, U64)


@pytest.mark.parametrize("distance", [1e-3, 1e-6, 1e-9])
def test_steps_across_a_kink_are_shrunk_below_it(distance: float) -> None:
    phi = _kinked(2.0, 5.0, distance)
    right = _read(phi, 2.0)
    assert right.status == "pass", right
    assert right.step <= 4 * distance < 4 * right.crossed  # read down at the kink, which larger steps crossed
    wrong = _read(phi, 2.1)
    assert wrong.status == "wrong", wrong
    assert wrong.outcome is not None and wrong.outcome.differences == pytest.approx(2.0, rel=1e-9)


def test_a_kink_at_the_point_itself_is_undecided_whatever_the_vjp() -> None:
    phi = _kinked(2.0, 5.0, 0.0)  # one-sided slopes 2 and -3: no step is below the kink
    for ours in (2.0, -3.0, 7.0):
        verdict = _read(phi, ours)
        assert verdict.status == "undecided" and verdict.outcome is None, verdict
        assert "undecided at a kink" in verdict.describe()


def test_a_smooth_function_crosses_no_kink() -> None:
    verdict = _read(lambda t: math.sin(1.0 + t) + 0.5 * t * t, math.cos(1.0))
    assert verdict.status == "smooth", verdict
    line = kinks.Line(lambda t: abs(t - 1e-4), 1e-4)
    assert kinks.crosses(line, 2.0**-2, 1e-16) and not kinks.crosses(line, 2.0**-16, 1e-16)


# ------------------------------------------------------------------ check_vjp at kinks


def leaky(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    z = x @ w
    return np.where(z > 0, z, 0.01 * z)


def leaky_vjp_wrong_slope(g: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = g * np.where(x @ w > 0, 1.0, 0.1).astype(x.dtype)  # 0.1 for the forward's 0.01
    return d @ w.T, x.T @ d


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g * (x > 0)


LAYER = ri.Inputs(x=ri.Arg("real", shape=("batch", "n"), scale=1.0), w=ri.Arg("real", shape=("n", 3), scale=1.0))


@pytest.mark.parametrize("piecewise", [False, True])
def test_a_relu_layer_with_a_wrong_slope_still_fails_as_wrong(piecewise: bool) -> None:
    result = ri.check_vjp(leaky, leaky_vjp_wrong_slope, inputs=LAYER, seed=0, max_examples=25, piecewise=piecewise)
    assert not result.ok
    assert any(r.verdict == "wrong" for r in result.rows), result.report()
    assert "is wrong" in result.counterexamples[0].message


def test_relu_on_its_kink_is_undecided_and_counted_not_failed() -> None:
    x = np.array([0.0, 1.5, -2.0, 0.0])
    result = ri.check_vjp(relu, relu_vjp, inputs=[(x,)], dtypes=("float64",), seed=0)
    assert result.ok, result.report()
    assert result.undecided == 1 and result.to_dict()["undecided"] == 1
    report = result.report()
    assert "undecided at a kink: 1 example(s) of adjoint[x] (float64, x:1d), not failures" in report
    assert "1 at a kink" in report and "1 undecided at a kink" in result.summary_line()


def test_piecewise_is_checked() -> None:
    with pytest.raises(TypeError, match=r"^piecewise: expected True or False"):
        ri.check_vjp(relu, relu_vjp, inputs=ri.Arg("real", shape=(3,)), piecewise="yes")
