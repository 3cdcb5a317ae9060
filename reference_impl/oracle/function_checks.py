"""One example through every check.

:func:`evaluate` runs ``f`` and ``vjp`` on one drawn input in one dtype and
applies, in order: the calling contract (no exception, no modified input, a
gradient per ``wrt`` input of the input's structure, shape and dtype, finite),
the Taylor remainder order and the adjoint test per ``wrt`` input (in float64
when ``f`` is dtype-generic), the float32-against-float64 comparison, and the
framework opinions. It returns the first failure as a :class:`Finding`, which
:func:`reference_impl.engine.search.search` hands to hypothesis to shrink.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import pytree
from ..dtypes import is_float
from ..engine import differences as numerics
from ..engine import kinks
from ..engine.calls import Snapshot, UnsatisfiedAssumption, call, returned_array, type_name
from ..engine.results import Tally
from ..engine.search import Misuse
from ..frameworks.array_api import framework_vjp
from ..strategies.inputs import Drawn
from .function_problem import Counters, Finding, Problem

__all__ = ["Problem", "Finding", "Counters", "evaluate", "shape_class"]

_FLOAT64 = np.dtype(np.float64)


def _names(pb: Problem, n: int) -> list[str]:
    return [pb.arg_names[i] if i < len(pb.arg_names) else f"arg{i}" for i in range(n)]


def shape_class(names: Sequence[str], args: Sequence[Any]) -> str:
    """The rank of each input (``x:2d``), or its number of arrays for a pytree input."""
    parts = []
    for name, a in zip(names, args):
        leaves, s = pytree.flatten(a)
        parts.append(f"{name}:{np.ndim(leaves[0])}d" if s.kind == "leaf" else f"{name}:{len(leaves)} arrays")
    return " ".join(parts)


def _is_floating(a: Any) -> bool:
    leaves, _ = pytree.flatten(a)
    return bool(leaves) and all(isinstance(x, np.ndarray) and is_float(x.dtype) for x in leaves)


def _cast(a: Any, dtype: np.dtype) -> Any:
    return pytree.tree_map(lambda x: x.astype(dtype) if is_float(x.dtype) else x.copy(), a)


def _validate_drawn(value: Any, n_names: int) -> tuple[Any, ...]:
    """The drawn value as a tuple of pytrees of arrays, or :class:`Misuse` naming ``inputs``."""
    if isinstance(value, np.ndarray):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise Misuse(TypeError(f"inputs: the strategy drew a {type_name(value)}; expected a tuple of NumPy arrays "
                               f"(or of dicts/tuples/lists of arrays), one per argument of f"))
    leaves, _ = pytree.flatten(tuple(value))
    for leaf in leaves:
        if isinstance(leaf, np.ma.MaskedArray) or not isinstance(leaf, np.ndarray) \
                or not (leaf.dtype.kind in "fiub" or is_float(leaf.dtype)):
            raise Misuse(TypeError(f"inputs: the strategy drew a {type_name(leaf)} ({leaf!r:.60}) inside an input; "
                                   "expected NumPy arrays of a floating or integer dtype"))
    return tuple(value)


# =========================================================================== gradients returned


def _match_gradients(pb: Problem, value: Any, args: Sequence[Any], wrt: Sequence[int]) -> tuple[list[Any] | None, str]:
    """One gradient pytree per ``wrt`` input, or what is wrong with the returned structure."""
    want = [pytree.flatten(args[i])[1] for i in wrt]
    names = _names(pb, len(args))
    expected = ("a tuple (" + ", ".join(f"d{names[i]}: {pytree.describe(s)}" for i, s in zip(wrt, want)) + ")")

    def same(v: Any, s: pytree.Structure) -> bool:
        return pytree.flatten(v)[1] == s

    if pb.gradient_only:
        candidates = [[value]]
    else:
        candidates = []
        if len(wrt) == 1:
            candidates.append([value])
        if isinstance(value, (tuple, list)):
            if len(value) == len(wrt):
                candidates.append(list(value))
            if len(value) == len(args) and len(args) != len(wrt):
                candidates.append([value[i] for i in wrt])
    for cand in candidates:
        if all(same(v, s) for v, s in zip(cand, want)):
            return cand, ""
    got = pytree.describe(pytree.flatten(value)[1]) if isinstance(value, (tuple, list, dict)) else type_name(value)
    return None, f"returned {got}; expected {expected if not pb.gradient_only else pytree.describe(want[0])}"


# =========================================================================== one example


@dataclass
class _Context:
    pb: Problem
    dtype: np.dtype
    names: list[str]
    shape_class: str
    example: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def finding(self, check: str, against: str, kind: str, message: str, extra: dict[str, np.ndarray] | None = None,
                structure_error: bool = False) -> Finding:
        arrays = dict(self.arrays)
        arrays.update(extra or {})
        call = f"{self.pb.f_name}({', '.join(self.names)}); " + (
            f"{self.pb.vjp_name}({', '.join(self.names)})" if self.pb.gradient_only
            else f"{self.pb.vjp_name}(cotangent, {', '.join(self.names)})")
        return Finding(check, against, kind, message, call, self.example, arrays, structure_error=structure_error)


def _named_leaves(name: str, value: Any) -> dict[str, np.ndarray]:
    leaves, s = pytree.flatten(value)
    return {p: np.asarray(x) for p, x in zip(pytree.leaf_paths(s, name), leaves)}


def _inner(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    return float(sum(np.sum(np.asarray(x, np.float64) * np.asarray(y, np.float64)) for x, y in zip(a, b)))


def _abs_inner(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    return float(sum(np.sum(np.abs(np.asarray(x, np.float64) * np.asarray(y, np.float64))) for x, y in zip(a, b)))


def _run_f(pb: Problem, args: Sequence[Any], names: list[str], primary: bool
           ) -> tuple[list[np.ndarray] | None, pytree.Structure | None, str]:
    out, err = call(pb.f, args)
    if err:
        return None, None, f"your {pb.f_name} {err}"
    leaves, s = pytree.flatten(out)
    arrays = []
    for path, leaf in zip(pytree.leaf_paths(s, f"{pb.f_name}'s output"), leaves):
        if pb.gradient_only and isinstance(leaf, (float, int)) and not isinstance(leaf, bool):
            leaf = np.asarray(leaf, np.float64)
        arr, msg = returned_array(leaf, path)
        if arr is None:
            return None, None, f"your {pb.f_name}: {msg}"
        arrays.append(arr)
    if pb.gradient_only and (len(arrays) != 1 or arrays[0].size != 1):
        return None, None, f"your {pb.f_name} returned {pytree.describe(s)} of shape(s) " \
                           f"{[a.shape for a in arrays]}; expected one scalar"
    return arrays, s, ""


def _run_vjp(pb: Problem, cot: Any, args: Sequence[Any], wrt: Sequence[int], names: list[str], what: str
             ) -> tuple[list[list[np.ndarray]] | None, str, bool]:
    """Gradient leaves per ``wrt`` input, validated; or (None, message, structure error?)."""
    call_args = tuple(args) if pb.gradient_only else (cot, *args)
    value, err = call(pb.vjp, call_args)
    if err:
        return None, f"your {pb.vjp_name}{what} {err}", False
    grads, err = _match_gradients(pb, value, args, wrt)
    if grads is None:
        return None, f"your {pb.vjp_name}{what} {err}", True
    out = []
    scale = np.asarray(pytree.flatten(cot)[0][0]) if pb.gradient_only else None
    for i, g in zip(wrt, grads):
        in_leaves, s = pytree.flatten(args[i])
        g_leaves, _ = pytree.flatten(g)
        part = []
        for path, x, gl in zip(pytree.leaf_paths(s, f"d{names[i]}"), in_leaves, g_leaves):
            arr, msg = returned_array(gl, f"the gradient {path}", x.shape, x.dtype)
            if arr is None:
                return None, f"your {pb.vjp_name}{what}: {msg}", False
            part.append(arr * scale.astype(arr.dtype).reshape(()) if scale is not None else arr)
        out.append(part)
    return out, "", False


def _direction(rng: np.random.Generator, arg: Any, kinds: Sequence[str | None] | None) -> list[np.ndarray]:
    leaves, _ = pytree.flatten(arg)
    out = []
    for j, x in enumerate(leaves):
        kind = kinds[j] if kinds is not None and j < len(kinds) else None
        z = rng.standard_normal(x.shape)
        if kind in ("distribution", "positive_distribution", "one_hot", "kinked"):
            # relative to each element: a probability stays positive and an exact zero stays put; a kinked
            # value keeps its sign (the gradient at the kink is a convention: steps must not cross it)
            u = z * np.abs(x.astype(np.float64))
        else:
            u = z * numerics.direction_scale(x)
        out.append(u)
    return out


def _kink_mask(arg: Any, kinds: Sequence[str | None] | None) -> list[np.ndarray]:
    leaves, _ = pytree.flatten(arg)
    return [(x == 0) if kinds is not None and j < len(kinds) and kinds[j] == "kinked" else np.zeros(x.shape, bool)
            for j, x in enumerate(leaves)]


# Long: the four stages below (contract, working precision, Taylor and adjoint, spread and opinions) read and
# extend one example's state (args, outputs, gradients, directions) in order; each is marked "# ----".
def evaluate(pb: Problem, drawn: Drawn, dtype: np.dtype, seed: int, tally: Tally, counters: Counters) -> Finding | None:
    """Every check on one input in one dtype; the first failure, or None."""
    args = tuple(_cast(a, dtype) for a in drawn.args)
    names = _names(pb, len(args))
    counters.coverage.fold(names, args, drawn.recipe)
    if pb.wrt is None:
        wrt = tuple(i for i, a in enumerate(args) if _is_floating(a))
    else:
        bad = [i for i in pb.wrt if i >= len(args)]
        if bad:
            raise Misuse(ValueError(f"wrt: input index {bad[0]} but f is given {len(args)} input(s)"))
        wrt = pb.wrt
        for i in wrt:
            if not _is_floating(args[i]):
                raise Misuse(ValueError(f"wrt: input {names[i]!r} is not floating (integer data has no gradient)"))
    if not wrt:
        raise Misuse(ValueError("wrt: no floating input to differentiate"))
    dt = dtype.name
    sc = shape_class(names, args)
    shapes = ", ".join(f"{n}{tuple(np.shape(a))}" if pytree.flatten(a)[1].kind == "leaf" else f"{n}{{...}}"
                       for n, a in zip(names, args))
    ctx = _Context(pb, dtype, names, sc, f"{shapes} {dt}, recipe {drawn.recipe}, direction seed {seed}")
    for n, a in zip(names, args):
        ctx.arrays.update(_named_leaves(n, a))
    counters.evaluated += 1

    # ---- the calling contract, in the checked dtype, on the real arrays
    snap = Snapshot(names, args)
    out, out_s, err = _run_f(pb, args, names, primary=True)
    if err:
        tally.record_error(pb.f_name, dt, sc, "contract", err)
        return ctx.finding(pb.f_name, "contract", "user function error", err)
    assert out is not None and out_s is not None
    changed = snap.changed()
    if changed:
        msg = f"your {pb.f_name} modified its input: {changed}"
        tally.record_error("inputs unchanged", dt, sc, "contract", msg)
        return ctx.finding("inputs unchanged", "contract", "modified input", msg)
    rng = np.random.default_rng(seed)
    if pb.gradient_only:
        v_leaves = [np.ones(out[0].shape, out[0].dtype)]
    else:
        v_leaves = [rng.standard_normal(o.shape).astype(o.dtype) for o in out]
    cot = pytree.unflatten(out_s, v_leaves)
    ctx.arrays.update(_named_leaves("cotangent", cot) if not pb.gradient_only else {})
    snap = Snapshot([*names, "cotangent"], [*args, cot])
    grads, err, structural = _run_vjp(pb, cot, args, wrt, names, "")
    if grads is None:
        counters.structure_errors += int(structural)
        tally.record_error(f"gradient[{','.join(names[i] for i in wrt)}]", dt, sc, "contract", err)
        return ctx.finding("gradient", "contract", "user function error", err, structure_error=structural)
    changed = snap.changed()
    if changed:
        msg = f"your {pb.vjp_name} modified its input: {changed}"
        tally.record_error("inputs unchanged", dt, sc, "contract", msg)
        return ctx.finding("inputs unchanged", "contract", "modified input", msg)
    for i in wrt:
        tally.record_pass(f"gradient[{names[i]}]", dt, sc, "contract", "finite, input's dtype and shape")
    tally.record_pass("inputs unchanged", dt, sc, "contract", "f and vjp leave their arguments as they were")

    # ---- the working precision for differences: float64 when f is dtype-generic
    work_args, work_out, work_v, work_g = args, out, v_leaves, grads
    generic = dtype == _FLOAT64
    if dtype != _FLOAT64:
        args64 = tuple(_cast(a, _FLOAT64) for a in args)
        out64, out64_s, err64 = _run_f(pb, args64, names, primary=False)
        generic = not err64 and out64_s == out_s and all(o.dtype == _FLOAT64 for o in out64 or [])
        if generic and out64 is not None:
            v64 = [v.astype(np.float64) for v in v_leaves]
            g64, err, structural = _run_vjp(pb, pytree.unflatten(out_s, v64), args64, wrt, names,
                                            " (called in float64 as the reference for float32)")
            if g64 is None:
                tally.record_error("float32 vs float64", dt, sc, "float64", err)
                return ctx.finding("float32 vs float64", "float64", "user function error", err)
            work_args, work_out, work_v, work_g = args64, out64, v64, g64
    work_dtype = np.dtype(pytree.flatten(work_args[wrt[0]])[0][0].dtype)
    work_u = numerics.unit_roundoff(work_dtype)
    phi0 = _inner(work_v, work_out)
    # an f that computes its output from values beyond its inputs (the gradient of check_vjp(order=2), from the
    # forward outputs its backward reads) says how far their rounding moves <v, f>: part of f's rounding floor
    beyond = getattr(pb.f, "intermediate_magnitude", None)
    intermediate = float(beyond(work_args, work_v)) if callable(beyond) else 0.0
    magnitude = _abs_inner(work_v, work_out) + intermediate
    kinds = drawn.kinds if drawn.kinds else tuple(None for _ in args)

    # ---- Taylor remainder and adjoint test, per wrt input
    work_jiggled: list[list[list[np.ndarray]]] = []

    def jiggled_work_grads() -> list[list[list[np.ndarray]]]:
        # the working VJP at inputs and cotangent moved by a few roundings: how much <VJP(v), u> moves
        # by rounding alone (its condition at x), for the adjoint test's error model
        if not work_jiggled:
            rho = numerics.ADJOINT_JITTER * work_u
            for _ in range(numerics.ADJOINT_JITTER_TRIALS):
                def jiggle(x: np.ndarray) -> np.ndarray:
                    if not is_float(x.dtype):
                        return x.copy()
                    return (x + rho * rng.standard_normal(x.shape) * numerics.direction_scale(x)).astype(x.dtype)
                a_p = tuple(pytree.tree_map(jiggle, a) for a in work_args)
                v_p = work_v if pb.gradient_only else [jiggle(v) for v in work_v]
                try:
                    g_p, _e, _ = _run_vjp(pb, pytree.unflatten(out_s, v_p), a_p, wrt, names, "")
                except UnsatisfiedAssumption:
                    continue
                if g_p is not None:
                    work_jiggled.append(g_p)
        return work_jiggled

    for k, i in enumerate(wrt):
        x_leaves, x_s = pytree.flatten(work_args[i])
        u = _direction(rng, work_args[i], kinds[i] if i < len(kinds) else None)
        g = work_g[k]

        def step(t: float, i: int = i, x_leaves: list[Any] = x_leaves, x_s: pytree.Structure = x_s,
                 u: list[np.ndarray] = u, g: list[np.ndarray] = g) -> tuple[float, float]:
            moved = [(x + t * d).astype(x.dtype) for x, d in zip(x_leaves, u)]
            taken = [m.astype(np.float64) - x.astype(np.float64) for m, x in zip(moved, x_leaves)]
            call = list(work_args)
            call[i] = pytree.unflatten(x_s, moved)
            try:
                values, _, e = _run_f(pb, call, names, primary=False)
            except UnsatisfiedAssumption:
                return math.nan, math.nan
            if e or values is None or len(values) != len(work_v):
                return math.nan, math.nan
            return _inner(work_v, values), _inner(g, taken)

        def phi(t: float, step: Callable[[float], tuple[float, float]] = step) -> float:
            return step(t)[0]

        conditioning = _abs_inner(g, [x.astype(np.float64) for x in x_leaves])
        floor = numerics.rounding_floor(step, phi0, magnitude + conditioning, work_u)

        def remainder(h: float, step: Callable[[float], tuple[float, float]] = step) -> float:
            value, first = step(h)
            return abs(value - phi0 - first)

        fit, line = kinks.taylor_test(remainder, floor, phi, phi0)  # a fit failed across a kink: status "kink"
        where = f" (evaluated in {work_dtype.name})" if work_dtype != dtype else ""
        # an order is reported only where it was fitted in the asymptotic regime
        tally.record_order(f"taylor[{names[i]}]", dt, sc, fit.order if fit.status == "order" else math.nan, fit.failed,
                    fit.status + where)
        extra = {f"direction[{p}]": d for p, d in zip(pytree.leaf_paths(x_s, names[i]), u)}
        if fit.failed:
            return ctx.finding(f"taylor[{names[i]}]", "differences", "disagreement",
                               f"the VJP with respect to {names[i]} is wrong: {fit.describe()}{where}", extra)
        ours = _inner(g, u)
        noise = max((abs(_inner(jg[k], u) - ours) for jg in jiggled_work_grads()), default=0.0)
        read = kinks.read_adjoint(line, ours, _abs_inner(g, u), floor, work_u, noise, fit, pb.piecewise)
        if read.outcome is None:
            tally.record_undecided(f"adjoint[{names[i]}]", dt, sc, "differences", read.describe() + where)
            continue
        adj = read.outcome
        tally.record_ratio(f"adjoint[{names[i]}]", dt, sc, "differences", adj.error, adj.ratio, adj.tolerance,
                    "Richardson central differences" + where)
        if not adj.ok:
            return ctx.finding(f"adjoint[{names[i]}]", "differences", "disagreement",
                               f"the VJP with respect to {names[i]} is wrong along a random direction: "
                               f"{read.describe()}{where}", extra)

    # ---- the checked dtype against float64, and the framework opinions
    def rerun(move: Callable[[np.ndarray], np.ndarray], at_args: Sequence[Any], at_v: Sequence[np.ndarray]
              ) -> list[list[list[np.ndarray]]]:
        """The VJP's gradients at ``SPREAD_TRIALS`` moved copies of the
        inputs and cotangent (``move`` applied to each floating leaf)."""

        def jiggle(x: np.ndarray) -> np.ndarray:
            return move(x).astype(x.dtype) if is_float(x.dtype) else x.copy()

        runs = []
        for _ in range(numerics.SPREAD_TRIALS):
            a_m = tuple(pytree.tree_map(jiggle, a) for a in at_args)
            v_m = [jiggle(v) for v in at_v]
            try:
                g_m, _e, _ = _run_vjp(pb, pytree.unflatten(out_s, v_m), a_m, wrt, names, "")
            except UnsatisfiedAssumption:
                continue
            if g_m is not None:
                runs.append(g_m)
        return runs

    perturbed: dict[str, list[list[list[np.ndarray]]]] = {}

    def spread_runs(of: np.dtype) -> list[list[list[np.ndarray]]]:
        if of.name not in perturbed:
            rho = numerics.SPREAD_ROUNDINGS * numerics.unit_roundoff(of)
            perturbed[of.name] = rerun(
                lambda x: x + rho * rng.standard_normal(x.shape) * numerics.direction_scale(x), work_args, work_v)
        return perturbed[of.name]

    jittered: list[list[list[np.ndarray]]] = []

    def one_ulp_away(x: np.ndarray) -> np.ndarray:
        toward = np.where(rng.random(x.shape) < 0.5, -np.inf, np.inf).astype(x.dtype)
        return np.where(rng.random(x.shape) < 0.5, np.nextafter(x, toward), x)

    def noise_runs() -> list[list[list[np.ndarray]]]:
        # the checked dtype's own rounding noise: the same VJP at inputs and cotangent one ulp away
        if not jittered:
            jittered.extend(rerun(one_ulp_away, args, v_leaves))
        return jittered

    def compare(check: str, against: str, theirs: list[list[np.ndarray]], ours: list[list[np.ndarray]],
                exclude_kinks: bool) -> Finding | None:
        runs = spread_runs(dtype)
        noisy = noise_runs()
        input_scale = max((float(np.max(np.abs(x))) for a in args for x in pytree.flatten(a)[0]
                           if is_float(x.dtype) and x.size), default=0.0)
        secant = max(max((float(np.max(np.abs(v))) for v in work_v if v.size), default=0.0)
                     * max((float(np.max(np.abs(o))) for o in work_out if o.size), default=0.0),
                     intermediate) / max(input_scale, 1e-300)
        gradient_scale = max([secant] + [float(np.max(np.abs(g))) for part in work_g for g in part if g.size])
        for k, i in enumerate(wrt):
            masks = _kink_mask(args[i], kinds[i] if i < len(kinds) else None)
            worst, worst_tol, worst_err, where_txt = 0.0, math.nan, 0.0, ""
            paths = pytree.leaf_paths(pytree.flatten(args[i])[1], f"d{names[i]}")
            for j, (a, b) in enumerate(zip(ours[k], theirs[k])):
                tol = numerics.spread_tolerance(work_g[k][j], [r[k][j] for r in runs], dtype,
                                                grads[k][j], [r[k][j] for r in noisy], gradient_scale, input_scale)
                if against != "float64":
                    tol = 2 * tol  # two implementations, each within the bound
                err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
                err = np.where(np.isnan(err), np.inf, err)
                if exclude_kinks:
                    err = np.where(masks[j], 0.0, err)
                if err.size == 0:
                    continue
                ratio = err / tol
                flat = int(np.argmax(ratio))
                if ratio.flat[flat] >= worst:
                    idx = tuple(int(q) for q in np.unravel_index(flat, err.shape))
                    worst, worst_tol, worst_err = float(ratio.flat[flat]), float(tol.flat[flat]), float(err.flat[flat])
                    where_txt = (f"{paths[j]}{list(idx)}: yours {float(np.asarray(a).flat[flat])!r}, "
                                 f"{against} {float(np.asarray(b).flat[flat])!r}")
            tally.record_ratio(f"{check}[{names[i]}]", dt, sc, against, worst_err, worst, worst_tol,
                        "backward-stable spread, see numerics")
            if not worst <= 1.0:
                return ctx.finding(f"{check}[{names[i]}]", against, "disagreement",
                                   f"the {dt} gradient with respect to {names[i]} disagrees with {against} at "
                                   f"{where_txt}; error {worst_err:.3e}, tolerance {worst_tol:.3e} "
                                   f"(error/tolerance = {worst:.3g})")
        return None

    if dtype != _FLOAT64 and generic:
        found = compare("float32 vs float64", "float64", work_g, grads, exclude_kinks=False)
        if found:
            return found
    for backend in pb.backends:
        if backend in counters.opinions_left_out:
            continue
        try:
            theirs = framework_vjp(backend, pb.f, args, wrt, cot)
        except UnsatisfiedAssumption:
            raise
        except Exception as e:  # f not generic, or the framework failing on the input: a finding, not a crash
            msg = f"{backend} could not differentiate your {pb.f_name}: {type(e).__name__}: {e}"
            own = getattr(getattr(pb.f, "session", None), "framework", None) == backend
            if backend not in counters.opinions_ran and not own:  # never ran: f is not code it can run
                counters.opinions_left_out[backend] = f"{type(e).__name__}: {str(e)[:160]}"
                continue
            tally.record_error(f"{backend} autograd", dt, sc, backend, msg)
            return ctx.finding(f"{backend} autograd", backend, "backend error", msg)
        counters.opinions_ran.add(backend)
        if pb.gradient_only:
            theirs = [[t * v_leaves[0].reshape(()) for t in part] for part in theirs]
        found = compare("autograd", backend, theirs, grads, exclude_kinks=True)
        if found:
            return found
    return None
