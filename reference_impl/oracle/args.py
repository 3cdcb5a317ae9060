"""The oracle's argument checks: misuse is reported as a problem that names
the argument, never raised from deep inside."""

from __future__ import annotations

import difflib
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import networks
from ..dtypes import resolve as resolve_dtype
from ..engine.calls import type_name
from ..engine.profiles import ENV_VAR, PROFILES
from ..frameworks import backends as fw_backends

__all__ = ["DTYPES", "SUPPORTED", "BACKENDS", "MAX_BATCH_LIMIT", "resolve_profile", "resolve_common", "check_callable",
           "resolve_net", "resolve_max_batch", "unknown_name"]

DTYPES = ("float32", "float64")
"""The dtypes searched by default; ``SUPPORTED`` are those that may be asked for."""
SUPPORTED = ("float16", "bfloat16", "float32", "float64")
BACKENDS = ("torch", "jax")
MAX_BATCH_LIMIT = 4096
"""The largest ``max_batch`` the network checks accept: a drawn batch is
run through the reference, the frameworks and the error model, all of
whose costs grow with it."""


def unknown_name(arg: str, kind: str, name: Any, valid: Sequence[str]) -> str:
    """``"<arg>: unknown <kind> 'x' (did you mean 'y'?); valid: a, b, c"``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{arg}: unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


def resolve_profile(profile: str | None, problems: list[str]) -> str:
    name = profile if profile is not None else os.environ.get(ENV_VAR, "dev")
    if name not in PROFILES:
        src = "profile" if profile is not None else ENV_VAR
        problems.append(f"{src}: {name!r} is not a profile; valid: {', '.join(PROFILES)}")
        return "dev"
    return name


def resolve_common(dtypes: Any, max_examples: Any, seed: Any, backends: Any, profile: str | None,
                    problems: list[str]) -> tuple[tuple[str, ...], int, int | None, tuple[str, ...], str]:
    prof = resolve_profile(profile, problems)
    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = (dtypes,)
    dts: list[str] = []
    try:
        items = list(dtypes)
    except TypeError:
        problems.append(f"dtypes: expected a sequence such as ('float32', 'float64'), got {type_name(dtypes)}")
        items = []
    for d in items:
        try:
            name = resolve_dtype(d).name
        except TypeError:
            name = str(d)
        if name not in SUPPORTED:
            problems.append(f"dtypes: {d!r} is not supported; use one or more of {', '.join(SUPPORTED)}")
        elif name not in dts:
            dts.append(name)
    if not dts and not problems:
        problems.append(f"dtypes: {dtypes!r} names no dtype; use 'float32' and/or 'float64'")
    if max_examples is None:
        n = PROFILES[prof]
    elif isinstance(max_examples, bool) or not isinstance(max_examples, numbers.Integral) or max_examples < 1:
        problems.append(f"max_examples: expected an int >= 1, got {max_examples!r}")
        n = 1
    else:
        n = int(max_examples)
    if seed is None:
        sd = 0 if prof == "ci" else None  # the ci profile is derandomized: the same examples every run
    elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        problems.append(f"seed: expected an int or None, got {seed!r}")
        sd = None
    else:
        sd = int(seed)
    if isinstance(backends, str):
        backends = tuple(b for b in backends.split(",") if b)
    bks: list[str] = []
    if backends is not None and not isinstance(backends, (tuple, list)):
        problems.append(f"backends: expected a sequence of names such as ('torch', 'jax'), got {type_name(backends)}")
        backends = ()
    for b in backends or ():
        if not isinstance(b, str) or b not in BACKENDS:
            problems.append(unknown_name("backends", "backend", b, BACKENDS))
            continue
        try:
            fw_backends.get_backend(b)
        except fw_backends.BackendUnavailable as e:
            problems.append(f"backends: {e}")
            continue
        if b not in bks:
            bks.append(b)
    return tuple(dts), n, sd, tuple(bks), prof


def check_callable(fn: Any, name: str, signature: str, problems: list[str]) -> None:
    if fn is not None and not callable(fn):
        problems.append(f"{name}: expected a callable {signature}, got {type_name(fn)}")


def resolve_net(net: Any, problems: list[str]) -> Any:
    if isinstance(net, networks.MLP):
        return net
    if isinstance(net, networks.Preset):
        return net.net
    if isinstance(net, str):
        if net in networks.PRESETS:
            return networks.PRESETS[net]().net
        problems.append(unknown_name("net", "preset", net, sorted(networks.PRESETS)) + " (or pass an MLP)")
        return None
    problems.append(f"net: expected a reference_impl.networks.MLP, a Preset or a preset key "
                    f"({', '.join(sorted(networks.PRESETS))}), got {type_name(net)}")
    return None


def resolve_max_batch(max_batch: Any, problems: list[str]) -> int:
    """``max_batch`` as an int in ``1..MAX_BATCH_LIMIT``, or a problem naming
    it; a batch above the limit raises ``ValueError`` at once, before any
    memory is spent on it."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral) or max_batch < 1:
        problems.append(f"max_batch: expected an int >= 1, got {max_batch!r}")
        return 1
    if int(max_batch) > MAX_BATCH_LIMIT:
        raise ValueError(f"max_batch: {max_batch} is above the limit of {MAX_BATCH_LIMIT} rows per drawn batch")
    return int(max_batch)

