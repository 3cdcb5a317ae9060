"""The op registry: :class:`Op`, its input :class:`Domain`, the :func:`op`
decorator that pairs a forward with its VJP rule (``@forward.defvjp``), and
:data:`OPS`. The ops themselves are in :mod:`reference_impl.ops`.

Every public entry validates here once, in :meth:`Op._prepare`: the inputs'
count, parameters, dtypes and the op's own check, then the size of the
result the inputs would produce (a broadcast or a product of small inputs
may be huge).
"""

from __future__ import annotations

import dis
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ._validate import as_array, check_choice, check_cotangent, check_same_dtype, check_size, overflow_remedy
from .wide import precision

__all__ = ["Arrays", "Params", "Domain", "Op", "OPS", "op"]

Arrays = tuple[np.ndarray, ...]
Params = dict[str, Any]


@dataclass(frozen=True)
class Domain:
    """Which inputs an op accepts, declared for input generators
    (``reference_impl.strategies``); the ``check`` functions enforce it.

    ``shapes`` is one of ``elementwise`` (any shape), ``broadcast_pair``,
    ``matmul``, ``dense``, ``rows`` (last axis = classes), ``row_pairs`` (two
    arrays of one shape, classes last) or ``same_pair``. ``values`` gives one
    kind per input: ``real``, ``kinked`` (real with exact zeros, for relu),
    ``logits``, ``distribution`` or ``positive_distribution``.
    """

    shapes: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Op:
    """A registered primitive.

    ``forward`` and ``vjp`` validate their arguments; ``vjp_from_output`` is
    the bare rule for callers (the networks) that already hold validated
    inputs and the forward output.
    """

    name: str
    arg_names: tuple[str, ...]
    """Positional inputs, in order; the VJP returns one gradient per name."""
    params: Mapping[str, tuple[str, ...]]
    """Keyword parameters and their allowed values; the first is the default."""
    impl: Callable[..., np.ndarray] = field(repr=False)
    rule: Callable[..., Arrays] = field(repr=False)
    check: Callable[[Arrays, Params], None] = field(repr=False)
    formula: str
    """Forward and VJP formulas, one line each."""
    sources: tuple[str, ...]
    """Keys into ``reference_impl.sources.SOURCES``."""
    domain: Domain

    def _prepare(self, inputs: tuple[Any, ...], params: Params) -> tuple[Arrays, Params]:
        if len(inputs) != len(self.arg_names):
            raise TypeError(
                f"{self.name}: expected {len(self.arg_names)} input(s) {list(self.arg_names)}, got {len(inputs)}"
            )
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(
                f"{self.name}: unexpected parameter(s) {sorted(unknown)}; accepted: {sorted(self.params)}"
            )
        full = {k: v[0] for k, v in self.params.items()}
        for k, v in params.items():
            full[k] = check_choice(v, k, self.params[k])
        arrays = tuple(as_array(x, n) for x, n in zip(inputs, self.arg_names))
        if len(arrays) > 1:
            check_same_dtype(**dict(zip(self.arg_names, arrays)))
        self.check(arrays, full)
        check_size(_result_shape(self.domain.shapes, arrays), f"{', '.join(self.arg_names)}: the result of {self.name}")
        return arrays, full

    def forward(self, *inputs: Any, **params: Any) -> np.ndarray:
        ans = self.evaluate(*inputs, **params)
        _representable((ans,), self.name, self.arg_names, ("the result",))
        return ans

    def evaluate(self, *inputs: Any, **params: Any) -> np.ndarray:
        """The forward on validated inputs with IEEE overflow: ``+-inf`` where
        the true value is beyond the dtype's range, for callers (the
        networks) that report an overflow in their own terms."""
        arrays, full = self._prepare(inputs, params)
        with np.errstate(over="ignore", invalid="ignore"), precision():
            return self.impl(*arrays, **full)

    def vjp(self, cotangent: Any, *inputs: Any, **params: Any) -> Arrays:
        arrays, full = self._prepare(inputs, params)
        # the rule needs only the output's shape where it overflows
        with np.errstate(over="ignore", invalid="ignore"), precision():
            shape = _output_shape(self.domain.shapes, arrays)
            if shape is None or _reads_output(self.rule):
                ans = self.impl(*arrays, **full)
            else:
                # the wide-precision forward is not run only to learn the output's shape
                ans = np.broadcast_to(np.zeros((), arrays[0].dtype), shape)
            g = check_cotangent(cotangent, ans.shape, ans.dtype)
            grads = self.rule(g, ans, *arrays, **full)
        _representable(grads, self.name + "_vjp", ("cotangent", *self.arg_names),
                       tuple(f"the gradient w.r.t. {n}" for n in self.arg_names))
        return grads

    def vjp_from_output(self, cotangent: np.ndarray, ans: np.ndarray, *inputs: np.ndarray, **params: Any) -> Arrays:
        full = {k: v[0] for k, v in self.params.items()}
        full.update(params)
        with precision():
            return self.rule(cotangent, ans, *inputs, **full)


