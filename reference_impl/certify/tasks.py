"""The rows of ``certify``: what each computes, as thin layers over the engine.

A :class:`Task` is plain data (section, subject, backend, dtype, mode, device), so that a
process pool can send it to a worker; :func:`run_task` computes its
:class:`CertRow` there with the engine's search, comparison and worst-error
accumulator (:mod:`reference_impl.engine`, :mod:`reference_impl.engine.search`,
:mod:`reference_impl.engine.adjoint`). Every row uses the same hypothesis seed, so a
row's result does not depend on which process computed it. Which modes and
devices a row runs in: :mod:`reference_impl.certify.modes`.
"""

from __future__ import annotations

import importlib
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from .. import golden
from ..accuracy import networks as network_tolerances
from ..accuracy.acceptance import unit_roundoff
from ..engine import kinks
from ..engine.adjoint import NETWORK_MODEL, OP_MODEL, network_adjoint, op_adjoint
from ..engine.comparison import STRICT_ULP_LIMIT, Comparison, Finding, Worst, compare, disagreement, op_comparisons
from ..engine.divergence import checks, first_divergence
from ..engine.search import search
from ..frameworks.backends import get_backend
from ..frameworks.recipes import SPECS
from ..networks import PRESETS, preset_003
from ..ops import OPS
from ..optim import train
from ..strategies import examples
from ..strategies.networks import PALETTE, any_architectures, network_cases
from .modes import fixed_mode_selected, op_modes, row_key, suffix, usual_mode

__all__ = ["CertRow", "Settings", "Task", "plan", "run_task", "jsonable", "row_key", "SGD_STEPS"]

SGD_STEPS = 3
SGD_RATES = (0.01, 0.1, 1.0)
JAX_PRESET_BATCHES = (1, 3)
"""Batches the JAX rows of the presets draw from: jax compiles once per shape."""
RANDOM = "random architectures"


@dataclass
class Settings:
    backends: tuple[str, ...]
    ops: tuple[str, ...]
    sections: tuple[str, ...]
    max_examples: int
    seed: int
    profile: str
    dtypes: tuple[str, ...] = ("float32", "float64")
    workers: int = 1
    strict: bool = False
    modes: tuple[str, ...] = ()
    """``eager``, ``compiled``; empty: each framework's usual mode (torch eager, jax jitted)."""
    devices: tuple[str, ...] = ("cpu",)


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
    """The accuracy grade: the largest ulp error against the reference where the result is a normal
    number and no subnormal was flushed (``engine.compare``)."""
    worst_ratio: float = 0.0
    """Largest error / tolerance (<= 1 passes)."""
    tolerance: float = float("nan")
    """The tolerance where the ratio is largest."""
    model: str = ""
    verdict: str = "pass"
    """The least benign verdict of the row's comparisons (``engine.VERDICTS``)."""
    detail: str = ""
    """The failure with its shrunk counterexample, or why the row was skipped."""
    seconds: float = 0.0
    mode: str = ""
    """``eager`` or ``compiled`` (``torch.compile``, ``jax.jit``); a row
    made without one is in its framework's usual mode (torch eager, jax jitted)."""
    device: str = "cpu"
    worst_normwise: float = float("nan")
    """The largest normwise error, ``max |error| / (u max |reference|)`` per comparison."""
    flushed: int = 0
    """Elements whose error only the underflow floor admitted (a subnormal flushed to zero)."""

    def __post_init__(self) -> None:
        self.mode = self.mode or usual_mode(self.backend)

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        return (self.section, self.subject, self.backend, self.dtype, self.mode, self.device)

    def absorb(self, comp: Comparison, worst: Worst | None = None) -> None:
        """Fold one comparison into the row's worst values (the engine's accumulator)."""
        w = worst or Worst(abs_error=self.worst_abs_error, rel_error=self.worst_rel_error,
                           ulp_error=self.worst_ulp_error, ratio=self.worst_ratio, tolerance=self.tolerance,
                           model=self.model, verdict=self.verdict, normwise=self.worst_normwise,
                           flushed=self.flushed)
        w.fold(comp)
        self.worst_abs_error, self.worst_rel_error, self.worst_ulp_error = w.abs_error, w.rel_error, w.ulp_error
        self.worst_normwise, self.flushed = w.normwise, w.flushed
        self.worst_ratio, self.tolerance, self.model, self.verdict = w.ratio, w.tolerance, w.model, w.verdict

    def grade_fails(self) -> bool:
        """``--strict``: a passing row against a framework whose accuracy
        grade exceeds ``STRICT_ULP_LIMIT``. Finite-difference rows are not
        graded: a central difference is an estimate, not a value in ulps."""
        return self.status == "pass" and self.backend in ("torch", "jax") and not math.isnan(
            self.worst_ulp_error) and self.worst_ulp_error > STRICT_ULP_LIMIT

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


