"""Replaying an entry: its graph of ops evaluated through a backend and every
expected quantity checked under the error model.

:func:`replay` runs an entry through any object with the backend interface
(``forward(op, inputs, params)``, ``vjp(op, cotangent, inputs, params)``) --
the reference by default, or a framework adapter -- and returns one
:class:`Outcome` per expected quantity. Everything is evaluated in float64.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .. import engine
from .._validate import check_bool, check_choice
from ..accuracy import ops as tolerances
from ..ops import OPS
from .files import ReplayError
from .model import DERIVATIONS, DTYPE, Entry, Expectation, Input

__all__ = ["Backend", "ReferenceBackend", "REFERENCE", "Outcome", "check_entry", "check_backend", "input_values",
           "replay"]

REPRODUCE = "python -m reference_impl.golden verify"


class Backend(Protocol):
    """What :func:`replay` needs: the reference, or a framework adapter."""

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray: ...

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]: ...


class ReferenceBackend:
    """The reference behind the backend interface."""

    name = "reference"

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
        spec, args, kwargs = _call(op, inputs, params)
        return spec.forward(*args, **kwargs)

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        spec, args, kwargs = _call(op, inputs, params)
        return spec.forward(*args, **kwargs), spec.vjp(cotangent, *args, **kwargs)


def _call(op: Any, inputs: Any, params: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The backend interface's arguments checked: an op name, a sequence of
    inputs, a mapping of parameters (each op checks the values itself)."""
    check_choice(op, "op", tuple(sorted(OPS)))
    if isinstance(inputs, (str, bytes, np.ndarray)) or not isinstance(inputs, Sequence):
        raise TypeError(f"inputs: expected a tuple of arrays, one per input of {op}, got {type(inputs).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a mapping of {op}'s parameters, got {type(params).__name__}")
    return OPS[op], tuple(inputs), dict(params)


REFERENCE = ReferenceBackend()


def check_entry(entry: Any, name: str = "entry") -> Entry:
    """An :class:`Entry` (from :func:`~reference_impl.golden.entries`), or a
    ``TypeError`` naming ``name``; an entry id is looked up by the caller."""
    if isinstance(entry, Entry):
        return entry
    hint = (" (an entry id: take the entry from golden.entries(), e.g. "
            "next(e for e in golden.entries() if e.id == entry_id))" if isinstance(entry, str) else "")
    raise TypeError(f"{name}: expected a golden Entry, got {type(entry).__name__}{hint}")


def check_backend(backend: Any) -> Any:
    """The reference for ``None``; otherwise an object with callable
    ``forward(op, inputs, params)`` and ``vjp(op, cotangent, inputs, params)``
    (:class:`Backend`), or a ``TypeError`` naming ``backend``."""
    if backend is None:
        return REFERENCE
    missing = [m for m in ("forward", "vjp") if not callable(getattr(backend, m, None))]
    if missing:
        hint = (" (a backend is an object, not a name: reference_impl.frameworks.backends.get_backend('torch') "
                "or ('jax') returns one)" if isinstance(backend, str) else "")
        raise TypeError(f"backend: expected an object with forward(op, inputs, params) and vjp(op, cotangent, "
                        f"inputs, params) methods, got {type(backend).__name__} without {' and '.join(missing)}"
                        f"{hint}")
    return backend


def _placeholder(entry_id: str, inp: Input) -> np.ndarray:
    if inp.placeholder == "uniform":
        return np.full(inp.shape, 1.0 / inp.shape[-1], dtype=DTYPE)
    # Seeded by entry and name so that two placeholders never coincide by
    # construction: a rule check such as "d z / d w1 = x1" must be able to
    # fail. Magnitudes in [0.25, 1] keep clear of kinks and saturation.
    rng = np.random.default_rng(zlib.crc32(f"{entry_id}/{inp.name}".encode()))
    magnitude = rng.uniform(0.25, 1.0, inp.shape)
    sign = np.where(rng.uniform(size=inp.shape) < 0.5, -1.0, 1.0)
    return np.asarray(magnitude * sign, dtype=DTYPE)