def _representable(results: Arrays, name: str, arg_names: tuple[str, ...], what: tuple[str, ...]) -> None:
    """The overflow policy (README, "bad input"): the inputs are finite, so a
    non-finite result means its true value is beyond the dtype's range -- an
    error naming the inputs, never an inf or a NaN handed back."""
    for part, label in zip(results, what):
        if not np.all(np.isfinite(part)):
            remedy = overflow_remedy(part.dtype, "pass inputs of smaller magnitude")
            raise ValueError(f"{', '.join(arg_names)}: {label} of {name} is not representable in {part.dtype} "
                             f"(its true value is beyond the dtype's range); {remedy}")


@functools.cache
def _reads_output(rule: Callable[..., Arrays]) -> bool:
    """Whether a VJP rule reads its ``ans`` argument (the forward's output)."""
    return any(ins.opname.startswith("LOAD") and "ans" in (
        ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)) for ins in dis.get_instructions(rule))


def _output_shape(shapes: str, arrays: Arrays) -> tuple[int, ...] | None:
    """The forward's output shape from the inputs' shapes, or ``None`` where
    only the forward knows it. ``row_pairs`` ops are losses: a scalar under
    every reduction."""
    if shapes in ("elementwise", "rows"):
        return arrays[0].shape
    if shapes == "row_pairs":
        return ()
    if shapes in ("broadcast_pair", "dense"):
        return _result_shape(shapes, arrays)
    if shapes == "matmul":  # np.matmul drops the axis it added to a 1-D operand
        full = _result_shape(shapes, arrays)
        return (*full[:-2], *full[-2:-1][:arrays[0].ndim - 1], *full[-1:][:arrays[1].ndim - 1])
    return None


def _result_shape(shapes: str, arrays: Arrays) -> tuple[int, ...]:
    """The shape of the result (up to axes of length 1), known before it is
    computed. Only a broadcast or a product can outgrow its inputs; every
    other op's result is no larger than its largest input, already checked."""
    if shapes == "broadcast_pair":
        return np.broadcast_shapes(arrays[0].shape, arrays[1].shape)
    if shapes == "matmul":  # 1-D operands promoted as np.matmul does; the added axis has length 1
        a, b = (x.shape if x.ndim > 1 else s for x, s in zip(arrays, ((1, *arrays[0].shape), (*arrays[1].shape, 1))))
        return (*np.broadcast_shapes(a[:-2], b[:-2]), a[-2], b[-1])
    if shapes == "dense":
        return (*arrays[0].shape[:-1], arrays[1].shape[-1])
    return ()


_REGISTRY: dict[str, Op] = {}
OPS: Mapping[str, Op] = MappingProxyType(_REGISTRY)
"""Read-only mapping from op name to :class:`Op`."""


def _no_check(arrays: Arrays, params: Params) -> None:
    return None


class _Forward:
    """A decorated forward waiting for its VJP rule (``@forward.defvjp``)."""

    def __init__(self, impl: Callable[..., np.ndarray], settings: dict[str, Any]) -> None:
        self.impl = impl
        self.settings = settings
        self.__doc__ = impl.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        with precision():
            return self.impl(*args, **kwargs)

    def defvjp(self, rule: Callable[..., Arrays]) -> Callable[..., Arrays]:
        s = self.settings
        _REGISTRY[s["name"]] = Op(s["name"], s["inputs"], MappingProxyType(dict(s["params"] or {})), self.impl, rule,
                                  s["check"], s["formula"], s["sources"], s["domain"])
        return rule


def op(name: str, *, inputs: tuple[str, ...], domain: Domain, formula: str, sources: tuple[str, ...],
       check: Callable[[Arrays, Params], None] = _no_check,
       params: Mapping[str, tuple[str, ...]] | None = None) -> Callable[[Callable[..., np.ndarray]], _Forward]:
    """Declare the forward of op ``name``; ``@<forward>.defvjp`` below it
    attaches the VJP rule and registers the op in :data:`OPS`."""
    if name in _REGISTRY:
        raise ValueError(f"name: op {name!r} is already registered")
    settings = {"name": name, "inputs": inputs, "domain": domain, "formula": formula, "sources": sources,
                "check": check, "params": params}
    return lambda impl: _Forward(impl, settings)
