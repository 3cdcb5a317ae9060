"""Meta-tests of ``reference_impl.check_vjp``: a catalog of wrong VJPs of
functions outside the library's ops, each of which the check must catch on
three seeds with the default profile, and correct ones (several computed by
different stable algorithms) that must pass on the same seeds.

Each wrong entry names the check expected to catch it, so a test fails if the
defect is caught for the wrong reason (a float32-only bug must be caught by
the float32-against-float64 comparison, a mutation by the mutation check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import reference_impl as ri

pytestmark = pytest.mark.numpy_only

SEEDS = (0, 1, 2)
Arg, Inputs = ri.Arg, ri.Inputs


# =========================================================================== functions and their VJPs


def logsumexp(x: np.ndarray) -> np.ndarray:
    """``lse(x) = m + log sum exp(x - m)`` over the last axis, ``m = max x``."""
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def logsumexp_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return g[..., None] * (e / e.sum(axis=-1, keepdims=True))


def logsumexp_vjp_via_output(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    # softmax as exp(x - lse(x)): a different stable route to the same gradient
    return g[..., None] * np.exp(x - logsumexp(x)[..., None])


def log_softmax(x: np.ndarray) -> np.ndarray:
    return x - logsumexp(x)[..., None]


def log_softmax_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g - np.exp(log_softmax(x)) * g.sum(axis=-1, keepdims=True)


ALPHA = 0.01


def leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, ALPHA * x)


def leaky_relu_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, g, ALPHA * g)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``gamma * (x - mean) / sqrt(var + 1e-5) + beta`` over the last axis."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + x.dtype.type(1e-5))
    return gamma * xc * inv + beta


def _ln_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xc = x - x.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + x.dtype.type(1e-5))
    return xc * inv, inv


def layer_norm_vjp(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, ...]:
    xhat, inv = _ln_parts(x)
    lead = tuple(range(g.ndim - 1))
    gh = g * gamma
    dx = inv * (gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, (g * xhat).sum(axis=lead), g.sum(axis=lead)


def layer_norm_vjp_two_pass(g: np.ndarray, x: np.ndarray, gamma: np.ndarray,
                            beta: np.ndarray) -> tuple[np.ndarray, ...]:
    # through the variance: d var and d mean accumulated as in a two-pass derivation
    n = x.shape[-1]
    xc = x - x.mean(axis=-1, keepdims=True)
    var = (xc * xc).mean(axis=-1, keepdims=True) + x.dtype.type(1e-5)
    inv = 1.0 / np.sqrt(var)
    gh = g * gamma
    dvar = (gh * xc).sum(axis=-1, keepdims=True) * x.dtype.type(-0.5) * inv**3
    dmu = -(gh * inv).sum(axis=-1, keepdims=True)
    dx = gh * inv + dvar * x.dtype.type(2.0 / n) * xc + dmu / x.dtype.type(n)
    lead = tuple(range(g.ndim - 1))
    return dx, (g * xc * inv).sum(axis=lead), g.sum(axis=lead)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x.dtype.type(0), x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g * _sigmoid(x)


def softplus_vjp_log_domain(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    # sigmoid(x) = exp(x - softplus(x)): accurate on both tails. (The tanh form
    # 0.5 + 0.5 tanh(x / 2) is not: it cancels for large negative x, and the
    # check reports its first-order error.)
    return g * np.exp(x - softplus(x))


def swish(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


def swish_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = _sigmoid(x)
    return g * (s + x * s * (1 - s))


def dense(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w


def dense_vjp(g: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return g @ w.T, x.T @ g


def mlp_loss(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of ``softmax(tanh(x W1) W2)`` against integer labels."""
    z = np.tanh(x @ w1) @ w2
    return np.mean(logsumexp(z) - np.take_along_axis(z, y[:, None], axis=-1)[:, 0])


def mlp_loss_vjp(g: np.ndarray, w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray,
                 tanh_derivative: Callable[[np.ndarray], np.ndarray] = lambda h: 1 - h * h
                 ) -> tuple[np.ndarray, np.ndarray]:
    h = np.tanh(x @ w1)
    z = h @ w2
    dz = np.exp(z - logsumexp(z)[:, None])
    dz[np.arange(len(y)), y] -= 1
    dz *= g / len(y)
    dh = dz @ w2.T
    return x.T @ (dh * tanh_derivative(h)), h.T @ dz


