"""``check_vjp`` / ``check_grad``: misuse is a clear error naming the argument;
what a user's function does (raise, exit, assume(), write into its inputs) is
reported, never a crash; inputs can be narrowed; budgets are reported;
framework opinions; check_grad over a dict of parameters."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st

import reference_impl as ri
from reference_impl import pytree
from reference_impl.engine import differences as numerics

Arg, Inputs = ri.Arg, ri.Inputs
X = Inputs(x=Arg("real", shape=(None,)))


def square(x: np.ndarray) -> np.ndarray:
    return x * x


def square_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 2 * g * x


# =========================================================================== misuse


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"f": 3}, TypeError, "f:"),
    ({"vjp": "no"}, TypeError, "vjp:"),
    ({"wrt": "y"}, ValueError, "wrt: unknown input 'y'"),
    ({"wrt": 5}, ValueError, "wrt:"),
    ({"inputs": 3.0}, TypeError, "inputs:"),
    ({"dtypes": ("float8_e4m3fn",)}, ValueError, "dtypes:"),
    ({"max_examples": 0}, ValueError, "max_examples:"),
    ({"max_elements": -1}, ValueError, "max_elements:"),
    ({"time_budget": 0}, ValueError, "time_budget:"),
    ({"backends": ("tensorflow",)}, ValueError, "backends:"),
    ({"profile": "fast"}, ValueError, "profile:"),
])
def test_misuse_names_the_argument(kwargs: dict, error: type, names: str) -> None:
    args = {"f": square, "vjp": square_vjp, "inputs": X, **kwargs}
    with pytest.raises(error, match="^" + re.escape(names)):
        ri.check_vjp(args.pop("f"), args.pop("vjp"), **args)


def test_strategy_drawing_non_arrays_names_inputs() -> None:
    with pytest.raises(TypeError, match=r"^inputs: the strategy drew a"):
        ri.check_vjp(square, square_vjp, inputs=st.tuples(st.floats(0, 1)), max_examples=5, seed=0)


def test_vjp_returning_the_wrong_structure_every_time_names_vjp() -> None:
    def two_grads(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 2 * g * x, 2 * g * x

    with pytest.raises(TypeError, match=r"^vjp: returned \(array, array\); expected"):
        ri.check_vjp(square, two_grads, inputs=X, max_examples=5, seed=0)


def test_bad_arg_descriptions() -> None:
    with pytest.raises(ValueError, match=r"^kind:"):
        Arg("probabilities")
    with pytest.raises(ValueError, match=r"^classes:"):
        Arg("labels", shape=(None,))
    with pytest.raises(ValueError, match=r"^range:"):
        Arg("real", range=(2.0, 1.0))
    with pytest.raises(TypeError, match=r"^x:"):
        Inputs(x=3)


# =========================================================================== user code misbehaving


def test_user_function_raising_system_exit_is_a_finding() -> None:
    def exits(g: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise SystemExit(3)

    result = ri.check_vjp(square, exits, inputs=X, max_examples=5, seed=0)
    assert not result.ok
    assert "raised SystemExit: exit code 3" in result.counterexamples[0].message


def test_assume_in_user_code_skips_the_input() -> None:
    def picky(x: np.ndarray) -> np.ndarray:
        assume(x.size > 1)  # refuses single elements: a skip, not a failure
        return x * x

    result = ri.check_vjp(picky, square_vjp, inputs=X, max_examples=20, seed=0)
    assert result.ok, result.report()
    assert result.skipped > 0
    assert all(r.shape_class == "x:1d" for r in result.rows)


def test_every_input_skipped_is_a_problem_not_a_pass() -> None:
    def never(x: np.ndarray) -> np.ndarray:
        assume(False)
        return x

    result = ri.check_vjp(never, square_vjp, inputs=[(np.ones(3),), (np.ones(2),)], seed=0)
    assert not result.ok
    assert result.problems and "skipped" in result.problems[0]


def test_mutating_f_is_reported_with_the_element() -> None:
    def sorts_in_place(x: np.ndarray) -> np.ndarray:
        x.sort()
        return x * x

    result = ri.check_vjp(sorts_in_place, square_vjp, inputs=[(np.array([3.0, 1.0, 2.0]),)], seed=0)
    assert not result.ok
    (c,) = {c.check for c in result.counterexamples}
    assert c == "inputs unchanged"
    assert "your f modified its input: x was modified in place" in result.counterexamples[0].message


def test_examples_list_and_wrt_by_name_skip_integer_targets() -> None:
    def nll(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        m = z.max(axis=-1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[:, 0]
        return lse - z[np.arange(len(y)), y]

    def nll_vjp(g: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        return g[:, None] * p

    rng = np.random.default_rng(0)
    examples = [(rng.standard_normal((4, 3)), np.array([0, 2, 1, 1])),
                (rng.standard_normal((1, 5)) * 30, np.array([4]))]
    result = ri.check_vjp(nll, nll_vjp, inputs=examples, wrt="z", seed=0)
    assert result.ok, result.report()
    assert {r.check for r in result.rows} >= {"taylor[z]", "adjoint[z]", "float32 vs float64[z]"}


def test_max_elements_and_time_budget_are_reported() -> None:
    big = Inputs(x=Arg("real", shape=(None, None, None)), sides=(8, 16))
    result = ri.check_vjp(square, square_vjp, inputs=big, max_elements=64, max_examples=5, seed=0)
    assert result.ok, result.report()
    assert any(c.startswith("max_elements 64") for c in result.cuts)

    def slow_wrong(g: np.ndarray, x: np.ndarray) -> np.ndarray:
        return 3 * g * x

    result = ri.check_vjp(square, slow_wrong, inputs=X, time_budget=1e-3, seed=0)
    assert any("time_budget" in c for c in result.cuts), result.report()


# =========================================================================== pieces


def test_taylor_fit_orders() -> None:
    hs = numerics.taylor_steps()
    right = numerics.fit_taylor_order(hs, [3.0 * h * h for h in hs], floor=1e-16)
    wrong = numerics.fit_taylor_order(hs, [1e-3 * h + 3.0 * h * h for h in hs], floor=1e-16)
    linear = numerics.fit_taylor_order(hs, [1e-18 for _ in hs], floor=1e-16)
    assert right.status == "order" and abs(right.order - 2) < 0.05 and not right.failed
    assert wrong.status == "order" and abs(wrong.order - 1) < 0.05 and wrong.failed
    assert linear.status == "exact" and not linear.failed


def test_kink_crossing_is_not_a_first_order_error() -> None:
    # remainder only while the step crosses a kink at h = 1e-3, then rounding
    hs = numerics.taylor_steps()
    rs = [max(h - 1e-3, 0.0) * 0.5 + 1e-17 for h in hs]
    fit = numerics.fit_taylor_order(hs, rs, floor=1e-16)
    assert not fit.failed


def test_taylor_window_is_the_asymptotic_end() -> None:
    # order 1 while the step is large against the curvature scale 1e-4, order 2 below it: a correct VJP
    hs = numerics.taylor_steps(numerics.TAYLOR_MAX_STEPS)
    right = numerics.fit_taylor_order(hs, [h * h / (h + 1e-4) for h in hs], floor=1e-16)
    assert right.status == "order" and abs(right.order - 2) < 0.1 and not right.failed
    assert max(right.steps) < 1e-4 <= max(hs)
    # the reverse, order 2 at large steps and 1 below 1e-4: a first-order error hidden by the curvature
    wrong = numerics.fit_taylor_order(hs, [1e-4 * h + h * h for h in hs], floor=1e-16)
    assert wrong.status == "order" and abs(wrong.order - 1) < 0.1 and wrong.failed


def test_taylor_test_stops_below_the_floor() -> None:
    calls: list[float] = []

    def remainder(h: float) -> float:
        calls.append(h)
        return 3.0 * h * h + 1e-17

    fit = numerics.taylor_test(remainder, floor=1e-16)
    assert fit.status == "order" and not fit.failed
    assert len(calls) < numerics.TAYLOR_MAX_STEPS and numerics.ridders_starts(fit)[0] in fit.steps
    assert fit.linear_step == calls[-numerics.TAYLOR_BELOW_FLOOR]


def test_pytree_roundtrip() -> None:
    tree = {"b": (np.zeros(2), [np.ones(3)]), "a": np.ones(1)}
    leaves, s = pytree.flatten(tree)
    assert pytree.leaf_paths(s, "p") == ["p['a']", "p['b'][0]", "p['b'][1][0]"]
    back = pytree.unflatten(s, leaves)
    assert pytree.flatten(back)[1] == s and isinstance(back["b"][1], list)


# =========================================================================== check_grad and frameworks


def _mlp_loss(params: dict, data: tuple) -> np.ndarray:
    x, t = data
    h = np.tanh(x @ params["W1"] + params["b1"])
    return 0.5 * np.mean(np.sum((h @ params["W2"] - t) ** 2, axis=-1))


def _mlp_grad(params: dict, data: tuple, wrong: bool = False) -> dict:
    x, t = data
    h = np.tanh(x @ params["W1"] + params["b1"])
    dy = (h @ params["W2"] - t) / len(x)
    dh = (dy @ params["W2"].T) * (1 - h * h)
    return {"W1": x.T @ dh, "b1": dh.sum(axis=0) * (0.5 if wrong else 1.0), "W2": h.T @ dy}


PARAMS = {"W1": Arg("real", shape=("i", "h"), scale=0.5), "b1": Arg("real", shape=("h",), scale=0.1),
          "W2": Arg("real", shape=("h", "o"), scale=0.5)}
DATA = (Arg("real", shape=("b", "i"), scale=1.0), Arg("real", shape=("b", "o"), scale=1.0))


def test_check_grad_over_a_dict_of_parameters() -> None:
    ok = ri.check_grad(_mlp_loss, _mlp_grad, params=PARAMS, data=DATA, seed=0)
    assert ok.ok, ok.report()
    bad = ri.check_grad(_mlp_loss, lambda p, d: _mlp_grad(p, d, wrong=True), params=PARAMS, data=DATA, seed=0)
    assert not bad.ok
    assert bad.counterexamples[0].check.startswith(("taylor[params]", "adjoint[params]"))


def test_check_grad_missing_key_names_grad() -> None:
    def no_b1(p: dict, d: tuple) -> dict:
        g = _mlp_grad(p, d)
        del g["b1"]
        return g

    with pytest.raises(TypeError, match=r"^grad: returned"):
        ri.check_grad(_mlp_loss, no_b1, params=PARAMS, data=DATA, max_examples=3, seed=0)


def _layer_norm(x):  # type: ignore[no-untyped-def]
    import array_api_compat

    xp = array_api_compat.array_namespace(x)
    mu = xp.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    return xc / xp.sqrt(xp.mean(xc * xc, axis=-1, keepdims=True) + 1e-5)


def _layer_norm_vjp(g: np.ndarray, x: np.ndarray, wrong: bool = False) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    inv = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + 1e-5)
    xhat = xc * inv
    last = 0 if wrong else xhat * (g * xhat).mean(axis=-1, keepdims=True)
    return (inv * (g - g.mean(axis=-1, keepdims=True) - last)).astype(x.dtype)


@pytest.mark.torch
@pytest.mark.jax
def test_framework_opinions_on_an_array_api_function() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    # one shape: jax compiles each operation once per shape and dtype
    inputs = Inputs(x=Arg("real", shape=(4, 6), scale=(0.1, 1.0, 10.0)))
    result = ri.check_vjp(_layer_norm, _layer_norm_vjp, inputs=inputs, backends=("torch", "jax"),
                          max_examples=5, seed=0)
    assert result.ok, result.report()
    assert {r.against for r in result.rows} >= {"torch", "jax"}
    wrong = ri.check_vjp(_layer_norm, lambda g, x: _layer_norm_vjp(g, x, wrong=True), inputs=inputs,
                         backends=("torch", "jax"), max_examples=5, seed=0)
    assert not wrong.ok


# --------------------------------------------------------------------------- narrowed inputs keep the extremes


def _softplus(x):
    return np.log1p(np.exp(x))  # overflows at exp's threshold: a bug there


def _softplus_vjp(g, x):
    e = np.exp(x)
    return g * e / (1 + e)


def test_a_scale_keeps_the_named_extremes_and_finds_the_overflow() -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        r = ri.check_vjp(_softplus, _softplus_vjp, inputs=ri.Inputs(x=ri.Arg("real", shape=(3, 4), scale=30)),
                         seed=0, max_examples=25)
    assert not r.ok and "not finite" in r.counterexamples[0].message, r.report()
    (line,) = r.coverage
    assert line.startswith("x drawn in [") and "the named extremes in" in line and " 0 of " not in line
    assert f"covered: {line}" in r.report()


def test_extremes_false_draws_only_the_scale_and_says_so() -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        r = ri.check_vjp(_softplus, _softplus_vjp,
                         inputs=ri.Inputs(x=ri.Arg("real", shape=(3, 4), scale=30, extremes=False)),
                         seed=0, max_examples=25)
    assert r.ok, r.report()
    assert "the named extremes in 0 of" in r.coverage[0]


def test_a_range_keeps_only_the_extremes_inside_it() -> None:
    r = ri.check_vjp(np.tanh, lambda g, x: g * (1 - np.tanh(x) ** 2),
                     inputs=ri.Inputs(x=ri.Arg("real", shape=(8,), range=(-100.0, 100.0))), seed=0, max_examples=25)
    assert r.ok, r.report()
    low, high, extremes = re.fullmatch(r"x drawn in \[(\S+), (\S+)\], the named extremes in (\d+) of \d+ input\(s\)",
                                       r.coverage[0]).groups()
    assert float(low) >= -100.0 and float(high) <= 100.0 and int(extremes) > 0, r.coverage


def test_extremes_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"^extremes: expected True or False"):
        ri.Arg("real", scale=1.0, extremes="no")
