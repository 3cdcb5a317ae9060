"""Examples per second of the parity checks, per backend (not a test).

    python benchmarks/bench_parity.py [--examples 100] [--ops softmax,dense]

For each op and dtype it draws examples with the suite's own strategies and
times, per example, the reference (forward + VJP), torch (forward + VJP with
autograd) and jax (jit-compiled forward + VJP) separately. JAX is measured
twice: with shapes from the palette, as the suite draws them, and with free
shapes, where every new shape costs a compilation. Ratios are against torch
in the same run, so they hold on any machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl import OPS
from reference_impl.frameworks.backends import get_backend
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import examples


def measure(op: str, dtype: type, n: int, shapes: str, backends: tuple[str, ...]) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    count = [0]

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: st.DataObject) -> None:
        ex = data.draw(examples(op, dtype, shapes=shapes))
        count[0] += 1
        for name in backends:
            t0 = time.perf_counter()
            if name == "reference":
                OPS[op].forward(*ex.inputs, **ex.params)
                OPS[op].vjp(ex.cotangent, *ex.inputs, **ex.params)
            else:
                b = get_backend(name)
                b.forward(op, ex.inputs, ex.params)
                b.vjp(op, ex.cotangent, ex.inputs, ex.params)
            spent[name] += time.perf_counter() - t0

    run()
    return {k: count[0] / v for k, v in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--ops", default=",".join(sorted(SPECS)))
    ap.add_argument("--dtypes", default="float32,float64")
    args = ap.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    unknown = set(ops) - set(SPECS)
    if unknown:
        ap.error(f"--ops: unknown {sorted(unknown)}; known: {sorted(SPECS)}")
    rows = []
    totals: dict[str, list[float]] = defaultdict(list)
    for op in ops:
        for dt in args.dtypes.split(","):
            dtype = np.dtype(dt).type
            free = measure(op, dtype, args.examples, "free", ("reference", "torch", "jax"))
            pal = measure(op, dtype, args.examples, "palette", ("jax",))
            r = {"reference": free["reference"], "torch": free["torch"], "jax (palette)": pal["jax"],
                 "jax (free shapes)": free["jax"]}
            for k, v in r.items():
                totals[k].append(v)
            rows.append((op, dt, r))
    cols = ["reference", "torch", "jax (palette)", "jax (free shapes)"]
    print(f"examples/second, {args.examples} examples per op and dtype (forward + VJP per example)")
    print(f"{'op':24s}{'dtype':9s}" + "".join(f"{c:>19s}" for c in cols))
    for op, dt, r in rows:
        print(f"{op:24s}{dt:9s}" + "".join(f"{r[c]:19.1f}" for c in cols))
    geo = {c: float(np.exp(np.mean(np.log(totals[c])))) for c in cols}
    print(f"{'geometric mean':33s}" + "".join(f"{geo[c]:19.1f}" for c in cols))
    print("ratio to torch (same run): " + ", ".join(f"{c} {geo[c] / geo['torch']:.2f}x" for c in cols))


if __name__ == "__main__":
    main()