def two_outputs(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"sin": np.sin(x), "square": x * x}


def two_outputs_vjp(g: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return g["sin"] * np.cos(x) + 2 * g["square"] * x


def affine(x: np.ndarray) -> np.ndarray:
    # linear: the Taylor remainder is rounding only, at every step
    return 3 * x - 1


def affine_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 3 * g


# =========================================================================== the catalog


@dataclass(frozen=True)
class Case:
    name: str
    f: Callable[..., Any]
    vjp: Callable[..., Any]
    inputs: Any
    caught_by: tuple[str, ...] = ("taylor", "adjoint")
    """Prefixes of the check expected to report the defect (wrong cases)."""
    wrt: Any = None


ROWS = Inputs(x=Arg("logits", shape=(None, None)))
REALS = Inputs(x=Arg("real", shape=(None, None)))
KINKED = Inputs(x=Arg("kinked", shape=(None, None)))
LN = Inputs(x=Arg("real", shape=(None, "n")), gamma=Arg("real", shape=("n",), scale=1.0),
            beta=Arg("real", shape=("n",), scale=1.0))
DENSE = Inputs(x=Arg("real", shape=("b", "k"), scale=1.0), w=Arg("real", shape=("k", "o"), scale=1.0))
SQUARE = Inputs(x=Arg("real", shape=("b", "k"), scale=1.0), w=Arg("real", shape=("k", "k"), scale=1.0))
MLP = Inputs(w1=Arg("real", shape=("i", "h"), scale=0.5, extremes=False),
             w2=Arg("real", shape=("h", "c"), scale=0.5, extremes=False),
             x=Arg("real", shape=("b", "i"), scale=1.0, extremes=False), y=Arg("labels", shape=("b",), classes="c"))

CORRECT = [
    Case("logsumexp: max-shifted softmax", logsumexp, logsumexp_vjp, ROWS),
    Case("logsumexp: exp(x - lse(x))", logsumexp, logsumexp_vjp_via_output, ROWS),
    Case("log_softmax", log_softmax, log_softmax_vjp, ROWS),
    Case("leaky relu at kinks", leaky_relu, leaky_relu_vjp, KINKED),
    Case("layer norm: normalised form", layer_norm, layer_norm_vjp, LN),
    Case("layer norm: through the variance", layer_norm, layer_norm_vjp_two_pass, LN),
    Case("softplus: stable sigmoid", softplus, softplus_vjp, REALS),
    Case("softplus: log-domain sigmoid", softplus, softplus_vjp_log_domain, REALS),
    Case("swish", swish, swish_vjp, REALS),
    Case("dense", dense, dense_vjp, DENSE),
    Case("small model loss (w1, w2 only)", mlp_loss, lambda g, w1, w2, x, y: mlp_loss_vjp(g, w1, w2, x, y), MLP,
         wrt=("w1", "w2")),
    Case("dict output", two_outputs, two_outputs_vjp, REALS),
    Case("affine (exactly linear)", affine, affine_vjp, REALS),
    # magnitudes up to 1e3: no false alarm from the difference steps
    Case("swish at 1e3", swish, swish_vjp, Inputs(x=Arg("real", shape=(None, None), scale=(1e2, 1e3)))),
    Case("layer norm at 1e3", layer_norm, layer_norm_vjp,
         Inputs(x=Arg("real", shape=(None, "n"), scale=(1e2, 1e3)), gamma=Arg("real", shape=("n",), scale=1.0),
                beta=Arg("real", shape=("n",), scale=1.0))),
]


def _lse_vjp_sign(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return -logsumexp_vjp(g, x)


def _lse_vjp_global_sum(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return g[..., None] * e / e.sum()  # sums over every row, not per row


def _lse_vjp_clipped(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return logsumexp_vjp(g, np.clip(x, -50, 50))  # wrong once logits spread beyond 50


def _lse_vjp_naive(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)  # overflows: NaN for large logits
        return g[..., None] * e / e.sum(axis=-1, keepdims=True)


def _log_softmax_vjp_missing(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g - np.exp(log_softmax(x))  # drops the factor sum(g)


def _log_softmax_vjp_in_place(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    g -= np.exp(log_softmax(x)) * g.sum(axis=-1, keepdims=True)  # writes into the cotangent
    return g


def _leaky_vjp_swapped(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, ALPHA * g, g)


def _leaky_vjp_relu(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, g, 0 * g)  # the relu gradient: misses the leak


def _leaky_vjp_flat(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return leaky_relu_vjp(g, x).ravel()  # the wrong shape


def _ln_vjp_missing_term(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, ...]:
    xhat, inv = _ln_parts(x)
    lead = tuple(range(g.ndim - 1))
    gh = g * gamma
    return inv * (gh - gh.mean(axis=-1, keepdims=True)), (g * xhat).sum(axis=lead), g.sum(axis=lead)


def _ln_vjp_float32_only(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, ...]:
    dx, dgamma, dbeta = layer_norm_vjp(g, x, gamma, beta)
    if x.dtype == np.float32:  # a float32 path through half precision
        dx = dx.astype(np.float16).astype(np.float32)
    return dx, dgamma, dbeta


def _ln_vjp_in_place(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, ...]:
    x -= x.mean(axis=-1, keepdims=True)  # centres the caller's array
    return layer_norm_vjp(g, x, gamma, beta)


def _softplus_vjp_flat_beyond_20(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(x > 20, 0 * g, g * _sigmoid(x))


def _softplus_vjp_naive(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return g * e / (1 + e)  # inf / inf = NaN beyond exp's range


def _softplus_vjp_float64(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g * _sigmoid(x.astype(np.float64))  # float64 gradient for float32 input


def _swish_vjp_missing(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g * _sigmoid(x)


def _dense_vjp_transposed(g: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return g @ w.T, (x.T @ g).T  # dW transposed (W is square)


def _mlp_vjp_wrong_tanh(g: np.ndarray, w1: np.ndarray, w2: np.ndarray, x: np.ndarray,
                        y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return mlp_loss_vjp(g, w1, w2, x, y, tanh_derivative=lambda h: 1 - h)


def _mlp_vjp_sum_not_mean(g: np.ndarray, w1: np.ndarray, w2: np.ndarray, x: np.ndarray,
                          y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d1, d2 = mlp_loss_vjp(g, w1, w2, x, y)
    return d1 * len(y), d2 * len(y)  # the gradient of the summed loss


def _two_outputs_vjp_missing(g: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return g["sin"] * np.cos(x)  # ignores the second output's cotangent


def _affine_vjp_masked(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.ma.masked_less(3 * g, -1e300)  # a masked array, not an ndarray


WRONG = [
    Case("logsumexp: wrong sign", logsumexp, _lse_vjp_sign, ROWS),
    Case("logsumexp: sum over the wrong axis", logsumexp, _lse_vjp_global_sum, ROWS),
    Case("logsumexp: wrong beyond a magnitude of 50", logsumexp, _lse_vjp_clipped, ROWS),
    Case("logsumexp: NaN for large logits", logsumexp, _lse_vjp_naive, ROWS, ("gradient",)),
    Case("log_softmax: missing factor", log_softmax, _log_softmax_vjp_missing, ROWS),
    Case("log_softmax: writes into the cotangent", log_softmax, _log_softmax_vjp_in_place, ROWS, ("inputs unchanged",)),
    Case("leaky relu: slopes swapped", leaky_relu, _leaky_vjp_swapped, KINKED),
    Case("leaky relu: missing the leak", leaky_relu, _leaky_vjp_relu, KINKED),
    Case("leaky relu: wrong shape", leaky_relu, _leaky_vjp_flat, KINKED, ("gradient",)),
    Case("layer norm: missing term", layer_norm, _ln_vjp_missing_term, LN),
    Case("layer norm: wrong only in float32", layer_norm, _ln_vjp_float32_only, LN, ("float32 vs float64",)),
    Case("layer norm: modifies its input", layer_norm, _ln_vjp_in_place, LN, ("inputs unchanged",)),
    Case("softplus: flat beyond 20", softplus, _softplus_vjp_flat_beyond_20, REALS),
    Case("softplus: NaN beyond exp's range", softplus, _softplus_vjp_naive, REALS, ("gradient",)),
    Case("softplus: float64 gradient for float32 input", softplus, _softplus_vjp_float64, REALS, ("gradient",)),
    Case("swish: missing term", swish, _swish_vjp_missing, REALS),
    Case("dense: transposed dW", dense, _dense_vjp_transposed, SQUARE),
    Case("small model: tanh derivative 1 - h", mlp_loss, _mlp_vjp_wrong_tanh, MLP, wrt=("w1", "w2")),
    Case("small model: sum instead of mean", mlp_loss, _mlp_vjp_sum_not_mean, MLP, wrt=("w1", "w2")),
    Case("dict output: second output ignored", two_outputs, _two_outputs_vjp_missing, REALS),
    Case("affine: masked array", affine, _affine_vjp_masked, REALS, ("gradient",)),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CORRECT, ids=lambda c: c.name)
def test_correct_vjp_passes(case: Case, seed: int) -> None:
    result = ri.check_vjp(case.f, case.vjp, inputs=case.inputs, wrt=case.wrt, seed=seed)
    assert result.ok, result.report()
    assert result.examples >= 25


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", WRONG, ids=lambda c: c.name)
def test_wrong_vjp_is_caught(case: Case, seed: int) -> None:
    result = ri.check_vjp(case.f, case.vjp, inputs=case.inputs, wrt=case.wrt, seed=seed)
    assert not result.ok, f"seed {seed}: not caught\n{result.report()}"
    assert result.counterexamples, result.report()
    checks = {c.check for c in result.counterexamples}
    assert all(c.startswith(case.caught_by) for c in checks), (
        f"seed {seed}: caught by {checks}, expected {case.caught_by}\n{result.report()}")


def test_catalog_size() -> None:
    assert len(WRONG) >= 15 and len(CORRECT) >= 8


# =========================================================================== hard inputs, named


def sine_and_square(x: np.ndarray) -> np.ndarray:
    return np.sin(x) + x * x


def sine_and_square_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g * (np.cos(x) + 2 * x)


HARD = [
    # saturated softmax: large steps see a nearly piecewise-linear function (order near 1 before the asymptotic end)
    ("log_softmax, saturated rows", log_softmax, log_softmax_vjp, np.array([[12.57, -13.21]])),
    # logits at 1e3 in float32: the VJP's own value carries an error of u * 1e3 relative
    ("log_softmax at -1e3", log_softmax, log_softmax_vjp, np.array([[-999.99, -1000.01]], np.float32)),
    # spread 1e4: one-hot except across near-ties, where a step crossing a tie shows any order
    ("logsumexp, logits spread 1e4", logsumexp, logsumexp_vjp,
     (np.random.default_rng(40).standard_normal((8, 12)) * 1e4).astype(np.float32)),
    ("log_softmax, logits 1e4 +- 1e4", log_softmax, log_softmax_vjp,
     (np.random.default_rng(208).standard_normal((16, 16)) * 1e4 + 1e4).astype(np.float32)),
    ("log_softmax, logits -1e4 +- 0.1", log_softmax, log_softmax_vjp,
     np.random.default_rng(0).standard_normal((1, 12)) * 0.1 - 1e4),
    # a short-scale component of small amplitude beside a large quadratic one
    ("sin(x) + x^2 at 708", sine_and_square, sine_and_square_vjp, np.array([[707.9439]], np.float32)),
    # subnormal and tiny values next to a kink: steps keep each element's sign
    ("leaky relu at tiny values", leaky_relu, leaky_relu_vjp,
     np.array([[1e-35, -3e-41, 2e-38, -1e-30]], np.float32)),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "f", "vjp", "x"), HARD, ids=[h[0] for h in HARD])
def test_correct_vjp_passes_on_hard_inputs(name: str, f: Callable[..., Any], vjp: Callable[..., Any],
                                            x: np.ndarray, seed: int) -> None:
    result = ri.check_vjp(f, vjp, inputs=[(x,)], seed=seed)
    assert result.ok, result.report()


@pytest.mark.parametrize(("name", "f", "vjp", "x"), HARD, ids=[h[0] for h in HARD])
def test_wrong_vjp_is_caught_on_hard_inputs(name: str, f: Callable[..., Any], vjp: Callable[..., Any],
                                            x: np.ndarray) -> None:
    # the same inputs with the gradient scaled by 1.01: a first-order error of 1 %
    def off(g: np.ndarray, x: np.ndarray) -> np.ndarray:
        return vjp(g, x) * x.dtype.type(1.01)

    result = ri.check_vjp(f, off, inputs=[(x,)], seed=0)
    assert not result.ok, result.report()
