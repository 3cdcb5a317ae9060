"""The adjoint test's two error models, side by side on the registered ops.

For every op (float64 by default), on the inputs the suite draws, along the
same directions: the a-priori model the engine uses for ops and networks
(``engine.adjoint.op_adjoint``: two central differences, truncation by
Richardson, an a-priori bound on every evaluation of ``f`` and on the VJP)
and the measured model ``check_vjp`` uses for user code
(``engine.adjoint.adjoint_test``: Ridders' tableau from several starting
steps, the measured rounding floor of ``phi``), given the same a-priori
bound of the VJP as its ``noise``. Each runs on the reference's own VJP (a
failure is a false alarm) and on that VJP scaled by ``1 + eps`` (a failure
is a detection). Prints, per op, the false alarms, the detections at each
``eps`` and the median tolerance relative to ``|<u, VJP(v)>|``.

    python benchmarks/bench_adjoint.py [--examples 100] [--seed 0] [--dtype float64]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np
from bench_accuracy import _drawn_examples  # the inputs check_op draws, by the same screen

from reference_impl import OPS
from reference_impl.accuracy.ops import vjp_bound
from reference_impl.engine.adjoint import adjoint_test, op_adjoint
from reference_impl.engine.differences import rounding_floor
from reference_impl.frameworks.recipes import SPECS

EPS = (1e-4, 1e-7, 1e-10)
WORK_U = 2.0**-53


def _a_priori(op: str, ex: Any, grads: Any, seed: int) -> tuple[bool, float]:
    out = op_adjoint(ex, seed, vjp=lambda *a, **k: grads)
    return out.ok, out.tolerance / max(abs(out.ours), 1e-300)


def _measured(op: str, ex: Any, grads: Any, seed: int) -> tuple[bool, float]:
    """``adjoint_test`` along ``op_adjoint``'s direction, ``phi`` in float64,
    the VJP's a-priori bound along ``u`` as the noise of ``<VJP(v), u>``."""
    impl, params = OPS[op].impl, ex.params
    rng = np.random.default_rng(seed)
    x = tuple(a.astype(np.float64) for a in ex.inputs)
    spec = SPECS[op]
    dirs = spec.fd_direction(x, rng) if spec.fd_direction else tuple(rng.standard_normal(a.shape) for a in x)
    v = np.asarray(ex.cotangent, np.float64)
    g64 = [np.asarray(g, np.float64) for g in grads]
    bounds = [b.tolerance(ex.dtype) / 2 for b in vjp_bound(op, ex.cotangent, ex.inputs, params)]

    def phi(t: float) -> float:
        return float(np.sum(v * np.asarray(impl(*(a + t * d for a, d in zip(x, dirs)), **params), np.float64)))

    ours = sum(float(np.sum(g * d)) for g, d in zip(g64, dirs))
    terms = sum(float(np.sum(np.abs(g * d))) for g, d in zip(g64, dirs))
    noise = sum(float(np.sum(np.abs(d) * np.asarray(b, np.float64))) for d, b in zip(dirs, bounds))
    f0 = np.asarray(impl(*x, **params), np.float64)
    magnitude = float(np.sum(np.abs(v * f0))) + sum(float(np.sum(np.abs(a * g))) for a, g in zip(x, g64))
    floor = rounding_floor(lambda t: (phi(t), t * ours), float(np.sum(v * f0)), magnitude, WORK_U)
    out = adjoint_test(phi, ours, terms, floor, WORK_U, noise)
    return out.ok, out.tolerance / max(abs(ours), 1e-300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    args = parser.parse_args()
    head = ["op", "model", "false alarms", *(f"caught eps={e:g}" for e in EPS), "median tol/|<u,g>|"]
    print(" | ".join(head))
    totals: dict[str, list[int]] = {"a priori": [0] * (2 + len(EPS)), "measured": [0] * (2 + len(EPS))}
    for op in sorted(OPS):
        drawn = _drawn_examples(op, args.dtype, args.examples, args.seed)
        rows: dict[str, list[Any]] = {"a priori": [0, [0] * len(EPS), []], "measured": [0, [0] * len(EPS), []]}
        for k, ex in enumerate(drawn):
            grads = OPS[op].vjp(ex.cotangent, *ex.inputs, **ex.params)
            for name, test in (("a priori", _a_priori), ("measured", _measured)):
                with np.errstate(all="ignore"):
                    ok, rel = test(op, ex, grads, args.seed + k)
                    rows[name][0] += int(not ok)
                    rows[name][2].append(rel)
                    for j, eps in enumerate(EPS):
                        bad = tuple(np.asarray(g) * (1 + eps) for g in grads)
                        rows[name][1][j] += int(not test(op, ex, bad, args.seed + k)[0])
        for name, (alarms, caught, rels) in rows.items():
            finite = [r for r in rels if np.isfinite(r)]
            median = statistics.median(finite) if finite else float("nan")
            print(" | ".join([op, name, f"{alarms}/{len(drawn)}", *(f"{c}/{len(drawn)}" for c in caught),
                              f"{median:.2e}"]))
            totals[name][0] += alarms
            totals[name][1] += len(drawn)
            for j, c in enumerate(caught):
                totals[name][2 + j] += c
    for name, t in totals.items():
        print(f"all ops | {name} | false alarms {t[0]}/{t[1]} | " +
              " | ".join(f"caught eps={e:g}: {c}/{t[1]}" for e, c in zip(EPS, t[2:])))


if __name__ == "__main__":
    main()