@dataclass(frozen=True)
class Task:
    """One row to compute: plain data, so that a worker process can receive it."""

    section: str
    subject: str
    backend: str
    dtype: str
    net: str = ""
    """A preset key (``"002"``, ``"003 hidden"``) or empty for random architectures."""
    mode: str = "eager"
    device: str = "cpu"

    @property
    def label(self) -> str:
        against = "finite differences" if self.backend == "fd" else self.backend
        return f"{self.section} {self.subject} vs {against}{suffix(self.backend, self.mode, self.device)} {self.dtype}"


Tick = Callable[[], None]


def _reproduce(row: CertRow, s: Settings) -> str:
    parts = ["python -m reference_impl certify", f"--backends {row.backend}", f"--seed {s.seed}",
             f"--max-examples {s.max_examples}"]
    if suffix(row.backend, row.mode, row.device):
        parts += [f"--modes {row.mode}", f"--devices {row.device}"]
    if row.section == "op":
        parts.insert(1, f"--ops {row.subject}")
    else:
        parts.insert(1, f"--sections {'networks' if row.section in ('network', 'sgd') else 'golden'}")
    return "reproduce: " + " ".join(parts)


def _search(strategy: Any, evaluate: Callable[[Any], Finding | None], s: Settings, tick: Tick,
            row: CertRow) -> CertRow:
    """The engine's search for one row; fills its status and counterexample."""

    def counted(example: Any) -> Finding | None:
        row.examples += 1
        return evaluate(example)

    start = time.monotonic()
    outcome = search(strategy, counted, max_examples=s.max_examples, seed=s.seed, on_example=tick)
    finding, flaky, problem = outcome.finding, outcome.nondeterministic, outcome.problem
    row.seconds = time.monotonic() - start
    if problem:
        row.status, row.detail = "skip", problem
    elif finding is not None:
        row.status = "fail"
        row.detail = finding.counterexample(row.dtype, flaky).describe() + "\n  " + _reproduce(row, s)
    return row


# ------------------------------------------------------------------ ops


def backend_evaluator(op: str, backend: Any, row: CertRow) -> Callable[[Any], Finding | None]:
    """One example of an op row: ``backend`` (anything with ``name`` and
    ``vjp(op, cotangent, inputs, params) -> (out, grads)``) is the
    implementation under test, the reference the expected side."""
    name = backend.name
    factor, note = SPECS[op].factor(name)
    names = OPS[op].arg_names
    call = f"{name}'s own {op} and autograd (reference_impl/frameworks/recipes.py)"

    def evaluate(ex: Any) -> Finding | None:
        arrays = {"cotangent": ex.cotangent, **dict(zip(names, ex.inputs))}
        try:
            out, grads = backend.vjp(op, ex.cotangent, ex.inputs, ex.params)
        except Exception as e:  # a framework failing on a valid input is a finding about it
            return Finding("forward", name, "backend error", f"{name} raised {type(e).__name__}: {e}", call,
                           ex.describe(), {k: v.copy() for k, v in arrays.items()})
        first = None
        comps = op_comparisons(op, ex.inputs, ex.params, ex.cotangent, forward=np.asarray(out),
                               grads=[np.asarray(g) for g in grads], factor=factor, note=note)
        for check, comp in comps:
            row.absorb(comp)
            if not comp.ok and first is None:
                first = disagreement(check, name, f"{check} of op '{op}'", comp, call, ex.describe(), arrays)
        return first

    return evaluate


