"""Accuracy and cost of the reference, measured against the truth.

Not a test: prints

1. the largest error in ulps against ball arithmetic (``reference_impl.frameworks.truth``)
   of the reference, torch and jax, per op, forward / VJP, dtype and named
   range (NaN or inf where the exact value is finite prints as ``nonfinite``);
2. the time of ``check_op`` with 100 examples beside
   ``torch.autograd.gradcheck(fast_mode=True)`` on the same inputs, per op
   and dtype, with torch's default thread count and with one thread, and
   the floor of any such check: drawing the inputs and one reference VJP
   on each;
3. the reference's forward + VJP time of two networks beside the same
   networks written as plain NumPy formulas.

Run: ``PYTHONPATH=. python benchmarks/bench_accuracy.py [--examples N] [--only gradcheck] [--decimal-fallback]``
(the last sets ``longdouble`` to plain double as on Windows and Apple silicon; no result depends on it).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import reference_impl as ri
from reference_impl import OPS
from reference_impl.dtypes import NAMES as DTYPE_NAMES
from reference_impl.dtypes import info, resolve
from reference_impl.frameworks import truth
from reference_impl.networks import MLP

RANGES: dict[str, Callable[[np.random.Generator, tuple[int, ...], np.dtype], np.ndarray]] = {
    "normal": lambda rng, s, dt: rng.standard_normal(s) * 3,
    "saturated": lambda rng, s, dt: np.where(rng.random(s) < 0.5, -1, 1) * rng.uniform(
        8, 800 if dt == np.float64 else 100, s),
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
        p = np.maximum(p / p.sum(-1, keepdims=True, dtype=np.float64), info(dtype).tiny).astype(dtype)
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


def ulp_table(samples: int, dtypes: tuple[str, ...] = DTYPE_NAMES) -> None:
    from reference_impl.frameworks.backends import get_backend

    backends = {"torch": get_backend("torch"), "jax": get_backend("jax")}
    print(f"max ulp vs the truth ({samples} random inputs per row)")
    print(f"{'op':24s} {'check':10s} {'dtype':8s} {'range':13s} {'reference':>10s} {'torch':>10s} {'jax':>10s}")
    for op in sorted(OPS):
        for dtype in (resolve(d) for d in dtypes):
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


# --------------------------------------------------------------------------- check_op beside gradcheck
#
# The two checks answer different questions. gradcheck compares the analytic
# gradient with central finite differences (fast mode: one random direction
# per input, a Jacobian-vector product against its finite-difference
# estimate, with fixed rtol/atol). check_op compares the user's VJP with the
# accurate reference under the error model of reference_impl.accuracy.ops,
# element by element, and also draws the inputs (hypothesis search). Both are
# timed on the same 100 inputs, same dtype, each with its own input handling:
# check_op's time includes drawing them, gradcheck's the conversion to torch
# tensors that require grad. Times are CPU time of this process
# (time.process_time): steadier than wall time on a shared machine.


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return np.asarray(e / e.sum(-1, keepdims=True))


def _user_sce_vjp(g: np.ndarray, z: np.ndarray, t: np.ndarray, reduction: str = "mean"
                  ) -> tuple[np.ndarray, np.ndarray]:
    rows = int(np.prod(z.shape[:-1], dtype=np.int64))
    scale = g / rows if reduction == "mean" else g
    shifted = z - z.max(-1, keepdims=True)
    log_s = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return scale * (np.exp(log_s) * t.sum(-1, keepdims=True) - t), -scale * log_s


def _user_dense_vjp(g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gf = g.reshape(-1, g.shape[-1])
    return g @ w.T, x.reshape(-1, x.shape[-1]).T @ gf, gf.sum(0)


def _user_softmax_vjp(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    s = _softmax_rows(x)
    return (s * (g - (g * s).sum(-1, keepdims=True)),)


def _user_sigmoid_vjp(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    e = np.exp(-np.abs(x))
    return (g * (e / ((1 + e) * (1 + e))),)


def _user_tanh_vjp(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    return (g * (1 - np.tanh(x) ** 2),)


USER_VJPS: dict[str, Callable[..., tuple[np.ndarray, ...]]] = {
    "tanh": _user_tanh_vjp, "sigmoid": _user_sigmoid_vjp, "softmax": _user_softmax_vjp,
    "dense": _user_dense_vjp, "softmax_cross_entropy": _user_sce_vjp}
"""The VJPs under test: plain NumPy formulas a user would write, stable
enough that every example passes (a failing check would shrink, timing the
shrinker instead of the check)."""


def _torch_function(op: str, params: dict[str, Any]) -> Callable[..., Any]:
    import torch
    import torch.nn.functional as F

    return {
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "softmax": lambda x: torch.softmax(x, dim=-1),
        "dense": lambda x, w, b: F.linear(x, w.T, b),
        "softmax_cross_entropy": lambda z, t: F.cross_entropy(
            z.reshape(-1, z.shape[-1]), t.reshape(-1, t.shape[-1]), reduction=params.get("reduction", "mean")),
    }[op]


def _drawn_examples(op: str, dtype: str, n: int, seed: int) -> list[Any]:
    """The inputs check_op draws with this seed: the same search (the same
    screen of examples), recording them."""
    from reference_impl.engine.search import search
    from reference_impl.strategies import Source, build_example
    from reference_impl.strategies import examples as draw_examples

    drawn: list[Any] = []

    def record(ex: Any) -> None:
        drawn.append(ex)

    def build(src: Source) -> Any:
        return build_example(src, op, dtype)

    search(draw_examples(op, dtype), record, max_examples=n, seed=seed, screen=build)
    return drawn


def _time_gradcheck(op: str, drawn: list[Any]) -> tuple[float, int]:
    """Seconds, and how many inputs gradcheck passed (in float32 its finite
    differences are too coarse for its default tolerances)."""
    import torch

    passed = 0
    t0 = time.process_time()
    for ex in drawn:
        args = tuple(torch.tensor(x, requires_grad=True) for x in ex.inputs)
        passed += torch.autograd.gradcheck(_torch_function(op, ex.params), args, fast_mode=True,
                                           raise_exception=False)
    return time.process_time() - t0, passed


def _time_floor(op: str, dtype: str, n: int, seed: int, repeats: int) -> tuple[float, float]:
    """Seconds of the two costs every ``check_op`` of these inputs pays
    before any tolerance or comparison: drawing the ``n`` examples (the
    screen's builder) and one evaluation of the reference VJP on each, in
    the wider format the guarantee needs. gradcheck's time divided by their
    sum is the largest ratio any check that keeps them could reach."""
    from reference_impl.oracle.controls import reference_inputs

    t_draw = float("inf")
    drawn: list[Any] = []
    for _ in range(repeats):
        t0 = time.process_time()
        drawn = _drawn_examples(op, dtype, n, seed)
        t_draw = min(t_draw, time.process_time() - t0)
    t_ref = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for ex in drawn:
            OPS[op].vjp(ex.cotangent, *reference_inputs(op, ex.inputs), **ex.params)
        t_ref = min(t_ref, time.process_time() - t0)
    return t_draw, t_ref


def _time_check_op(op: str, dtype: str, n: int, seed: int) -> tuple[float, bool]:
    t0 = time.process_time()
    res = ri.check_op(op, vjp=USER_VJPS[op], dtypes=(dtype,), max_examples=n, seed=seed)
    return time.process_time() - t0, res.ok


def oracle_vs_gradcheck(examples: int, repeats: int = 3) -> None:
    """Best of ``repeats`` for each, after one warm-up call of each (imports,
    hypothesis' first scan of the source, torch's first autograd call).
    gradcheck runs with torch's default thread count, then with one thread:
    on these small inputs its thread pool's synchronisation can cost more
    than the arithmetic, so the one-thread column is the steadier baseline."""
    import torch

    threads = torch.get_num_threads()
    print(f"\ncheck_op(op, vjp=..., {examples} examples) beside torch.autograd.gradcheck(fast_mode=True) on the "
          f"same drawn inputs, best of {repeats} (s); gradcheck: finite differences, check_op: the reference "
          "under the error model")
    print("floor: drawing the inputs plus one reference VJP per input (the wider format), the part of check_op "
          "that stays whatever the comparison costs; max ratio = gc 1 thr / floor, the best any such check reaches")
    print(f"{'op':24s} {'dtype':8s} {'check_op':>9s} {'ok':>5s} {'gc ' + str(threads) + ' thr':>9s} "
          f"{'ratio':>6s} {'gc 1 thr':>9s} {'ratio':>6s} {'gc passed':>9s} {'draw':>7s} {'ref vjp':>7s} "
          f"{'max ratio':>9s}")
    for op in USER_VJPS:
        for dtype in ("float64", "float32"):
            _time_check_op(op, dtype, 5, seed=1)
            best = min(_time_check_op(op, dtype, examples, seed=0) for _ in range(repeats))
            row = f"{op:24s} {dtype:8s} {best[0]:9.3f} {best[1]!s:>5s}"
            if dtype != "float64":
                # gradcheck needs double precision: in float32 its finite differences fail most inputs, and
                # each failure recomputes the whole Jacobian to report it
                print(f"{row} {'-':>9s} {'-':>6s} {'-':>9s} {'-':>6s} {'-':>9s}")
                continue
            drawn = _drawn_examples(op, dtype, examples, seed=0)
            _time_gradcheck(op, drawn[:5])
            t_gc, passed = min(_time_gradcheck(op, drawn) for _ in range(repeats))
            torch.set_num_threads(1)
            t_gc1, _ = min(_time_gradcheck(op, drawn) for _ in range(repeats))
            torch.set_num_threads(threads)
            t_draw, t_ref = _time_floor(op, dtype, examples, 0, repeats)
            print(f"{row} {t_gc:9.3f} {t_gc / best[0]:6.2f} {t_gc1:9.3f} {t_gc1 / best[0]:6.2f} "
                  f"{passed:>5d}/{len(drawn)} {t_draw:7.3f} {t_ref:7.3f} {t_gc1 / (t_draw + t_ref):9.2f}", flush=True)


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
    parser.add_argument("--dtypes", default=",".join(DTYPE_NAMES), help="the ulp table's dtypes (default: all four)")
    parser.add_argument("--only", choices=("ulp", "gradcheck", "networks"), help="print one section")
    parser.add_argument("--decimal-fallback", action="store_true",
                        help="compute float64 as where longdouble is plain double (Windows, Apple silicon)")
    args = parser.parse_args()
    if args.decimal_fallback:
        from reference_impl import wide

        wide._LONG = np.float64
    if args.only in (None, "ulp"):
        ulp_table(args.samples, tuple(v.strip() for v in args.dtypes.split(",") if v.strip()))
    if args.only in (None, "gradcheck"):
        oracle_vs_gradcheck(args.examples)
    if args.only in (None, "networks"):
        network_timing(args.repeats)


if __name__ == "__main__":
    main()
