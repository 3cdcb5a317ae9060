"""Replay every golden fixture through the reference, torch and jax.

One parametrized test: each entry's graph runs op by op through the backend's
own forward and VJP (``reference_impl.frameworks.backends``) and every expected quantity
must be met -- a document number within its printed precision plus the error
model, a derived number and a stated rule within the error model. Entries
with no graph (a printed vector's sum, numbers recorded without a formula)
have nothing for a framework to compute and run on the reference only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reference_impl import golden

ENTRIES = golden.entries()


def _cases() -> list[Any]:
    cases = []
    for e in ENTRIES:
        if not e.expected:
            continue  # nothing to replay: test_golden.test_entries_without_checks_say_why
        cases.append(pytest.param(e, "reference", id=f"{e.id}-reference"))
        if e.steps:
            cases.append(pytest.param(e, "torch", id=f"{e.id}-torch", marks=pytest.mark.torch))
            cases.append(pytest.param(e, "jax", id=f"{e.id}-jax", marks=pytest.mark.jax))
    return cases


def _backend(name: str) -> Any:
    if name == "reference":
        return golden.REFERENCE
    from reference_impl.frameworks.backends import BackendUnavailable, get_backend

    try:
        return get_backend(name)
    except BackendUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize(("entry", "backend_name"), _cases())
def test_replay(entry: golden.Entry, backend_name: str) -> None:
    if backend_name != "reference":
        from reference_impl.frameworks.recipes import SPECS

        missing = [op for op in entry.ops if op not in SPECS]
        if missing:
            pytest.skip(f"{backend_name} has no recipe for {missing} in parity_tests/spec.py")
    outcomes = golden.replay(entry, _backend(backend_name))
    assert [o.index for o in outcomes] == list(range(len(entry.expected)))
    failures = [o.message for o in outcomes if not o.ok]
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- the replay can fail


class _Broken:
    """The reference with one op's forward or VJP replaced."""

    def __init__(self, op: str, forward: Any = None, vjp: Any = None) -> None:
        self.name = f"reference with a broken {op}"
        self._op, self._forward, self._vjp = op, forward, vjp

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
        if op == self._op and self._forward is not None:
            return np.asarray(self._forward(*inputs))
        return golden.REFERENCE.forward(op, inputs, params)

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        out, grads = golden.REFERENCE.vjp(op, cotangent, inputs, params)
        if op == self._op and self._vjp is not None:
            return out, self._vjp(cotangent, *inputs)
        return out, grads


def _entry(entry_id: str) -> golden.Entry:
    return next(e for e in ENTRIES if e.id == entry_id)


def test_a_leaky_relu_misses_the_printed_output() -> None:
    broken = _Broken("relu", forward=lambda x: np.where(x > 0, x, 0.01 * x))
    outcomes = golden.replay(_entry("002-relu-example"), broken)
    bad = [o for o in outcomes if not o.ok]
    assert [o.index for o in bad] == [0]
    assert bad[0].message.startswith("doc_002.json: 002-relu-example: expected[0] (value of y, origin document; "
                                     "printed to 8 decimals")
    assert "on reference with a broken relu" in bad[0].message and "worst element (1,)" in bad[0].message


def test_a_wrong_sigmoid_derivative_breaks_the_stated_recursion() -> None:
    broken = _Broken("sigmoid", vjp=lambda g, z: (g * (1 / (1 + np.exp(-z))),))  # sigma instead of sigma'
    outcomes = golden.replay(_entry("003-hidden-layer-recursion"), broken)
    assert [o.ok for o in outcomes] == [True, False]  # dl/da does not involve sigma', dl/dz does
    assert "gradient of (z_next1 seeded with g1, z_next2 seeded with g2) w.r.t. z" in outcomes[1].message


def _rows_as_nodes(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    # reads row c of W as node c's weights -- the (nodes, inputs) layout of torch.nn.Linear
    if a.ndim == 1 and b.ndim == 2:
        k = min(b.shape[0], g.shape[0])
        return g[:k] @ b[:k, : a.shape[0]], np.outer(a, g)
    return golden.REFERENCE.vjp("matmul", g, (a, b), {})[1]


def test_a_transposed_weight_layout_is_caught() -> None:
    outcomes = golden.replay(_entry("002-weight-matrix-convention"), _Broken("matmul", vjp=_rows_as_nodes))
    assert [o.ok for o in outcomes] == [True, True, True, False]
    assert "gradient of (nodes seeded with node1) w.r.t. x" in outcomes[3].message


def test_gradient_count_notices_a_gradient_of_the_wrong_shape() -> None:
    def transposed_dw(g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        dx, dw, db = golden.REFERENCE.vjp("dense", g, (x, w, b), {})[1]
        return dx, dw.T, db

    outcomes = golden.replay(_entry("000-one-hidden-unit-network"), _Broken("dense", vjp=transposed_dw))
    count = next(o for o in outcomes if o.label == "gradient_count of L")
    assert not count.ok
    assert "v: gradient of shape (2, 1) for shape (1, 2)" in count.message
