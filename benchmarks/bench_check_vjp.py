"""Per-check time of ``check_vjp`` against ``torch.autograd.gradcheck``
(``fast_mode`` True and False) and ``jax.test_util.check_grads``, on the same
functions and the same float64 inputs.

One "check" is one input: ``check_vjp`` is given a one-example list in
float64 (Taylor order, adjoint test, contract); torch and jax check their own
autograd of the same array-API source at that input. A second column gives
``check_vjp``'s time per input over a default search (25 drawn inputs per
dtype, float32 and float64, float32 also compared with float64).
Ratios are against ``torch.autograd.gradcheck`` (full) in the same run.

    PYTHONPATH=. python benchmarks/bench_check_vjp.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import array_api_compat
import numpy as np

import reference_impl as ri


def logsumexp(x: Any) -> Any:
    xp = array_api_compat.array_namespace(x)
    m = xp.max(x, axis=-1, keepdims=True)
    return m[..., 0] + xp.log(xp.sum(xp.exp(x - m), axis=-1))


def logsumexp_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return g[..., None] * e / e.sum(axis=-1, keepdims=True)


def layer_norm(x: Any) -> Any:
    xp = array_api_compat.array_namespace(x)
    xc = x - xp.mean(x, axis=-1, keepdims=True)
    return xc / xp.sqrt(xp.mean(xc * xc, axis=-1, keepdims=True) + 1e-5)


def layer_norm_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    inv = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + 1e-5)
    xhat = xc * inv
    return inv * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))


def softplus(x: Any) -> Any:
    xp = array_api_compat.array_namespace(x)
    return xp.maximum(x, 0.0 * x) + xp.log1p(xp.exp(-xp.abs(x)))


def softplus_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return g * np.where(x >= 0, 1 / (1 + e), e / (1 + e))


CASES: list[tuple[str, Callable[[Any], Any], Callable[..., Any], tuple[int, ...]]] = [
    ("logsumexp", logsumexp, logsumexp_vjp, (8, 10)),
    ("logsumexp", logsumexp, logsumexp_vjp, (32, 64)),
    ("layer_norm", layer_norm, layer_norm_vjp, (8, 16)),
    ("layer_norm", layer_norm, layer_norm_vjp, (32, 64)),
    ("softplus", softplus, softplus_vjp, (16, 16)),
    ("softplus", softplus, softplus_vjp, (64, 64)),
]


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    fn()  # warm up (imports, jax compilation)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    import jax
    import torch
    from jax.test_util import check_grads

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    head = (f"{'function':<11} {'shape':<9} {'check_vjp':>10} {'per input':>10} {'torch full':>11} "
            f"{'torch fast':>11} {'jax':>9}   ratios to torch full (check_vjp, fast, jax)")
    print(head)
    print("-" * len(head))
    for name, f, vjp, shape in CASES:
        x = rng.standard_normal(shape) * 3.0
        ours = _best(lambda f=f, vjp=vjp, x=x: ri.check_vjp(f, vjp, inputs=[(x,)], dtypes=("float64",),
                                                             seed=0).raise_if_failed())
        n = 25
        t0 = time.perf_counter()
        searched = ri.check_vjp(f, vjp, inputs=ri.Inputs(x=ri.Arg("real", shape=shape)), max_examples=n, seed=0)
        per_input = (time.perf_counter() - t0) / max(searched.examples, 1)
        assert searched.ok, searched.report()
        xt = torch.tensor(x, requires_grad=True)
        full = _best(lambda f=f, xt=xt: torch.autograd.gradcheck(f, (xt,), fast_mode=False))
        fast = _best(lambda f=f, xt=xt: torch.autograd.gradcheck(f, (xt,), fast_mode=True))
        xj = jnp.asarray(x)
        jx = _best(lambda f=f, xj=xj: check_grads(f, (xj,), order=1, modes=["rev"]))
        print(f"{name:<11} {shape!s:<9} {ours * 1e3:>8.1f}ms {per_input * 1e3:>8.1f}ms {full * 1e3:>9.1f}ms "
              f"{fast * 1e3:>9.1f}ms {jx * 1e3:>7.1f}ms   {ours / full:.3g}, {fast / full:.3g}, {jx / full:.3g}")


if __name__ == "__main__":
    main()