def input_values(entry: Entry, *, recompute_derived: bool = False) -> dict[str, np.ndarray]:
    """The entry's inputs as float64 arrays: stored values, generated
    placeholders, and derived inputs (stored, or recomputed from their
    source with ``recompute_derived``)."""
    entry = check_entry(entry)
    recompute_derived = check_bool(recompute_derived, "recompute_derived")
    out: dict[str, np.ndarray] = {}
    for inp in entry.inputs:
        if inp.origin == "placeholder":
            out[inp.name] = _placeholder(entry.id, inp)
        elif inp.derivation is not None and recompute_derived:
            fn, src = inp.derivation
            out[inp.name] = np.asarray(DERIVATIONS[fn](out[src]), dtype=DTYPE)
        else:
            assert inp.value is not None
            out[inp.name] = inp.value
    return out


Perturbation = tuple[Any, ...]
"""``("fwd", step, flat index, h)`` or ``("rev", pass, step, argument, flat index, h)``."""


@dataclass
class _Trace:
    values: dict[str, np.ndarray]
    adjoints: list[dict[str, np.ndarray]]
    cotangents: list[dict[int, np.ndarray]]
    """Per backward pass: step index -> cotangent arriving at its output."""


def passes_of(entry: Entry) -> list[tuple[tuple[str, str | None], ...]]:
    specs = [e.seed_spec() for e in entry.expected]
    return list(dict.fromkeys(s for s in specs if s is not None))


def _name(backend: Any) -> str:
    return str(getattr(backend, "name", type(backend).__name__))


def execute(entry: Entry, values0: Mapping[str, np.ndarray], backend: Any,
             passes: Sequence[tuple[tuple[str, str | None], ...]], perturb: Perturbation | None = None) -> _Trace:
    values = dict(values0)
    for s, step in enumerate(entry.steps):
        args = tuple(values[n] for n in step.inputs)
        try:
            out = np.asarray(backend.forward(step.op, args, dict(step.params)))
        except Exception as e:
            raise ReplayError(f"{entry.file}: {entry.id}: steps[{s}] ({step.op}) failed on {_name(backend)}: "
                              f"{type(e).__name__}: {e}") from e
        if perturb is not None and perturb[0] == "fwd" and perturb[1] == s:
            out = out.copy()
            out.flat[perturb[2]] += perturb[3]
        values[step.output] = out
    adjoints: list[dict[str, np.ndarray]] = []
    cotangents: list[dict[int, np.ndarray]] = []
    for p, spec in enumerate(passes):
        adj: dict[str, np.ndarray] = {}
        for var, cot in spec:
            v = values[var]
            if cot is None:
                if v.shape != ():
                    raise ReplayError(f"{entry.file}: {entry.id}: the gradient of {var!r} is seeded with 1, but "
                                      f"{var!r} has shape {v.shape}, not a scalar; give 'seeds' instead")
                seed = np.ones((), dtype=DTYPE)
            else:
                seed = values[cot]
                if seed.shape != v.shape:
                    raise ReplayError(f"{entry.file}: {entry.id}: cotangent {cot!r} has shape {seed.shape}, "
                                      f"but {var!r} has shape {v.shape}")
            adj[var] = adj[var] + seed if var in adj else seed
        arrived: dict[int, np.ndarray] = {}
        for s in reversed(range(len(entry.steps))):
            step = entry.steps[s]
            if step.output not in adj:
                continue  # the seeded outputs do not depend on this step
            g = np.asarray(adj[step.output], dtype=DTYPE)
            arrived[s] = g
            args = tuple(values[n] for n in step.inputs)
            try:
                _, grads = backend.vjp(step.op, g, args, dict(step.params))
            except Exception as e:
                raise ReplayError(f"{entry.file}: {entry.id}: the VJP of steps[{s}] ({step.op}) failed on "
                                  f"{_name(backend)}: {type(e).__name__}: {e}") from e
            for pos, (n, gr) in enumerate(zip(step.inputs, grads)):
                gr = np.asarray(gr)
                if perturb is not None and perturb[0] == "rev" and perturb[1:4] == (p, s, pos):
                    gr = gr.copy()
                    gr.flat[perturb[4]] += perturb[5]
                adj[n] = adj[n] + gr if n in adj else gr
        adjoints.append(adj)
        cotangents.append(arrived)
    return _Trace(values, adjoints, cotangents)


def quantity_key(e: Expectation, passes: Sequence[Any]) -> tuple[Any, ...]:
    if e.quantity == "gradient":
        return ("grad", passes.index(e.seed_spec()), e.wrt)
    return ("value", e.of)