def _op_row(task: Task, s: Settings, tick: Tick) -> CertRow:
    row = CertRow("op", task.subject, task.backend, task.dtype, mode=task.mode, device=task.device)
    evaluate = backend_evaluator(task.subject, get_backend(task.backend, task.mode, task.device), row)
    # jax and torch.compile compile per shape: a palette keeps their caches warm
    shapes = "palette" if task.backend == "jax" or task.mode == "compiled" else "free"
    return _search(examples(task.subject, task.dtype, shapes=shapes), evaluate, s, tick, row)


def _op_fd_row(task: Task, s: Settings, tick: Tick) -> CertRow:
    op = task.subject
    row = CertRow("op", op, "fd", task.dtype)
    names = OPS[op].arg_names

    def evaluate(drawn: Any) -> Finding | None:
        ex, seed = drawn
        numbers = op_adjoint(ex, seed)
        comp = numbers.comparison(ex.dtype, OP_MODEL)
        row.absorb(comp)
        if comp.ok:
            return None
        arrays = {"cotangent": ex.cotangent, **dict(zip(names, ex.inputs))}
        return disagreement("VJP (adjoint test)", "fd", f"the adjoint test of op '{op}' ({task.dtype} VJP: "
                            f"<u, VJP(v)> = {numbers.ours!r}, float64 central differences "
                            f"{numbers.differences!r})", comp,
                            f"the reference's {op} VJP; direction seed {seed}", ex.describe(), arrays)

    strategy = st.tuples(examples(op, task.dtype), st.integers(0, 2**32 - 1))
    return _search(strategy, evaluate, s, tick, row)


# ------------------------------------------------------------------ networks


def presets() -> list[tuple[str, str]]:
    """``(subject, preset key)`` of every preset row (document 003's three cases apart)."""
    out = []
    for key in sorted(PRESETS):
        if key == "003":
            # the document works through three cases of its logistic neurons
            out += [(f"preset 003 ({case})", f"003 {case}") for case in ("neuron", "output", "hidden")]
        else:
            out.append((f"preset {key}", key))
    return out


def _preset_net(key: str) -> Any:
    if not key:
        return None
    if key.startswith("003 "):
        return preset_003(key[4:]).net
    return PRESETS[key]().net


def _net_strategy(subject_net: Any, dt: str, backend: str) -> Any:
    """Cases for a fixed net (a preset) or, when ``subject_net`` is None,
    random architectures (a fixed palette for jax, which compiles per shape)."""

    @st.composite
    def cases(draw: Any) -> tuple[Any, Any]:
        if subject_net is not None:
            net = subject_net
            case = draw(network_cases(net, dt, batches=JAX_PRESET_BATCHES if backend == "jax" else None))
        elif backend == "jax":
            net, batch = draw(st.sampled_from(PALETTE))
            case = draw(network_cases(net, dt, batches=(batch,)))
        else:
            net = draw(any_architectures())
            case = draw(network_cases(net, dt))
        return net, case

    return cases()


def _adapters() -> Any:
    return importlib.import_module("reference_impl.frameworks.networks")


def _ours(tape: Any, grads: Any, quantity: str, layer: int | None) -> np.ndarray:
    if quantity == "z":
        assert layer is not None
        return np.asarray(tape.layers[layer].z)
    if quantity == "loss":
        return np.asarray(tape.loss)
    value = getattr(grads, quantity)
    return np.asarray(value[layer] if layer is not None else value)


