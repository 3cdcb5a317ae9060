"""Who catches the catalog's bugs: ``check_vjp`` on torch and jax code as it is,
against ``torch.autograd.gradcheck`` (float64 and float32, default and
``fast_mode``), its mode checks (``gradgradcheck``, ``check_forward_ad``,
``check_batched_grad``, float64) and ``jax.test_util.check_grads`` (float64
and float32) on the same hand-written Functions and custom_vjps
(``parity_tests/frameworks/framework_catalog.py``).

Each case has a mode (``rev``, ``fwd``, ``order 2``, ``vmap``): ``check_vjp``
runs with that mode's options (``modes=("rev", "fwd")``, ``order=2``,
``batched=True``), ``gradcheck`` as its users write it (first order), the mode
check of gradcheck that corresponds (``check_forward_ad=True``,
``gradgradcheck``, ``check_batched_grad=True``; ``n/a`` for other modes), and
``check_grads`` with ``modes=("fwd", "rev")`` for ``fwd`` cases, ``order=2``
for ``order 2`` cases (it has no batched check). ``check_vjp`` draws its
inputs (``--examples`` per dtype, float32 and float64, each of ``--seeds``);
the anchors get one input as their users write it: each side of the case's
shape 3, values ``randn`` times the case's scale (1 where it has none), in the
anchor's dtype. A row says, per tool, ``caught`` or ``-`` and the seconds it
took; on a right case ``caught`` is a false alarm.

    PYTHONPATH=. python benchmarks/bench_frameworks.py [--examples 10] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax
import numpy as np
import torch
from jax.test_util import check_grads

import reference_impl as ri
from parity_tests.frameworks.framework_catalog import CORRECT, WRONG, Case

ANCHORS = ("gc64", "gc64 fast", "gc32", "gc32 fast", "gc mode", "cg64", "cg32")
MODE_CHECK = {"fwd": "check_forward_ad", "order 2": "gradgradcheck", "vmap": "check_batched_grad"}


def _anchor_inputs(case: Case, dtype: str, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _, arg in case.inputs.args:
        shape = tuple(s if isinstance(s, int) else 3 for s in arg.shape)
        scale = arg.scale if isinstance(arg.scale, (int, float)) else (arg.scale or (1.0,))[0] if arg.scale else 1.0
        out.append((rng.standard_normal(shape) * scale).astype(dtype))
    return out


def _caught(run: Callable[[], Any]) -> tuple[bool, float]:
    """``run`` raising (or returning False) is a catch."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gradcheck warns about float32 inputs
            ok = run()
    except Exception:  # the anchor's failure: a GradcheckError, an AssertionError, NaN it cannot compare
        ok = False
    return ok is False, time.perf_counter() - start


def _gradcheck(case: Case, dtype: str, fast: bool) -> tuple[bool, float] | None:
    if case.framework != "torch":
        return None
    xs = tuple(torch.tensor(x, requires_grad=True) for x in _anchor_inputs(case, dtype))
    return _caught(lambda: torch.autograd.gradcheck(case.fn, xs, fast_mode=fast))


def _gradcheck_mode(case: Case) -> tuple[bool, float] | None:
    """The gradcheck check of the case's mode, in float64: check_forward_ad, gradgradcheck, check_batched_grad."""
    if case.framework != "torch" or case.mode not in MODE_CHECK:
        return None
    xs = tuple(torch.tensor(x, requires_grad=True) for x in _anchor_inputs(case, "float64"))
    if case.mode == "order 2":
        return _caught(lambda: torch.autograd.gradgradcheck(case.fn, xs))
    flag = "check_forward_ad" if case.mode == "fwd" else "check_batched_grad"
    return _caught(lambda: torch.autograd.gradcheck(case.fn, xs, **{flag: True}))


def _check_grads(case: Case, dtype: str) -> tuple[bool, float] | None:
    if case.framework != "jax":
        return None
    xs = tuple(jax.numpy.asarray(x) for x in _anchor_inputs(case, dtype))
    order = 2 if case.mode == "order 2" else 1
    modes = ["fwd", "rev"] if case.mode == "fwd" else ["rev"]
    return _caught(lambda: check_grads(case.fn, xs, order=order, modes=modes))


def _ours(case: Case, seeds: tuple[int, ...], examples: int) -> tuple[bool, float]:
    start = time.perf_counter()
    options = {"max_examples": examples, **case.options}  # a case may ask for more examples than the default
    caught = [not ri.check_vjp(case.fn, inputs=case.inputs, seed=s, **options).ok for s in seeds]
    if len(set(caught)) > 1:
        print(f"  note: {case.name}: caught on seeds {[s for s, c in zip(seeds, caught) if c]} of {list(seeds)}")
    return all(caught) if case in WRONG else any(caught), (time.perf_counter() - start) / len(seeds)


def _cell(v: tuple[bool, float] | None) -> str:
    return "n/a" if v is None else f"{'caught' if v[0] else '-':>6} {v[1]:6.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10, help="check_vjp's examples per dtype (default 10)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds for check_vjp (default 0)")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    header = f"{'case':58} {'mode':>7} {'ours':>14} " + " ".join(f"{a:>14}" for a in ANCHORS)
    totals = {k: 0 for k in ("ours", *ANCHORS)}
    ran = {k: 0 for k in ("ours", *ANCHORS)}
    for title, cases in (("WRONG (caught = found the bug)", WRONG), ("RIGHT (caught = false alarm)", CORRECT)):
        print(f"\n{title}; check_vjp: {args.examples} examples per dtype, seeds {list(seeds)}\n{header}")
        for case in cases:
            cells = {"ours": _ours(case, seeds, args.examples),
                     "gc64": _gradcheck(case, "float64", False), "gc64 fast": _gradcheck(case, "float64", True),
                     "gc32": _gradcheck(case, "float32", False), "gc32 fast": _gradcheck(case, "float32", True),
                     "gc mode": _gradcheck_mode(case),
                     "cg64": _check_grads(case, "float64"), "cg32": _check_grads(case, "float32")}
            for k, v in cells.items():
                totals[k] += int(v is not None and v[0] == (case in WRONG))
            print(f"{case.name[:58]:58} {case.mode:>7} " + " ".join(f"{_cell(cells[k]):>14}"
                                                                     for k in ("ours", *ANCHORS)))
            for k, v in cells.items():
                ran[k] += int(v is not None)
    print(f"\ngc mode: {', '.join(f'{m} -> {c}' for m, c in MODE_CHECK.items())} (float64)")
    print("right verdicts (a wrong case caught, a right one passed), of the cases each tool ran: "
          + ", ".join(f"{a} {totals[a]}/{ran[a]}" for a in ("ours", *ANCHORS)))


if __name__ == "__main__":
    main()