def read_quantity(trace: _Trace, key: tuple[Any, ...], entry: Entry) -> np.ndarray:
    if key[0] == "grad":
        _, p, wrt = key
        got = trace.adjoints[p].get(wrt)
        if got is None:  # wrt does not influence the seeded outputs
            return np.zeros_like(trace.values[wrt])
        return np.asarray(got)
    return np.asarray(trace.values[key[1]])


def _float_keys(entry: Entry, passes: Sequence[Any]) -> list[tuple[Any, ...]]:
    keys: list[tuple[Any, ...]] = []
    for e in entry.expected:
        if e.quantity in ("value", "gradient"):
            keys.append(quantity_key(e, passes))
            if e.equals is not None:
                keys.append(("value", e.equals))
    return list(dict.fromkeys(keys))


def model_tolerances(entry: Entry) -> dict[tuple[Any, ...], np.ndarray]:
    """Error-model tolerance of every float quantity the entry checks.

    Each step's own bound -- ``tolerances.forward_bound`` for its output,
    ``tolerances.vjp_bound`` for each gradient it passes back -- is carried to
    every checked quantity by that quantity's first-order sensitivity to the
    step's result, estimated by a forward difference (perturb one element of
    one result by ``h``, re-run the graph). The sum over all steps and
    elements bounds the difference between two implementations that each
    obey the per-op bounds (which already allow for two implementations).
    """
    if "model" in entry._cache:
        return dict(entry._cache["model"])
    passes = passes_of(entry)
    keys = _float_keys(entry, passes)
    values0 = input_values(entry)
    base = execute(entry, values0, REFERENCE, passes)
    acc = {k: np.zeros_like(read_quantity(base, k, entry), dtype=DTYPE) for k in keys}
    sqrt_u = math.sqrt(tolerances.unit_roundoff(DTYPE))

    def spread(bound: np.ndarray, result: np.ndarray, make: Any) -> None:
        for e in range(result.size):
            t = float(bound.flat[e])
            if t == 0.0:
                continue
            h = sqrt_u * max(1.0, abs(float(result.flat[e])))
            try:
                trace = execute(entry, values0, REFERENCE, passes, make(e, h))
            except ReplayError as err:
                raise ReplayError(f"{entry.file}: {entry.id}: cannot estimate how rounding propagates "
                                  f"(a perturbation of {h:.1e} left an op's domain): {err}") from err
            for k in keys:
                acc[k] += np.abs(read_quantity(trace, k, entry) - read_quantity(base, k, entry)) * (t / h)

    if keys:
        for s, step in enumerate(entry.steps):
            args = tuple(base.values[n] for n in step.inputs)
            out = base.values[step.output]
            own = tolerances.forward_bound(step.op, args, step.params).tolerance(DTYPE)
            spread(np.broadcast_to(own, out.shape), out, lambda e, h, s=s: ("fwd", s, e, h))
        for p, arrived in enumerate(base.cotangents):
            for s, g in arrived.items():
                step = entry.steps[s]
                args = tuple(base.values[n] for n in step.inputs)
                bounds = tolerances.vjp_bound(step.op, g, args, step.params)
                for pos, bound in enumerate(bounds):
                    spread(np.broadcast_to(bound.tolerance(DTYPE), args[pos].shape), args[pos],
                           lambda e, h, p=p, s=s, pos=pos: ("rev", p, s, pos, e, h))
    entry._cache["model"] = acc
    return dict(acc)


def _chain_length(entry: Entry, of: str, wrt: str) -> int:
    """Number of steps on the paths from ``wrt`` to ``of``: the number of
    local derivatives the chain rule multiplies."""
    downstream, after = {wrt}, set()
    for s, step in enumerate(entry.steps):
        if any(n in downstream for n in step.inputs):
            downstream.add(step.output)
            after.add(s)
    upstream, before = {of}, set()
    for s in reversed(range(len(entry.steps))):
        if entry.steps[s].output in upstream:
            upstream.update(entry.steps[s].inputs)
            before.add(s)
    return len(after & before)


@dataclass(frozen=True)
class Outcome:
    """Result of checking one expected quantity on one backend."""

    entry_id: str
    file: str
    index: int
    label: str
    origin: str
    backend: str
    ok: bool
    message: str


