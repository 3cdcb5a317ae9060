"""What a report says about its subject and its counterexamples: arrays
printed in the layout the caller's code received (pasted back, they
reproduce the failing call), ``name=`` in place of ``f/vjp of <lambda>``,
no library frame in a pytest failure, and no measured-looking ``0.00e+00``
on a failing Taylor row. (torch and jax literals:
``parity_tests/frameworks/test_framework_literals.py``.)
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import reference_impl as ri
from reference_impl.networks import MLP

pytestmark = pytest.mark.numpy_only
pytest_plugins = ["pytester"]

NET = MLP((3, 5, 2), ("tanh", "identity"), cost="mse")
LAYOUT = {"dense layout": "(outputs, inputs)"}


def pasted_arrays(text: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Each ``name = <expression>`` of a counterexample's text (continuation
    lines included), evaluated in ``namespace``."""
    out: dict[str, Any] = {}
    name, expr = None, ""
    for line in [*text.splitlines(), ""]:
        m = re.match(r"^ {4,8}(\S+) = (.*)$", line)
        if m or (name is not None and not line.startswith(" " * 10)):
            if name is not None:
                out[name] = eval(expr, dict(namespace))
            name, expr = (m.group(1), m.group(2)) if m else (None, "")
        elif name is not None:
            expr += line.strip()
    return out


def _value_and_grad(params: Any, x: np.ndarray, t: np.ndarray, wrong_bias: bool = False) -> Any:
    """The MSE network's loss and gradients with ``W`` laid out ``(outputs, inputs)``, as ``torch.nn.Linear``."""
    (w1, b1), (w2, b2) = ((w.T, b) for w, b in params)
    a1 = np.tanh(x @ w1 + b1)
    d = a1 @ w2 + b2 - t
    dz2 = 2 * d / d.size
    dz1 = (dz2 @ w2.T) * (1 - a1 * a1)
    db2 = dz2.sum(axis=0) * (2 if wrong_bias else 1)
    return np.asarray(np.mean(d * d), dtype=x.dtype), (((x.T @ dz1).T, dz1.sum(axis=0)), ((a1.T @ dz2).T, db2))


def test_a_network_counterexample_prints_w_in_the_layout_the_code_received() -> None:
    received: list[tuple[np.ndarray, ...]] = []

    def wrong(params: Any, x: np.ndarray, t: np.ndarray) -> Any:
        received.append((*(np.array(a) for pair in params for a in pair), np.array(x), np.array(t)))
        return _value_and_grad(params, x, t, wrong_bias=True)

    result = ri.check_network(NET, value_and_grad=wrong, conventions=LAYOUT, dtypes=("float64",), max_examples=10,
                              seed=3)
    assert not result.ok
    (found,) = result.counterexamples
    pasted = pasted_arrays(found.describe(), {"np": np})
    assert pasted["W1"].shape == (5, 3) and pasted["W2"].shape == (2, 5)  # (outputs, inputs), as declared
    args = tuple(pasted[k] for k in ("W1", "b1", "W2", "b2", "x", "target"))
    assert any(len(r) == len(args) and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(r, args))
               for r in received), "the pasted arrays are not an input the function received"
    params = ((args[0], args[1]), (args[2], args[3]))
    _, mine = wrong(params, args[4], args[5])
    _, right = _value_and_grad(params, args[4], args[5])
    assert not np.allclose(mine[1][1], right[1][1])  # the pasted call fails as reported
    np.testing.assert_array_equal(mine[0][0], right[0][0])


def test_a_dense_counterexample_prints_w_as_check_op_passed_it() -> None:
    seen: list[np.ndarray] = []

    def vjp(g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Any:
        seen.append(np.array(w))
        gf, xf = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        return g @ w.T, (xf.T @ gf).T, 2 * gf.sum(axis=0)  # dW in (outputs, inputs); db doubled

    result = ri.check_op("dense", vjp=vjp, conventions=LAYOUT, dtypes=("float64",), max_examples=10, seed=3)
    (found,) = result.counterexamples
    w = pasted_arrays(found.describe(), {"np": np})["W"]
    assert any(np.array_equal(w, s) and w.shape == s.shape for s in seen)


def test_name_replaces_the_function_names_in_the_report() -> None:
    fn = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731 -- a lambda, as in the report it replaces
    vjp = lambda g, x: g * fn(x) * (1 + fn(x))  # noqa: E731 -- wrong: 1 + s for 1 - s
    arg = ri.Arg("real", shape=(3,), scale=1.0)
    unnamed = ri.check_vjp(fn, vjp, inputs=arg, max_examples=3, seed=0)
    assert unnamed.title() == "f/vjp of <lambda>"
    named = ri.check_vjp(fn, vjp, inputs=arg, max_examples=3, seed=0, name="my sigmoid")
    assert named.report().startswith("gradient check: my sigmoid -- FAILED")
    assert named.summary_line().startswith("FAIL my sigmoid: ") and "<lambda>" not in named.report()
    assert named.to_dict()["name"] == "my sigmoid"
    grad = ri.check_grad(lambda p: np.sum(p ** 2), lambda p: 2 * p, params=ri.Arg("real", shape=(2,)),
                         max_examples=2, seed=0, name="squared norm")
    assert grad.ok and grad.summary_line().startswith("PASS squared norm: ")
    op = ri.check_op("tanh", vjp=lambda g, x: g * (1 - np.tanh(x) ** 2), max_examples=3, seed=0, name="my tanh VJP")
    assert op.report().startswith("gradient oracle: my tanh VJP -- ") and op.to_dict()["name"] == "my tanh VJP"
    assert op.summary_line().split(" ", 1)[1].startswith("my tanh VJP: "), op.summary_line()
    for bad in ("", 3):
        with pytest.raises(TypeError, match=r"^name: expected a non-empty string"):
            ri.check_vjp(fn, vjp, inputs=arg, name=bad)
        with pytest.raises(TypeError, match=r"^name: expected a non-empty string"):
            ri.check_op("sigmoid", vjp=vjp, name=bad)


def test_a_failing_taylor_row_shows_no_measured_zero() -> None:
    wrong = lambda g, x: g * np.cos(x) * 1.01  # noqa: E731
    result = ri.check_vjp(np.sin, wrong, inputs=ri.Arg("real", shape=(3,), scale=1.0), max_examples=3, seed=0)
    rows = [line for line in result.report().splitlines() if "taylor[" in line and "FAIL" in line]
    assert rows, result.report()
    assert not any("0.00e+00" in line for line in rows), rows


def test_a_pytest_failure_shows_the_report_and_no_library_frame(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user='''
import numpy as np
import reference_impl as ri


def test_wrong_vjp():
    ri.check_vjp(np.tanh, lambda g, x: g * (1 + np.tanh(x) ** 2), inputs=ri.Arg("real", shape=(3,)),
                 max_examples=3, seed=0, name="my tanh").raise_if_failed()
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "gradient check: my tanh -- FAILED" in out
    assert "self = GradcheckResult(" not in out and "def raise_if_failed" not in out, out
    assert "reference_impl/engine/results.py" not in out, out