def _network_row(task: Task, s: Settings, tick: Tick) -> CertRow:
    backend = task.backend
    row = CertRow("network", task.subject, backend, task.dtype, mode=task.mode)
    adapters = _adapters()
    call = "torch.nn.Linear layers and autograd" if backend == "torch" else "jax.nn, optax losses and jax.grad"
    run_fw = adapters.torch_value_and_grad if backend == "torch" else adapters.jax_value_and_grad

    def evaluate(drawn: Any) -> Finding | None:
        mlp, case = drawn
        tape = mlp.forward(case.params, case.x, case.target)
        grads = mlp.backward(tape)
        bound = network_tolerances.network_bound(tape, grads)
        try:
            res = run_fw(mlp, case.params, case.x, case.target)
        except Exception as e:  # a framework failing on a valid input is a finding about it
            return Finding("network", backend, "backend error", f"{backend} raised {type(e).__name__}: {e}",
                           call, case.describe(mlp), case.arrays())
        for quantity, layer in checks(mlp):
            theirs = getattr(res, quantity)
            if theirs is None:
                continue
            theirs = np.asarray(theirs[layer] if layer is not None else theirs)
            mine = _ours(tape, grads, quantity, layer)
            row.absorb(compare(theirs, mine, bound.tolerance(quantity, layer), mine.dtype,
                               f"{quantity}: {bound.model}"))
        message = first_divergence(mlp, tape, grads, res, bound.tolerance, backend)
        if message is None:
            return None
        return Finding("network", backend, "disagreement", message, call, case.describe(mlp), case.arrays())

    return _search(_net_strategy(_preset_net(task.net), task.dtype, backend), evaluate, s, tick, row)


def _network_fd_row(task: Task, s: Settings, tick: Tick) -> CertRow:
    row = CertRow("network", task.subject, "fd", task.dtype)

    def evaluate(drawn: Any) -> Finding | None:
        (mlp, case), seed = drawn
        numbers = network_adjoint(mlp, case.params, case.x, case.target, seed)
        # relu layers: a step may cross a kink of the loss along the direction; read below it
        numbers = kinks.reread(numbers, unit_roundoff(np.float64))
        comp = numbers.comparison(case.x.dtype, NETWORK_MODEL)
        row.absorb(comp)
        if comp.ok:
            return None
        return disagreement("gradients (adjoint test)", "fd", f"the adjoint test of {mlp} (<u, dL/dparams> = "
                            f"{numbers.ours!r}, central difference {numbers.differences!r})", comp,
                            f"the reference's backward pass; direction seed {seed}", case.describe(mlp),
                            case.arrays())

    nets = _net_strategy(_preset_net(task.net), task.dtype, "fd")
    if task.dtype != "float64":
        # The finite differences run in float64, where a cost's target must
        # sum to 1 within float64's rounding; a soft target drawn in float32
        # sums to 1 only within float32's. One-hot and real targets are exact.
        nets = nets.filter(lambda drawn: drawn[1].recipe["target"] != "soft")
    return _search(st.tuples(nets, st.integers(0, 2**32 - 1)), evaluate, s, tick, row)


def _sgd_row(task: Task, s: Settings, tick: Tick) -> CertRow:
    backend = task.backend
    row = CertRow("sgd", task.subject, backend, task.dtype, mode=task.mode)
    adapters = _adapters()
    sgd = adapters.torch_sgd if backend == "torch" else adapters.jax_sgd
    call = "torch.optim.SGD" if backend == "torch" else "optax.sgd"

    def evaluate(drawn: Any) -> Finding | None:
        (mlp, case), lr = drawn
        traj = train(mlp, case.params, case.x, case.target, lr=lr, steps=SGD_STEPS)
        bound = network_tolerances.trajectory_bound(traj, case.x, case.target)
        try:
            path, _ = sgd(mlp, case.params, case.x, case.target, lr, SGD_STEPS)
        except Exception as e:  # a framework failing on a valid input is a finding about it
            return Finding("sgd", backend, "backend error", f"{backend} raised {type(e).__name__}: {e}", call,
                           case.describe(mlp), case.arrays())
        first = None
        for step in range(1, SGD_STEPS + 1):
            for l in range(mlp.depth):
                for i, part in enumerate(("W", "b")):
                    mine, theirs = traj.params[step][l][i], np.asarray(path[step][l][i])
                    comp = compare(theirs, mine, bound.tolerance(step, l, part), mine.dtype, bound.model)
                    row.absorb(comp)
                    if not comp.ok and first is None:
                        first = disagreement(f"{part}[{l}] after step {step}", backend,
                                             f"{part} of layer {l + 1} after step {step} (lr {lr})", comp, call,
                                             case.describe(mlp), case.arrays())
        return first

    strategy = st.tuples(_net_strategy(None, task.dtype, backend), st.sampled_from(SGD_RATES))
    return _search(strategy, evaluate, s, tick, row)