def _tolerance_text(e: Expectation) -> str:
    if e.tolerance_rule == "half_unit":
        return f"printed to {e.decimals} decimals: half a unit = {e.tolerance:.1e}, plus the error model"
    if e.tolerance_rule == "half_unit_per_term":
        return f"half a unit of {e.decimals} decimals per printed term = {e.tolerance:.2e}"
    if e.tolerance_rule == "exact":
        return "exact (an integer or a count), plus the error model for floats"
    return "error model (reference_impl.accuracy.ops)"


def replay(entry: Entry, backend: Any = None) -> tuple[Outcome, ...]:
    """Run ``entry`` through ``backend`` (the reference when ``None``) and
    check every expected quantity. Returns one :class:`Outcome` each; an
    entry that cannot be evaluated raises :class:`ReplayError`."""
    entry = check_entry(entry)
    backend = check_backend(backend)
    bname = _name(backend)
    passes = passes_of(entry)
    trace = execute(entry, input_values(entry), backend, passes)
    model = model_tolerances(entry) if _float_keys(entry, passes) else {}
    outcomes = []
    for e in entry.expected:
        head = (f"{entry.file}: {entry.id}: expected[{e.index}] ({e.label()}, origin {e.origin}; "
                f"{_tolerance_text(e)}) on {bname}")
        ok, detail = _check(entry, e, trace, passes, model)
        hint = f"; reproduce: {REPRODUCE}" if bname == "reference" else ""
        outcomes.append(Outcome(entry.id, entry.file, e.index, e.label(), e.origin, bname, ok,
                                f"{head}: {detail}" + ("" if ok else hint)))
    return tuple(outcomes)


def _check(entry: Entry, e: Expectation, trace: _Trace, passes: Sequence[Any],
           model: Mapping[tuple[Any, ...], np.ndarray]) -> tuple[bool, str]:
    if e.quantity == "op_count":
        got = sum(1 for s in entry.steps if s.op in (e.ops or ()))
        return got == e.value, f"got {got}, expected {e.value}"
    if e.quantity == "chain_length":
        got = _chain_length(entry, str(e.of), str(e.wrt))
        return got == e.value, f"got {got} step(s), expected {e.value}"
    if e.quantity == "shape":
        got_shape = tuple(trace.values[str(e.of)].shape)
        return got_shape == e.value, f"got {got_shape}, expected {e.value}"
    if e.quantity == "size":
        got_size = int(trace.values[str(e.of)].size)
        return got_size == e.value, f"got {got_size}, expected {e.value}"
    if e.quantity == "gradient_count":
        adj = trace.adjoints[passes.index(e.seed_spec())]
        params = [i for i in entry.inputs if i.role == "parameter"]
        wrong = [f"{i.name}: {'no gradient' if i.name not in adj else f'gradient of shape {adj[i.name].shape}'}"
                 f" for shape {i.shape}" for i in params if i.name not in adj or adj[i.name].shape != i.shape]
        ok = len(params) == e.value and not wrong
        return ok, (f"{len(params)} parameter(s) {[i.name for i in params]}, expected {e.value}"
                    + (f"; {', '.join(wrong)}" if wrong else ", each with a gradient of its shape"))
    if e.quantity == "sum":
        x = trace.values[str(e.of)]
        total = np.asarray(math.fsum(x.ravel().tolist()), dtype=DTYPE)
        # fsum rounds once: its own error is at most u |sum|
        tol = np.asarray(float(e.tolerance or 0.0) + tolerances.unit_roundoff(DTYPE) * abs(float(total)))
        c = engine.compare(total, e.value, tol, DTYPE, model="printed precision of the summed terms")
        return c.ok, c.describe()
    key = quantity_key(e, passes)
    actual = read_quantity(trace, key, entry)
    tol_arr = model[key]
    if e.equals is not None:
        expected = trace.values[e.equals]
        tol_arr = tol_arr + model[("value", e.equals)]
    else:
        expected = e.value
        tol_arr = tol_arr + (e.tolerance or 0.0)
    if actual.shape != tuple(e.shape or ()):
        return False, f"computed shape {actual.shape} differs from the fixture's shape {e.shape}"
    c = engine.compare(actual, np.broadcast_to(expected, actual.shape), tol_arr, DTYPE,
                           model=_tolerance_text(e))
    return c.ok, c.describe()

