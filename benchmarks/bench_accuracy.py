"""Accuracy and cost of the reference, measured against the truth.

Not a test: prints

1. the largest error in ulps against ball arithmetic (``reference_impl.truth``)
   of the reference, torch and jax, per op, forward / VJP, dtype and named
   range (NaN or inf where the exact value is finite prints as ``nonfinite``);
2. the time of ``check_op`` with 100 examples beside
   ``torch.autograd.gradcheck(fast_mode=True)`` on the same inputs;
3. the reference's forward + VJP time of two networks beside the same
   networks written as plain NumPy formulas.

Run: ``PYTHONPATH=. python benchmarks/bench_accuracy.py [--examples N]``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import reference_impl as ri
from reference_impl import OPS, truth
from reference_impl.networks import MLP

RANGES: dict[str, Callable[[np.random.Generator, tuple[int, ...], np.dtype], np.ndarray]] = {
    "normal": lambda rng, s, dt: rng.standard_normal(s) * 3,
    "saturated": lambda rng, s, dt: np.where(rng.random(s) < 0.5, -1, 1) * rng.uniform(
        8, 100 if dt == np.float32 else 800, s),
    "large logits": lambda rng, s, dt: rng.standard_normal(s) * 1e3 + 1e3,
    "near one-hot": lambda rng, s, dt: rng.standard_normal(s) + np.where(np.arange(s[-1]) == 0, 40.0, 0.0),
}
ROW_OPS = {"softmax", "softmax_cross_entropy"}


def _inputs(op: str, rng: np.random.Generator, rng_name: str, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    draw = RANGES[rng_name]
    shapes = {"add": ((6, 5), (5,)), "multiply": ((6, 5), (1, 5)), "matmul": ((6, 8), (8, 5)),
              "dense": ((6, 8), (8, 5), (5,)), "mse": ((6, 5), (6, 5)), "cross_entropy": ((6, 5), (6, 5)),
              "softmax_cross_entropy": ((6, 5), (6, 5))}.get(op, ((6, 5),))
    if op == "cross_entropy":
        z = draw(rng, shapes[0], dtype)
        p = np.exp(z - z.max(-1, keepdims=True))
        p = (p / p.sum(-1, keepdims=True)).astype(dtype)
        p = np.maximum(p / p.sum(-1, keepdims=True, dtype=np.float64), np.finfo(dtype).tiny).astype(dtype)
        t = np.zeros(shapes[1], dtype)
        t[:, 1] = 1
        return p, t
    xs = [np.asarray(draw(rng, s, dtype), dtype=dtype) for s in shapes]
    if op == "softmax_cross_entropy":
        t = np.zeros(shapes[1], dtype)
        t[:, 0] = 1
        xs[1] = t
    return tuple(xs)


def _applicable(op: str, name: str) -> bool:
    return name == "normal" or (name == "saturated" and op in ("tanh", "sigmoid")) or (
        name in ("large logits", "near one-hot") and op in ROW_OPS)


def _fmt(v: float) -> str:
    return "nonfinite" if not np.isfinite(v) else f"{v:.3g}"


def ulp_table(samples: int) -> None:
    from reference_impl.frameworks.backends import get_backend

    backends = {"torch": get_backend("torch"), "jax": get_backend("jax")}
    print(f"max ulp vs the truth ({samples} random inputs per row)")
    print(f"{'op':24s} {'check':10s} {'dtype':8s} {'range':13s} {'reference':>10s} {'torch':>10s} {'jax':>10s}")
    for op in sorted(OPS):
        for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
            for name in RANGES:
                if not _applicable(op, name):
                    continue
                worst: dict[tuple[str, str], float] = {}
                rng = np.random.default_rng(0)
                for _ in range(samples):
                    xs = _inputs(op, rng, name, dtype)
                    spec = OPS[op]
                    out = spec.forward(*xs)
                    g = np.asarray(rng.standard_normal(out.shape), dtype=dtype)
                    t_fwd = truth.forward(op, xs)
                    t_vjp = truth.vjp(op, g, xs)
                    results = {"reference": (out, spec.vjp(g, *xs))}
                    for bname, b in backends.items():
                        o, gr = b.vjp(op, g, xs, {})
                        results[bname] = (np.asarray(o), tuple(np.asarray(v) for v in gr))
                    for who, (o, grads) in results.items():
                        key = ("forward", who)
                        worst[key] = max(worst.get(key, 0.0), float(np.max(t_fwd.ulp_error(o))))
                        for argname, gv, tv in zip(spec.arg_names, grads, t_vjp):
                            key = (f"vjp[{argname}]", who)
                            worst[key] = max(worst.get(key, 0.0), float(np.max(tv.ulp_error(gv))) if gv.size else 0.0)
                for check in dict.fromkeys(k[0] for k in worst):
                    row = [_fmt(worst[(check, w)]) for w in ("reference", "torch", "jax")]
                    print(f"{op:24s} {check:10s} {dtype.name:8s} {name:13s} {row[0]:>10s} {row[1]:>10s} {row[2]:>10s}")


def oracle_vs_gradcheck(examples: int) -> None:
    import torch

    from reference_impl.strategies import examples as draw_examples

    def tanh_vjp(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        return (g * (1 - np.tanh(x) ** 2),)

    t0 = time.perf_counter()
    res = ri.check_op("tanh", vjp=tanh_vjp, dtypes=("float64",), max_examples=examples, seed=0)
    t_oracle = time.perf_counter() - t0
    # gradcheck on the very inputs the oracle drew: replay the same search
    drawn: list[Any] = []
    from hypothesis import given, settings

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None)
    @given(draw_examples("tanh", np.float64))
    def collect(ex: Any) -> None:
        drawn.append(ex.inputs[0])

    collect()
    t0 = time.perf_counter()
    for x in drawn[:examples]:
        xt = torch.tensor(x, requires_grad=True)
        torch.autograd.gradcheck(torch.tanh, (xt,), fast_mode=True)
    t_gc = time.perf_counter() - t0
    print(f"\ncheck_op('tanh', vjp=..., float64, {examples} examples): {t_oracle:.3f} s (ok={res.ok}); "
          f"torch.autograd.gradcheck(fast_mode=True) on {len(drawn[:examples])} drawn inputs: {t_gc:.3f} s; "
          f"ratio gradcheck/check_op = {t_gc / t_oracle:.2f}")


def _plain_value_and_grad(params: Any, x: np.ndarray, t: np.ndarray, acts: tuple[str, ...]) -> Any:
    zs, a_s = [], [x]
    a = x
    for (w, b), act in zip(params, acts):
        z = a @ w + b
        a = np.maximum(z, 0) if act == "relu" else (np.tanh(z) if act == "tanh" else z)
        zs.append(z)
        a_s.append(a)
    e = np.exp(a - a.max(-1, keepdims=True))
    s = e / e.sum(-1, keepdims=True)
    loss = -(t * np.log(s)).sum() / len(x)
    d = (s - t) / len(x)
    grads = []
    for l in range(len(params) - 1, -1, -1):
        act = acts[l]
        dz = d * ((zs[l] > 0) if act == "relu" else (1 - a_s[l + 1] ** 2 if act == "tanh" else 1))
        grads.append((a_s[l].T @ dz, dz.sum(0)))
        d = dz @ params[l][0].T
    return loss, grads[::-1]


def network_timing(repeats: int) -> None:
    print()
    for sizes, acts, batch in (((2, 4, 4, 3), ("relu", "tanh", "identity"), 1),
                               ((128, 256, 256, 10), ("relu", "tanh", "identity"), 64)):
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            net = MLP(sizes, acts, cost="cross_entropy", softmax=True)
            params = tuple((np.asarray(rng.standard_normal((i, o)) / np.sqrt(i), dtype),
                            np.asarray(rng.standard_normal(o) * 0.1, dtype)) for i, o in itertools.pairwise(sizes))
            x = np.asarray(rng.standard_normal((batch, sizes[0])), dtype)
            t = np.zeros((batch, sizes[-1]), dtype)
            t[:, 0] = 1
            timings = {}
            runs: tuple[tuple[str, Callable[[], Any]], ...] = (
                ("reference", lambda net=net, params=params, x=x, t=t: net.value_and_grad(params, x, t)),
                ("plain", lambda params=params, x=x, t=t, acts=acts: _plain_value_and_grad(params, x, t, acts)))
            for name, fn in runs:
                fn()
                t0 = time.perf_counter()
                for _ in range(repeats):
                    fn()
                timings[name] = (time.perf_counter() - t0) / repeats
            print(f"net {'-'.join(map(str, sizes))} batch {batch} {np.dtype(dtype).name}: reference forward+VJP "
                  f"{timings['reference'] * 1e3:.3f} ms, plain formulas {timings['plain'] * 1e3:.3f} ms, "
                  f"ratio {timings['reference'] / timings['plain']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="random inputs per row of the ulp table")
    parser.add_argument("--examples", type=int, default=100, help="check_op examples for the gradcheck comparison")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    ulp_table(args.samples)
    oracle_vs_gradcheck(args.examples)
    network_timing(args.repeats)


if __name__ == "__main__":
    main()