# ------------------------------------------------------------------ golden fixtures


def _golden_entries(s: Settings) -> dict[str, list[Any]]:
    by_file: dict[str, list[Any]] = {}
    for entry in golden.entries():
        if not entry.expected:
            continue  # nothing to check: the entry says why in its 'unchecked' field
        if s.ops and entry.ops and not set(entry.ops) <= set(s.ops):
            continue
        by_file.setdefault(entry.file, []).append(entry)
    return by_file


def _golden_row(task: Task, s: Settings, tick: Tick) -> CertRow:
    backend = task.backend
    items = _golden_entries(s)[task.subject]
    # a replay reports pass or fail per printed number, no error/tolerance ratio
    row = CertRow("golden", task.subject, backend, golden.DTYPE.name, worst_abs_error=float("nan"),
                  worst_ratio=float("nan"), mode=task.mode,
                  model="the documents' printed precision plus the error model (reference_impl.golden)")
    be = golden.REFERENCE if backend == "reference" else get_backend(backend)
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
            tick()
            if not o.ok:
                failures.append(o.message)
    row.seconds = time.monotonic() - start
    if failures:
        row.status, row.verdict = "fail", "wrong"
        row.detail = "\n".join(failures) + "\n  reproduce: python -m reference_impl.golden verify"
    elif row.examples == 0:
        row.status, row.detail = "skip", "no entry of this file has a graph a framework can run"
    return row


# ------------------------------------------------------------------ the plan


def plan(s: Settings) -> list[Task]:
    """Every row to compute, in report order."""
    tasks: list[Task] = []
    if "ops" in s.sections:
        tasks += [Task("op", op, b, dt, mode=m, device=d) for op in s.ops for b in s.backends
                  for m in op_modes(s.modes, b) for d in (s.devices if b != "fd" else ("cpu",))
                  if d in s.devices for dt in s.dtypes]
    fixed = [b for b in ("reference", *s.backends) if fixed_mode_selected(s.modes, s.devices, b)]
    if "networks" in s.sections:
        for subject, key in [*presets(), (RANDOM, "")]:
            tasks += [Task("network", subject, b, dt, key, mode=usual_mode(b)) for b in fixed if b != "reference"
                      for dt in s.dtypes]
        subject = f"gradient descent, {SGD_STEPS} steps (random architectures)"
        tasks += [Task("sgd", subject, b, dt, mode=usual_mode(b)) for b in fixed if b not in ("fd", "reference")
                  for dt in s.dtypes]
    if "golden" in s.sections:
        files = sorted(_golden_entries(s))
        tasks += [Task("golden", f, b, golden.DTYPE.name, mode=usual_mode(b))
                  for b in fixed if b != "fd" for f in files]
    return tasks


_RUNNERS: dict[tuple[str, bool], Callable[[Task, Settings, Tick], CertRow]] = {
    ("op", False): _op_row, ("op", True): _op_fd_row, ("network", False): _network_row,
    ("network", True): _network_fd_row, ("sgd", False): _sgd_row, ("golden", False): _golden_row,
}


def run_task(task: Task, s: Settings, tick: Tick | None = None) -> CertRow:
    """Compute one row (in this process or a worker); a crash becomes an
    ``error`` row with its traceback, so the other rows still run."""
    try:
        row = _RUNNERS[(task.section, task.backend == "fd")](task, s, tick or (lambda: None))
    except Exception:  # a crash in one row is reported with its traceback
        return CertRow(task.section, task.subject, task.backend, task.dtype, status="error", verdict="error",
                       detail=traceback.format_exc(), mode=task.mode, device=task.device)
    if row.status == "pass" and s.strict and row.grade_fails():
        row.status = "fail"
        row.detail = (f"--strict: accuracy grade {row.worst_ulp_error:.3g} ulp exceeds the limit of "
                      f"{STRICT_ULP_LIMIT:g} ulp (reference_impl.engine.STRICT_ULP_LIMIT)")
    return row
