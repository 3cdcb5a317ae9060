"""``python -m reference_impl certify``: certify the reference on this machine.

Runs, in this process, the checks the parity suite runs -- with the same
hypothesis strategies, framework adapters and error model -- and prints one
row per subject, backend and dtype:

* every op of ``OPS`` against torch (``torch.autograd.grad``), jax
  (``jax.vjp``) and central finite differences in float64 (the adjoint test
  of ``parity_tests/test_adjoint.py``), forward and VJP, float32 and float64;
* every network preset of the documents and random architectures against
  torch (``nn.Linear`` + autograd), jax (``jax.grad``) and finite differences
  of the loss, and gradient descent against ``torch.optim.SGD`` and
  ``optax.sgd``;
* every golden fixture, replayed through the reference, torch and jax
  against the documents' printed numbers.

Convention differences (``parity_tests.spec.CONVENTIONS``) are listed as
conventions, not failures. ``--json`` and ``--markdown`` write a certificate
with the versions of Python, NumPy, torch, jax and hypothesis, the platform,
the seed and the profile; ``--baseline OLD.json`` ranks what moved since an
earlier certificate.

Exit codes: 0 everything agrees, 1 a disagreement, 2 a usage or environment
problem (an unknown op, a backend that is not installed, an unreadable baseline).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["main", "run", "CertRow", "Certificate", "Progress", "SECTIONS", "BACKEND_CHOICES", "compare_baseline"]

SECTIONS = ("ops", "networks", "golden")
BACKEND_CHOICES = ("torch", "jax", "fd")
"""``fd``: central finite differences in float64 (framework-free)."""
FORMAT_VERSION = 1
SGD_STEPS = 3
SGD_RATES = (0.01, 0.1, 1.0)
JAX_PRESET_BATCHES = (1, 3)
"""Batches the JAX rows of the presets draw from: jax compiles once per shape."""


class UsageError(Exception):
    """A usage or environment problem: exit code 2, with this message."""


# =========================================================================== progress


class Progress:
    """A progress bar on ``stream`` (stderr): redrawn in place on a terminal
    at most ten times a second; on a log (CI), one line per finished row and
    a line every ``heartbeat`` seconds inside a long row."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, heartbeat: float = 15.0,
                 width: int = 24) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat = heartbeat
        self.width = width
        self.done = 0
        self.label = ""
        self.examples = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_line = self.start

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60:02d}:{s % 60:02d}"

    def begin(self, label: str) -> None:
        self.label, self.examples = label, 0
        self._draw(force=True)

    def tick(self) -> None:
        """One more example in the current row."""
        self.examples += 1
        self._draw()

    def finish(self, status: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            self._draw(force=True)
        else:
            self.stream.write(f"[{self.done}/{self.total} {self._elapsed()}] {self.label}: {status} "
                              f"({self.examples} examples)\n")
            self.stream.flush()
            self._last_line = time.monotonic()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last_draw < 0.1:
                return
            filled = int(self.width * self.done / self.total)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r[{bar}] {self.done}/{self.total} {self._elapsed()}  {self.label}  ({self.examples} examples)"
            self.stream.write(text[:160].ljust(100))
            self.stream.flush()
            self._last_draw = now
        elif now - self._last_line >= self.heartbeat:
            self.stream.write(f"[{self.done}/{self.total} {self._elapsed()}] {self.label}: still running "
                              f"({self.examples} examples so far)\n")
            self.stream.flush()
            self._last_line = now


# =========================================================================== rows


@dataclass
class CertRow:
    """One row of the certificate."""

    section: str
    """``op``, ``network``, ``sgd``, ``golden``."""
    subject: str
    backend: str
    """``torch``, ``jax``, ``fd`` (finite differences) or ``reference`` (golden replays)."""
    dtype: str
    status: str = "pass"
    """``pass``, ``fail``, ``error`` (the check itself crashed; the traceback
    is in ``detail``) or ``skip`` (with the reason in ``detail``)."""
    examples: int = 0
    worst_abs_error: float = 0.0
    worst_rel_error: float = float("nan")
    worst_ulp_error: float = float("nan")
    worst_ratio: float = 0.0
    """Largest error / tolerance (<= 1 passes)."""
    tolerance: float = float("nan")
    """The tolerance where the ratio is largest."""
    model: str = ""
    detail: str = ""
    """The failure with its shrunk counterexample, or why the row was skipped."""
    seconds: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.section, self.subject, self.backend, self.dtype)

    def absorb(self, comp: Any, actual: Any, expected: Any, tolerance: Any) -> None:
        """Fold one comparison (``tolerances.Comparison``) into the row's worst values."""
        from .oracle import error_measures

        if comp.mismatch:
            self.worst_abs_error = self.worst_ratio = float("inf")
            self.model = comp.mismatch
            return
        a, r, u = error_measures(actual, expected, tolerance, comp_dtype(actual))
        self._worst(a, r, u, comp.ratio, comp.tolerance, comp.model)

    def _worst(self, abs_err: float, rel: float, ulp: float, ratio: float, tol: float, model: str) -> None:
        self.worst_abs_error = max(self.worst_abs_error, abs_err)
        if not math.isnan(rel):
            self.worst_rel_error = rel if math.isnan(self.worst_rel_error) else max(self.worst_rel_error, rel)
        if not math.isnan(ulp):
            self.worst_ulp_error = ulp if math.isnan(self.worst_ulp_error) else max(self.worst_ulp_error, ulp)
        if ratio > self.worst_ratio or math.isnan(self.tolerance):
            self.worst_ratio, self.tolerance, self.model = ratio, tol, model

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def jsonable(obj: Any) -> Any:
    """``obj`` with every non-finite float as a string ("inf", "nan"):
    JSON has neither, and a ratio of inf (a shape mismatch) must stay readable."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def comp_dtype(a: Any) -> np.dtype:
    return np.asarray(a).dtype


# =========================================================================== the plan


@dataclass
class Settings:
    backends: tuple[str, ...]
    ops: tuple[str, ...]
    sections: tuple[str, ...]
    max_examples: int
    seed: int
    profile: str
    dtypes: tuple[str, ...] = ("float32", "float64")


@dataclass
class Task:
    """One row to compute: its key and the function that computes it."""

    section: str
    subject: str
    backend: str
    dtype: str
    run: Callable[[Progress], CertRow]

    @property
    def label(self) -> str:
        against = "finite differences" if self.backend == "fd" else self.backend
        return f"{self.section} {self.subject} vs {against} {self.dtype}"


def _search(strategy: Any, evaluate: Callable[[Any], Any], settings: Settings, progress: Progress,
            row: CertRow) -> CertRow:
    """Run the search of :func:`reference_impl.oracle.search` for one row and
    fill its status and counterexample."""
    from .oracle import search

    def counted(example: Any) -> Any:
        row.examples += 1
        return evaluate(example)

    start = time.monotonic()
    finding, flaky, problem = search(strategy, counted, max_examples=settings.max_examples, seed=settings.seed,
                                     on_example=progress.tick)
    row.seconds = time.monotonic() - start
    if problem:
        row.status, row.detail = "skip", problem
    elif finding is not None:
        row.status = "fail"
        row.detail = finding.counterexample(row.dtype, flaky).describe() + "\n  " + _reproduce(row, settings)
    return row


def _reproduce(row: CertRow, s: Settings) -> str:
    parts = ["python -m reference_impl certify", f"--backends {row.backend}", f"--seed {s.seed}",
             f"--max-examples {s.max_examples}"]
    if row.section == "op":
        parts.insert(1, f"--ops {row.subject}")
    else:
        parts.insert(1, f"--sections {'networks' if row.section in ('network', 'sgd') else 'golden'}")
    return "reproduce: " + " ".join(parts)


# ------------------------------------------------------------------ ops


def _op_backend_task(op: str, backend: str, dt: str, s: Settings) -> Task:
    def run(progress: Progress) -> CertRow:
        from parity_tests.backends import get_backend
        from parity_tests.spec import SPECS

        from . import tolerances
        from .ops import OPS
        from .oracle import Finding
        from .strategies import examples

        be = get_backend(backend)
        spec = OPS[op]
        override = SPECS[op].override.get(backend)
        factor, note = (1.0, "")
        if override:
            factor, note = override.factor, f" (override x{override.factor}: {override.reason})"
        row = CertRow("op", op, backend, dt)

        def evaluate(ex: Any) -> Finding | None:
            dtype = ex.dtype
            arrays = {"cotangent": ex.cotangent, **dict(zip(spec.arg_names, ex.inputs))}
            call = f"{backend}'s own {op} and autograd (parity_tests/spec.py, parity_tests/backends.py)"

            def finding(check: str, message: str, kind: str = "disagreement") -> Finding:
                return Finding(check, backend, kind, message, call, ex.describe(),
                               {k: v.copy() for k, v in arrays.items()})

            ours = spec.forward(*ex.inputs, **ex.params)
            our_grads = spec.vjp(ex.cotangent, *ex.inputs, **ex.params)
            try:
                out, grads = be.vjp(op, ex.cotangent, ex.inputs, ex.params)
            except Exception as e:  # a framework failing on a valid input is a finding about it
                return finding("forward", f"{backend} raised {type(e).__name__}: {e}", "backend error")
            checks = [("forward", ours, out, tolerances.forward_bound(op, ex.inputs, ex.params))]
            bounds = tolerances.vjp_bound(op, ex.cotangent, ex.inputs, ex.params)
            checks += [(f"VJP w.r.t. '{n}'", m, t, b) for n, m, t, b in zip(spec.arg_names, our_grads, grads, bounds)]
            first = None
            for check, mine, theirs, bound in checks:
                theirs = np.asarray(theirs)
                tol = bound.tolerance(dtype, factor)
                # theirs is the side whose dtype is in question: a framework that
                # silently computes float64 in float32 fails here
                comp = tolerances.compare(theirs, mine, tol, dtype, bound.model + note)
                row.absorb(comp, theirs, mine, tol)
                if not comp.ok and first is None:
                    first = finding(check, f"{check} of op '{op}' disagrees with {backend}: {comp.describe()}")
            return first

        shapes = "palette" if backend == "jax" else "free"
        return _search(examples(op, dt, shapes=shapes), evaluate, s, progress, row)

    return Task("op", op, backend, dt, run)


_ADJOINT_MODEL = "adjoint test: 2 x Richardson truncation + rounding of f (forward bound) + VJP bound"


def _scalar_absorb(row: CertRow, lhs: float, fd: float, err: float, tol: float, dtype: Any, model: str) -> bool:
    from . import tolerances

    ratio = err / tol if tol > 0 else (0.0 if err == 0 else float("inf"))
    # the relative error of a derivative that is zero within the tolerance says nothing
    rel = err / abs(fd) if abs(fd) > tol else float("nan")
    ulp = float(tolerances.ulp_error(np.asarray(lhs), np.asarray(fd), dtype)) if abs(fd) > tol else float("nan")
    row._worst(err, rel, ulp, ratio, tol, model)
    return ratio <= 1.0


def _op_fd_task(op: str, dt: str, s: Settings) -> Task:
    def run(progress: Progress) -> CertRow:
        from hypothesis import strategies as st

        from parity_tests.harness import adjoint_numbers

        from .ops import OPS
        from .oracle import Finding
        from .strategies import examples

        row = CertRow("op", op, "fd", dt)
        names = OPS[op].arg_names

        def evaluate(drawn: Any) -> Finding | None:
            ex, seed = drawn
            lhs, fd, err, tol = adjoint_numbers(ex, seed)
            if _scalar_absorb(row, lhs, fd, err, tol, ex.dtype, _ADJOINT_MODEL):
                return None
            arrays = {"cotangent": ex.cotangent, **dict(zip(names, ex.inputs))}
            return Finding("VJP (adjoint test)", "fd", "disagreement",
                           f"adjoint test of op '{op}' ({dt} VJP vs float64 central differences) fails: "
                           f"<u, VJP(v)> = {lhs!r}, <v, Df(x)[u]> ~ {fd!r}; abs error {err:.3e}; tolerance {tol:.3e}",
                           f"the reference's {op} VJP; direction seed {seed}", ex.describe(),
                           {k: v.copy() for k, v in arrays.items()})

        strategy = st.tuples(examples(op, dt), st.integers(0, 2**32 - 1))
        return _search(strategy, evaluate, s, progress, row)

    return Task("op", op, "fd", dt, run)


# ------------------------------------------------------------------ networks


def _presets() -> list[tuple[str, Any]]:
    from .networks import PRESETS, preset_003

    out = []
    for key, make in sorted(PRESETS.items()):
        if key == "003":
            # the document works through three cases of its logistic neurons
            out += [(f"preset 003 ({case})", preset_003(case).net) for case in ("neuron", "output", "hidden")]
        else:
            out.append((f"preset {key}", make().net))
    return out


def _architectures() -> Any:
    """Random MLPs: depth 1-4, widths 1-32, any activation, output and cost."""
    from hypothesis import strategies as st

    from .networks import ACTIVATIONS, COSTS, MLP
    from .ops import OPS

    @st.composite
    def nets(draw: Any) -> Any:
        depth = draw(st.integers(1, 4))
        sizes = tuple(draw(st.integers(1, 32)) for _ in range(depth + 1))
        acts = tuple(draw(st.sampled_from(ACTIVATIONS)) for _ in range(depth))
        cost = draw(st.sampled_from(COSTS))
        reduction = draw(st.sampled_from(OPS[cost].params["reduction"]))
        # cross_entropy acts on probabilities (needs the softmax output);
        # softmax_cross_entropy applies its own; mse takes either
        softmax = draw(st.booleans()) if cost == "mse" else cost == "cross_entropy"
        return MLP(sizes, acts, softmax=softmax, cost=cost, reduction=reduction)

    return nets()


def _jax_palette() -> tuple[tuple[Any, int], ...]:
    from parity_tests import net_adapters

    return tuple(net_adapters.PALETTE)


def _net_strategy(subject_net: Any, dt: str, backend: str) -> Any:
    """Cases for a fixed net (a preset) or, when ``subject_net`` is None,
    random architectures (a fixed palette for jax, which compiles per shape)."""
    from hypothesis import strategies as st

    from .oracle import network_cases

    @st.composite
    def cases(draw: Any) -> tuple[Any, Any]:
        if subject_net is not None:
            net = subject_net
            case = draw(network_cases(net, dt, batches=JAX_PRESET_BATCHES if backend == "jax" else None))
        elif backend == "jax":
            net, batch = draw(st.sampled_from(_jax_palette()))
            case = draw(network_cases(net, dt, batches=(batch,)))
        else:
            net = draw(_architectures())
            case = draw(network_cases(net, dt))
        return net, case

    return cases()


def _net_describe(net: Any, case: Any) -> str:
    return case.describe(net)


def _network_task(subject: str, net: Any, backend: str, dt: str, s: Settings) -> Task:
    def run(progress: Progress) -> CertRow:
        from . import tolerances
        from .oracle import Finding

        row = CertRow("network", subject, backend, dt)
        adapters = _adapters_or_skip(row, backend)
        if adapters is None:
            return row

        def evaluate(drawn: Any) -> Finding | None:
            mlp, case = drawn
            tape = mlp.forward(case.params, case.x, case.target)
            grads = mlp.backward(tape)
            bound = tolerances.network_bound(tape, grads)
            call = "torch.nn.Linear layers and autograd" if backend == "torch" else "jax.nn, optax losses and jax.grad"
            run_fw = adapters.torch_value_and_grad if backend == "torch" else adapters.jax_value_and_grad
            try:
                res = run_fw(mlp, case.params, case.x, case.target)
            except Exception as e:  # a framework failing on a valid input is a finding about it
                return Finding("network", backend, "backend error", f"{backend} raised {type(e).__name__}: {e}",
                               call, _net_describe(mlp, case), case.arrays())
            for quantity, layer in adapters.checks(mlp):
                mine = _ours(tape, grads, quantity, layer)
                theirs = getattr(res, quantity)
                if theirs is None:
                    continue
                theirs = np.asarray(theirs[layer] if layer is not None else theirs)
                tol = bound.tolerance(quantity, layer)
                comp = tolerances.compare(theirs, mine, tol, mine.dtype, f"{quantity}: {bound.model}")
                row.absorb(comp, theirs, mine, tol)
            message = adapters.first_divergence(mlp, tape, grads, res, bound.tolerance, backend)
            if message is None:
                return None
            return Finding("network", backend, "disagreement", message, call, _net_describe(mlp, case),
                           case.arrays())

        return _search(_net_strategy(net, dt, backend), evaluate, s, progress, row)

    return Task("network", subject, backend, dt, run)


def _ours(tape: Any, grads: Any, quantity: str, layer: int | None) -> np.ndarray:
    if quantity == "z":
        assert layer is not None
        return np.asarray(tape.layers[layer].z)
    if quantity == "loss":
        return np.asarray(tape.loss)
    value = getattr(grads, quantity)
    return np.asarray(value[layer] if layer is not None else value)


def _adapters_or_skip(row: CertRow, backend: str) -> Any:
    from parity_tests.backends import available

    if available("jax"):
        # jax must compute float64 in float64: the backend adapter turns x64 on
        # before net_adapters creates its first jax array
        _framework("jax")
    try:
        from parity_tests import net_adapters
    except ImportError as e:
        row.status = "skip"
        row.detail = (f"parity_tests.net_adapters (the network adapters) imports both torch and jax and failed: {e}; "
                      "install both (see constraints.txt) to certify networks against them")
        return None
    return net_adapters


def network_adjoint_numbers(net: Any, case: Any, seed: int) -> tuple[float, float, float, float]:
    """The adjoint test of a whole network: ``<u, dL/dparams>`` from the
    reference's backward pass (in the case's dtype) against the central
    difference of the loss along ``u`` in float64. Tolerance, as for the ops
    (``parity_tests/test_adjoint.py``): 2 x the Richardson estimate of the
    truncation, the rounding of each loss evaluation
    (``tolerances.network_bound(...).error("loss")`` at ``params +- h u``,
    divided by ``2h``) and the gradient's own bound
    (``sum |u| error("dW" / "db")``). Returns ``(lhs, fd, |difference|, tolerance)``."""
    from parity_tests.harness import STEP

    from . import tolerances

    rng = np.random.default_rng(seed)
    p64 = tuple((w.astype(np.float64), b.astype(np.float64)) for w, b in case.params)
    x64, t64 = case.x.astype(np.float64), case.target.astype(np.float64)
    dirs = tuple((rng.standard_normal(w.shape), rng.standard_normal(b.shape)) for w, b in p64)

    def central(h: float) -> tuple[float, list[tuple[np.ndarray, np.ndarray]], float]:
        plus = tuple((w + h * dw, b + h * db) for (w, b), (dw, db) in zip(p64, dirs))
        minus = tuple((w - h * dw, b - h * db) for (w, b), (dw, db) in zip(p64, dirs))
        tp, tm = net.forward(plus, x64, t64), net.forward(minus, x64, t64)
        chord = [((wp - wm) / (2 * h), (bp - bm) / (2 * h)) for (wp, bp), (wm, bm) in zip(plus, minus)]
        rounding = float(tolerances.network_bound(tp).error("loss") + tolerances.network_bound(tm).error("loss"))
        return float(tp.loss - tm.loss) / (2 * h), chord, rounding / (2 * h)

    d1, chord, r1 = central(STEP)
    d2, _, r2 = central(2 * STEP)
    tape = net.forward(case.params, case.x, case.target)
    grads = net.backward(tape)
    bound = tolerances.network_bound(tape, grads)
    lhs = 0.0
    grad_err = 0.0
    for l, ((cw, cb), (gw, gb)) in enumerate(zip(chord, grads.params)):
        lhs += float(np.sum(cw * gw.astype(np.float64)) + np.sum(cb * gb.astype(np.float64)))
        grad_err += float(np.sum(np.abs(cw) * bound.error("dW", l)) + np.sum(np.abs(cb) * bound.error("db", l)))
    truncation = abs(d2 - d1) / 3
    return lhs, d1, abs(lhs - d1), 2 * truncation + r1 + r2 + grad_err


_NETWORK_ADJOINT_MODEL = ("adjoint test of the loss: 2 x Richardson truncation + network_bound of the loss "
                          "at params +- h u + the gradients' network_bound")


def _network_fd_task(subject: str, net: Any, dt: str, s: Settings) -> Task:
    def run(progress: Progress) -> CertRow:
        from hypothesis import strategies as st

        from .oracle import Finding

        row = CertRow("network", subject, "fd", dt)

        def evaluate(drawn: Any) -> Finding | None:
            (mlp, case), seed = drawn
            lhs, fd, err, tol = network_adjoint_numbers(mlp, case, seed)
            if _scalar_absorb(row, lhs, fd, err, tol, case.x.dtype, _NETWORK_ADJOINT_MODEL):
                return None
            return Finding("gradients (adjoint test)", "fd", "disagreement",
                           f"adjoint test of {mlp} fails: <u, dL/dparams> = {lhs!r}, central difference {fd!r}; "
                           f"abs error {err:.3e}; tolerance {tol:.3e}",
                           f"the reference's backward pass; direction seed {seed}", _net_describe(mlp, case),
                           case.arrays())

        nets = _net_strategy(net, dt, "fd")
        if dt != "float64":
            # The finite differences run in float64, where a cost's target must
            # sum to 1 within float64's rounding; a soft target drawn in float32
            # sums to 1 only within float32's. One-hot and real targets are exact.
            nets = nets.filter(lambda drawn: drawn[1].recipe["target"] != "soft")
        strategy = st.tuples(nets, st.integers(0, 2**32 - 1))
        return _search(strategy, evaluate, s, progress, row)

    return Task("network", subject, "fd", dt, run)


def _sgd_task(backend: str, dt: str, s: Settings) -> Task:
    subject = f"gradient descent, {SGD_STEPS} steps (random architectures)"

    def run(progress: Progress) -> CertRow:
        from hypothesis import strategies as st

        from . import tolerances
        from .optim import train
        from .oracle import Finding

        row = CertRow("sgd", subject, backend, dt)
        adapters = _adapters_or_skip(row, backend)
        if adapters is None:
            return row

        def evaluate(drawn: Any) -> Finding | None:
            (mlp, case), lr = drawn
            traj = train(mlp, case.params, case.x, case.target, lr=lr, steps=SGD_STEPS)
            bound = tolerances.trajectory_bound(traj, case.x, case.target)
            sgd = adapters.torch_sgd if backend == "torch" else adapters.jax_sgd
            call = "torch.optim.SGD" if backend == "torch" else "optax.sgd"
            try:
                path, _ = sgd(mlp, case.params, case.x, case.target, lr, SGD_STEPS)
            except Exception as e:  # a framework failing on a valid input is a finding about it
                return Finding("sgd", backend, "backend error", f"{backend} raised {type(e).__name__}: {e}", call,
                               _net_describe(mlp, case), case.arrays())
            first = None
            for step in range(1, SGD_STEPS + 1):
                for l in range(mlp.depth):
                    for i, part in enumerate(("W", "b")):
                        mine, theirs = traj.params[step][l][i], np.asarray(path[step][l][i])
                        tol = bound.tolerance(step, l, part)
                        comp = tolerances.compare(theirs, mine, tol, mine.dtype, bound.model)
                        row.absorb(comp, theirs, mine, tol)
                        if not comp.ok and first is None:
                            first = Finding(f"{part}[{l}] after step {step}", backend, "disagreement",
                                            f"{part} of layer {l + 1} after step {step} (lr {lr}) disagrees with "
                                            f"{call}: {comp.describe()}", call, _net_describe(mlp, case),
                                            case.arrays())
            return first

        strategy = st.tuples(_net_strategy(None, dt, backend), st.sampled_from(SGD_RATES))
        return _search(strategy, evaluate, s, progress, row)

    return Task("sgd", subject, backend, dt, run)


# ------------------------------------------------------------------ golden fixtures


def _golden_tasks(s: Settings) -> list[Task]:
    from . import golden

    by_file: dict[str, list[Any]] = {}
    for entry in golden.entries():
        if not entry.expected:
            continue  # nothing to check: the entry says why in its 'unchecked' field
        if s.ops and entry.ops and not set(entry.ops) <= set(s.ops):
            continue
        by_file.setdefault(entry.file, []).append(entry)
    tasks = []
    for backend in ("reference", *(b for b in s.backends if b != "fd")):
        for file, items in sorted(by_file.items()):
            tasks.append(Task("golden", file, backend, "float64", _golden_run(file, items, backend)))
    return tasks


def _golden_run(file: str, items: list[Any], backend: str) -> Callable[[Progress], CertRow]:
    def run(progress: Progress) -> CertRow:
        from parity_tests.spec import SPECS

        from . import golden

        # a replay reports pass or fail per printed number, no error/tolerance ratio
        row = CertRow("golden", file, backend, golden.DTYPE.name, worst_abs_error=float("nan"),
                      worst_ratio=float("nan"), model="the documents' printed precision plus the error model "
                      "(reference_impl.golden)")
        be = golden.REFERENCE if backend == "reference" else _framework(backend)
        failures = []
        start = time.monotonic()
        for entry in items:
            if backend != "reference" and (not entry.steps or any(op not in SPECS for op in entry.ops)):
                continue  # no graph for a framework to run: checked on the reference only
            try:
                outcomes = golden.replay(entry, be)
            except golden.ReplayError as e:
                failures.append(str(e))
                continue
            for o in outcomes:
                row.examples += 1
                progress.tick()
                if not o.ok:
                    failures.append(o.message)
        row.seconds = time.monotonic() - start
        if failures:
            row.status = "fail"
            row.detail = "\n".join(failures) + "\n  reproduce: python -m reference_impl.golden verify"
        elif row.examples == 0:
            row.status, row.detail = "skip", "no entry of this file has a graph a framework can run"
        return row

    return run


def _framework(name: str) -> Any:
    from parity_tests.backends import get_backend

    return get_backend(name)


# ------------------------------------------------------------------ conventions


def conventions(backends: Sequence[str]) -> list[dict[str, Any]]:
    """Each convention of ``parity_tests.spec.CONVENTIONS``, with the values
    the frameworks give at relu's kink where they are installed: a
    difference of convention, listed, never counted as a failure."""
    from parity_tests.spec import CONVENTIONS

    from .ops import OPS

    out: list[dict[str, Any]] = [{"name": k, "convention": v, "status": "convention"} for k, v in CONVENTIONS.items()]
    zeros = np.array([0.0, -0.0])
    probes: dict[str, list[float]] = {"reference relu": OPS["relu"].vjp(np.ones(2), zeros)[0].tolist()}
    if "torch" in backends:
        import torch

        def tgrad(f: Callable[[Any], Any]) -> list[float]:
            x = torch.tensor(zeros, requires_grad=True)
            (g,) = torch.autograd.grad(f(x).sum(), x)
            return [float(v) for v in g.tolist()]

        probes["torch.relu"] = tgrad(torch.relu)
        probes["torch.maximum(x, 0)"] = tgrad(lambda x: torch.maximum(x, torch.zeros_like(x)))
        probes["torch.clamp(x, min=0)"] = tgrad(lambda x: torch.clamp(x, min=0))
    if "jax" in backends:
        _framework("jax")  # sets x64 before the first jax array exists
        import jax
        import jax.numpy as jnp

        def jgrad(f: Callable[[Any], Any]) -> list[float]:
            return [float(v) for v in np.asarray(jax.grad(lambda x: f(x).sum())(jnp.asarray(zeros))).tolist()]

        probes["jax.nn.relu"] = jgrad(jax.nn.relu)
        probes["jnp.maximum(x, 0)"] = jgrad(lambda x: jnp.maximum(x, 0.0))
    for entry in out:
        if entry["name"] == "relu'(0)":
            entry["measured at [0.0, -0.0]"] = probes
    return out


# =========================================================================== running


def plan(s: Settings) -> list[Task]:
    """Every row to compute, in order."""
    tasks: list[Task] = []
    if "ops" in s.sections:
        for op in s.ops:
            for backend in s.backends:
                for dt in s.dtypes:
                    tasks.append(_op_fd_task(op, dt, s) if backend == "fd" else _op_backend_task(op, backend, dt, s))
    if "networks" in s.sections:
        subjects: list[tuple[str, Any]] = [*_presets(), ("random architectures", None)]
        for subject, net in subjects:
            for backend in s.backends:
                for dt in s.dtypes:
                    if backend == "fd":
                        tasks.append(_network_fd_task(subject, net, dt, s))
                    else:
                        tasks.append(_network_task(subject, net, backend, dt, s))
        for backend in (b for b in s.backends if b != "fd"):
            for dt in s.dtypes:
                tasks.append(_sgd_task(backend, dt, s))
    if "golden" in s.sections:
        tasks += _golden_tasks(s)
    return tasks


@dataclass
class Certificate:
    settings: Settings
    rows: list[CertRow]
    environment: dict[str, Any]
    conventions: list[dict[str, Any]]
    elapsed: float
    created: str
    baseline: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CertRow]:
        return [r for r in self.rows if r.status in ("fail", "error")]

    def to_dict(self) -> dict[str, Any]:
        counts = {k: sum(1 for r in self.rows if r.status == k) for k in ("pass", "fail", "error", "skip")}
        return jsonable({
            "format": FORMAT_VERSION,
            "tool": "python -m reference_impl certify",
            "created": self.created,
            "elapsed_seconds": round(self.elapsed, 2),
            "result": "fail" if self.failed else "pass",
            "summary": counts,
            "environment": self.environment,
            "settings": {"seed": self.settings.seed, "profile": self.settings.profile,
                         "max_examples": self.settings.max_examples, "backends": list(self.settings.backends),
                         "ops": list(self.settings.ops), "sections": list(self.settings.sections),
                         "dtypes": list(self.settings.dtypes)},
            "rows": [r.to_dict() for r in self.rows],
            "conventions": self.conventions,
            "notes": self.notes,
            "baseline": self.baseline,
        })


def environment() -> dict[str, Any]:
    """Versions of everything the result depends on, read without importing
    torch or jax (``importlib.metadata``)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    def v(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {
        "reference_impl": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "torch": v("torch"),
        "jax": v("jax"),
        "jaxlib": v("jaxlib"),
        "optax": v("optax"),
        "hypothesis": v("hypothesis"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }


def run(s: Settings, progress_stream: TextIO | None = None, progress: bool = True) -> Certificate:
    """Run every row of :func:`plan` in this process."""
    start = time.monotonic()
    tasks = plan(s)
    bar = Progress(len(tasks), progress_stream, enabled=progress)
    rows: list[CertRow] = []
    for task in tasks:
        bar.begin(task.label)
        try:
            row = task.run(bar)
        except Exception:  # a crash in one row is reported with its traceback; the other rows still run
            row = CertRow(task.section, task.subject, task.backend, task.dtype, status="error",
                          detail=traceback.format_exc())
        rows.append(row)
        bar.finish(row.status.upper())
    bar.close()
    conv = conventions(s.backends) if "ops" in s.sections else []
    return Certificate(s, rows, environment(), conv, time.monotonic() - start,
                       _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


# =========================================================================== reports


def _f(v: float, spec: str = ".2e") -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return format(v, spec)


TABLE_HEAD = ("section", "subject", "backend", "dtype", "status", "examples", "worst rel", "worst ulp",
              "err/tol", "tolerance")


def _cells(r: CertRow) -> tuple[str, ...]:
    return (r.section, r.subject, r.backend, r.dtype, r.status.upper(), str(r.examples), _f(r.worst_rel_error),
            _f(r.worst_ulp_error, ".3g"), _f(r.worst_ratio, ".3g"), _f(r.tolerance))


def table(rows: Sequence[CertRow]) -> str:
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(TABLE_HEAD)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(TABLE_HEAD), line(tuple("-" * w for w in widths)), *(line(b) for b in body)])


def text_report(cert: Certificate) -> str:
    s = cert.settings
    env = cert.environment
    out = [
        f"reference_impl certify -- seed {s.seed}, profile {s.profile}, {s.max_examples} examples per row, "
        f"backends {', '.join(s.backends)}",
        f"  python {env['python']}, numpy {env['numpy']}, torch {env['torch']}, jax {env['jax']}, "
        f"hypothesis {env['hypothesis']}, {env['platform']}",
        "",
        table(cert.rows),
        "",
        "err/tol: the largest error divided by the error model's tolerance at that element (<= 1 passes); "
        "worst rel / ulp: over elements larger than their tolerance.",
    ]
    if cert.conventions:
        out += ["", "Conventions (differences of convention, not failures):"]
        for c in cert.conventions:
            out.append(f"  {c['name']}: {c['convention']}")
            for k, v in c.get("measured at [0.0, -0.0]", {}).items():
                out.append(f"      {k}: gradient {v}")
    skipped = [r for r in cert.rows if r.status == "skip"]
    for r in skipped:
        out += ["", f"SKIPPED {r.section} {r.subject} vs {r.backend} {r.dtype}: {r.detail}"]
    for r in cert.failed:
        out += ["", f"FAILED {r.section} {r.subject} vs {r.backend} {r.dtype}:", _indent(r.detail)]
    if cert.baseline is not None:
        out += ["", baseline_text(cert.baseline)]
    for n in cert.notes:
        out += ["", n]
    counts = cert.to_dict()["summary"]
    out += ["", f"certify: {len(cert.rows)} rows, {counts['pass']} passed, {counts['fail']} failed, "
                f"{counts['error']} errors, {counts['skip']} skipped in {cert.elapsed:.1f} s -- "
                + ("DISAGREEMENT" if cert.failed else "everything agrees")]
    return "\n".join(out)


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(cert: Certificate) -> str:
    s = cert.settings
    env = cert.environment
    counts = cert.to_dict()["summary"]
    out = [
        "# reference_impl certificate",
        "",
        f"**Result: {'DISAGREEMENT' if cert.failed else 'everything agrees'}** -- {len(cert.rows)} rows, "
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, {counts['skip']} skipped "
        f"in {cert.elapsed:.1f} s "
        f"({cert.created}).",
        "",
        "## Environment",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {_md_escape(str(v))} |" for k, v in env.items()),
        "",
        "## Settings",
        "",
        "| | |",
        "| --- | --- |",
        f"| seed | {s.seed} |",
        f"| profile | {s.profile} |",
        f"| examples per row | {s.max_examples} |",
        f"| backends | {', '.join(s.backends)} |",
        f"| sections | {', '.join(s.sections)} |",
        f"| ops | {', '.join(s.ops)} |",
        "",
        "## Results",
        "",
        "`err/tol` is the largest error divided by the error model's tolerance at that element (<= 1 passes); "
        "worst relative and ulp errors are taken over elements larger than their tolerance.",
        "",
        "| " + " | ".join(TABLE_HEAD) + " |",
        "| " + " | ".join("---" for _ in TABLE_HEAD) + " |",
        *("| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |" for r in cert.rows),
    ]
    if cert.failed:
        out += ["", "## Disagreements", ""]
        for r in cert.failed:
            out += [f"### {r.section} {r.subject} vs {r.backend} ({r.dtype})", "", "```", r.detail, "```", ""]
    skipped = [r for r in cert.rows if r.status == "skip"]
    if skipped:
        out += ["", "## Skipped", ""]
        out += [f"- {r.section} {r.subject} vs {r.backend} ({r.dtype}): {_md_escape(r.detail)}" for r in skipped]
    if cert.conventions:
        out += ["", "## Conventions", "", "Differences of convention, listed, not counted as failures.", ""]
        for c in cert.conventions:
            out.append(f"- **{_md_escape(c['name'])}**: {_md_escape(c['convention'])}")
            for k, v in c.get("measured at [0.0, -0.0]", {}).items():
                out.append(f"  - `{k}` at `[0.0, -0.0]`: gradient `{v}`")
    if cert.baseline is not None:
        out += ["", "## Changes since the baseline", "", "```", baseline_text(cert.baseline), "```"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ baseline


def _ratio_of(d: dict[str, Any]) -> float:
    try:
        return float(d.get("worst_ratio", "nan"))
    except (TypeError, ValueError):
        return float("nan")


def load_baseline(path: Path) -> dict[str, Any]:
    """Read an earlier ``--json`` certificate; :class:`UsageError` naming the
    file and the problem when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--baseline: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--baseline: cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"--baseline: {path} is not JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UsageError(f"--baseline: {path} is not a certificate written by --json (no 'rows' list)")
    for i, r in enumerate(data["rows"]):
        if not isinstance(r, dict) or not {"section", "subject", "backend", "dtype"} <= set(r):
            raise UsageError(f"--baseline: {path}: rows[{i}] lacks section/subject/backend/dtype")
    return data


def compare_baseline(old: dict[str, Any], new_rows: Sequence[CertRow], new_env: dict[str, Any],
                     path: str = "") -> dict[str, Any]:
    """What moved between ``old`` (a loaded certificate) and this run:
    status changes, rows added or removed, version changes, and every common
    row ranked by how far its error/tolerance ratio moved (in decades;
    ratios below 1e-6 of the tolerance count as 1e-6, i.e. no measurable
    error, so that exact zeros rank sensibly)."""
    floor = 1e-6
    old_rows = {(r["section"], r["subject"], r["backend"], r["dtype"]): r for r in old["rows"]}
    new_map = {r.key: r for r in new_rows}
    changes = []
    for key, nr in new_map.items():
        orow = old_rows.get(key)
        if orow is None:
            continue
        o_ratio, n_ratio = _ratio_of(orow), nr.worst_ratio
        if math.isnan(o_ratio) or math.isnan(n_ratio):
            decades = float("nan")  # a row without a ratio (a golden replay): only its status can change
        elif math.isinf(o_ratio) or math.isinf(n_ratio):
            decades = 0.0 if o_ratio == n_ratio else math.copysign(float("inf"), n_ratio - o_ratio)
        else:
            decades = math.log10(max(n_ratio, floor)) - math.log10(max(o_ratio, floor))
        changes.append({
            "section": key[0], "subject": key[1], "backend": key[2], "dtype": key[3],
            "old_status": orow.get("status"), "new_status": nr.status,
            "old_ratio": o_ratio, "new_ratio": n_ratio, "decades": decades,
            "old_rel": orow.get("worst_rel_error"), "new_rel": nr.worst_rel_error,
        })
    status_changed = [c for c in changes if c["old_status"] != c["new_status"]]
    ranked = sorted((c for c in changes if not math.isnan(c["decades"])), key=lambda c: -abs(c["decades"]))
    env_old = old.get("environment", {}) or {}
    versions = {k: [env_old.get(k), new_env.get(k)] for k in ("python", "numpy", "torch", "jax", "jaxlib", "optax",
                                                                "hypothesis", "platform")
                if env_old.get(k) != new_env.get(k)}
    return {
        "path": path,
        "created": old.get("created"),
        "versions_changed": versions,
        "status_changed": status_changed,
        "ranked": ranked,
        "added": [" / ".join(k) for k in new_map if k not in old_rows],
        "removed": [" / ".join(k) for k in old_rows if k not in new_map],
    }


def baseline_text(b: dict[str, Any], top: int = 10) -> str:
    out = [f"Changes since the baseline {b['path']} ({b.get('created')}):"]
    if b["versions_changed"]:
        out.append("  versions: " + "; ".join(f"{k} {o} -> {n}" for k, (o, n) in b["versions_changed"].items()))
    else:
        out.append("  versions: unchanged")
    for c in b["status_changed"]:
        out.append(f"  STATUS {c['section']} {c['subject']} vs {c['backend']} {c['dtype']}: "
                   f"{c['old_status']} -> {c['new_status']}")
    out.append(f"  largest changes in error/tolerance (top {min(top, len(b['ranked']))} of {len(b['ranked'])}):")
    for c in b["ranked"][:top]:
        d = float(c["decades"])
        arrow = "up" if d > 0 else ("down" if d < 0 else "same")
        out.append(f"    {c['section']} {c['subject']} vs {c['backend']} {c['dtype']}: "
                   f"{_f(float(c['old_ratio']), '.3g')} -> {_f(float(c['new_ratio']), '.3g')} "
                   f"({arrow} {abs(d):.2f} decades)")
    if b["added"]:
        out.append(f"  new rows: {len(b['added'])} ({', '.join(b['added'][:5])}"
                   f"{', ...' if len(b['added']) > 5 else ''})")
    if b["removed"]:
        out.append(f"  rows gone: {len(b['removed'])} ({', '.join(b['removed'][:5])}"
                   f"{', ...' if len(b['removed']) > 5 else ''})")
    return "\n".join(out)


# =========================================================================== command line


def _parser() -> argparse.ArgumentParser:
    from .profiles import PROFILES

    p = argparse.ArgumentParser(
        prog="python -m reference_impl certify",
        description="Certify the reference against torch, jax and finite differences: every op (float32 and "
                    "float64), the documents' network presets, random architectures, gradient descent and the "
                    "golden fixtures. Exit 0: everything agrees; 1: a disagreement; 2: usage or environment problem.",
    )
    p.add_argument("--backends", default=",".join(BACKEND_CHOICES),
                   help=f"comma-separated, from {', '.join(BACKEND_CHOICES)} (fd: finite differences); "
                        "default: all")
    p.add_argument("--ops", default=None,
                   help="comma-separated op names (default: every op); limits the op rows and the golden entries, "
                        "and skips networks unless --sections names them")
    p.add_argument("--sections", default=None, help=f"comma-separated, from {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--max-examples", type=int, default=None,
                   help="hypothesis examples per row (default: the profile's: "
                        + ", ".join(f"{k} {v}" for k, v in PROFILES.items()) + ")")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed, recorded in the reports (default 0)")
    p.add_argument("--profile", default="dev", help=f"{', '.join(PROFILES)} (default dev)")
    p.add_argument("--json", metavar="PATH", default=None, help="write the certificate as JSON")
    p.add_argument("--markdown", metavar="PATH", default=None, help="write the certificate as Markdown")
    p.add_argument("--baseline", metavar="OLD.json", default=None,
                   help="an earlier --json certificate: rank the largest changes in error since then")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def settings_from(args: argparse.Namespace) -> Settings:
    """Validate the options; :class:`UsageError` for anything wrong."""
    from .ops import OPS
    from .oracle import unknown_name
    from .profiles import PROFILES

    if args.profile not in PROFILES:
        raise UsageError(unknown_name("--profile", "profile", args.profile, list(PROFILES)))
    backends = _split(args.backends)
    if not backends:
        raise UsageError(f"--backends: empty; choose from {', '.join(BACKEND_CHOICES)}")
    for b in backends:
        if b not in BACKEND_CHOICES:
            raise UsageError(unknown_name("--backends", "backend", b, BACKEND_CHOICES))
    ops = _split(args.ops) if args.ops is not None else sorted(OPS)
    if args.ops is not None and not ops:
        raise UsageError(f"--ops: empty; valid: {', '.join(sorted(OPS))}")
    for op in ops:
        if op not in OPS:
            raise UsageError(unknown_name("--ops", "op", op, sorted(OPS)))
    if args.sections is not None:
        sections = _split(args.sections)
        for sec in sections:
            if sec not in SECTIONS:
                raise UsageError(unknown_name("--sections", "section", sec, SECTIONS))
        if not sections:
            raise UsageError(f"--sections: empty; choose from {', '.join(SECTIONS)}")
    else:
        sections = ["ops", "golden"] if args.ops is not None else list(SECTIONS)
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError(f"--max-examples: must be >= 1, got {args.max_examples}")
    if args.seed < 0:
        raise UsageError(f"--seed: must be >= 0, got {args.seed}")
    for opt in ("json", "markdown"):
        path = getattr(args, opt)
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"--{opt}: the folder of {path} does not exist")
    _check_backends_installed([b for b in backends if b != "fd"])
    n = args.max_examples if args.max_examples is not None else PROFILES[args.profile]
    return Settings(tuple(dict.fromkeys(backends)), tuple(dict.fromkeys(ops)), tuple(dict.fromkeys(sections)),
                    n, args.seed, args.profile)


def _check_backends_installed(backends: Sequence[str]) -> None:
    from parity_tests import backends as bk

    missing = [b for b in backends if not bk.available(b)]
    if missing:
        lines = [f"backend {b!r} is not installed; install it with: {bk.INSTALL_HINT[b]}" for b in missing]
        others = [b for b in BACKEND_CHOICES if b not in missing]
        lines.append(f"or certify without it: --backends {','.join(others)}")
        raise UsageError("\n".join(lines))


def certify_main(argv: Sequence[str]) -> int:
    """``certify`` with its options; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as e:  # argparse exits 2 on bad usage and 0 for --help
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        s = settings_from(args)
        baseline = load_baseline(Path(args.baseline)) if args.baseline else None
    except UsageError as e:
        print(f"certify: {e}", file=sys.stderr)
        return 2
    cert = run(s, progress=not args.no_progress)
    if baseline is not None:
        cert.baseline = compare_baseline(baseline, cert.rows, cert.environment, str(args.baseline))
    print(text_report(cert))
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(cert.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if args.markdown:
            Path(args.markdown).write_text(markdown_report(cert), encoding="utf-8")
    except OSError as e:
        print(f"certify: cannot write the report: {e}", file=sys.stderr)
        return 2
    return 1 if cert.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    return certify_main(sys.argv[1:] if argv is None else argv)
