"""The float64 elementwise reference against the plain float64 formulas.

Not a test: prints, on the machine it names, for ``sigmoid``, ``tanh``,
``softmax``, ``softmax_cross_entropy`` and ``cross_entropy``, forward and
VJP, at 1e3 ... 1e6 elements (rows of 10 classes for the row-wise ops), the
CPU time of the reference (``OPS[op].forward`` / ``.vjp``, validation
included) beside the textbook formulas in plain float64 NumPy on the same
inputs, and the ratio. Times are the best of ``--repeat`` runs
(``time.process_time``).

With ``--checks``: the time per example of ``check_network`` on a
784-512-10 float64 network (relu, softmax cross-entropy; a hand-written
NumPy ``value_and_grad`` as the code under test), and ``check_op`` with 100
examples beside ``torch.autograd.gradcheck`` in fast and full mode on the
same drawn float64 inputs (``bench_accuracy``'s drawing).

The header names the double-double path: the compiled kernels (numba) or
the NumPy path (``REFERENCE_IMPL_KERNELS=numpy``); the same bits either way.

Run: ``PYTHONPATH=. python benchmarks/bench_elementwise.py [--sizes 1000 1000000] [--repeat 3] [--checks]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_scaling import _best  # the least CPU time of repeated runs, as the scaling benchmark times

from reference_impl import OPS

try:
    from bench_scaling import machine
except ImportError:  # run from the repository root as a module path
    from benchmarks.bench_scaling import machine

CLASSES = 10


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _cases(n: int, rng: np.random.Generator) -> dict[str, tuple[tuple[np.ndarray, ...], np.ndarray,
                                                                 Callable[[], Any], Callable[[], Any]]]:
    """op -> (inputs, cotangent, plain forward, plain VJP)."""
    x = rng.standard_normal(n) * 4
    g = rng.standard_normal(n)
    z = rng.standard_normal((n // CLASSES, CLASSES)) * 4
    gz = rng.standard_normal(z.shape)
    t = rng.dirichlet(np.ones(CLASSES), size=z.shape[0])
    p = _softmax(z)
    rows = z.shape[0]

    def sig_vjp() -> Any:
        s = 1 / (1 + np.exp(-x))
        return g * s * (1 - s)

    def sm_vjp() -> Any:
        s = _softmax(z)
        return s * (gz - (gz * s).sum(axis=-1, keepdims=True))

    def lsm() -> np.ndarray:
        m = z.max(axis=-1, keepdims=True)
        return np.asarray(z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))

    def sce_vjp() -> Any:
        ls = lsm()
        return (np.exp(ls) - t) / rows, -ls / rows

    return {
        "sigmoid": ((x,), g, lambda: 1 / (1 + np.exp(-x)), sig_vjp),
        "tanh": ((x,), g, lambda: np.tanh(x), lambda: g * (1 - np.tanh(x) ** 2)),
        "softmax": ((z,), gz, lambda: _softmax(z), sm_vjp),
        "softmax_cross_entropy": ((z, t), np.array(1.0), lambda: -(t * lsm()).sum(axis=-1).mean(), sce_vjp),
        "cross_entropy": ((p, t), np.array(1.0), lambda: -(t * np.log(p)).sum(axis=-1).mean(),
                          lambda: (-t / p / rows, -np.log(p) / rows)),
    }


def _net_value_and_grad(params: Any, x: np.ndarray, t: np.ndarray) -> Any:
    (w1, b1), (w2, b2) = params
    z1 = x @ w1 + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ w2 + b2
    m = z2.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(z2 - m).sum(axis=-1, keepdims=True))
    loss = -(t * (z2 - lse)).sum() / x.shape[0]
    dz2 = (np.exp(z2 - lse) * t.sum(axis=-1, keepdims=True) - t) / x.shape[0]
    dz1 = (dz2 @ w2.T) * (z1 > 0)
    return np.asarray(loss), ((x.T @ dz1, dz1.sum(axis=0)), (a1.T @ dz2, dz2.sum(axis=0)))


def checks(examples: int = 100) -> None:
    """check_network per example, and check_op beside gradcheck fast and full."""
    import reference_impl as ri
    from reference_impl.networks import MLP

    net = MLP((784, 512, 10), ("relu", "identity"), cost="softmax_cross_entropy")
    for n in (4, 8):
        t0 = time.process_time()
        res = ri.check_network(net, value_and_grad=_net_value_and_grad, dtypes=("float64",), max_examples=n, seed=0)
        dt = time.process_time() - t0
        print(f"check_network 784-512-10 float64, {n} examples: {dt:.2f} s, {dt / n * 1e3:.0f} ms per example, "
              f"ok={res.ok}", flush=True)
    try:
        import torch
        from bench_accuracy import USER_VJPS, _drawn_examples, _time_check_op, _torch_function
    except ImportError as err:
        print(f"(no gradcheck comparison: {err})")
        return
    print(f"\n{'op':24s} {'check_op':>9s} {'ok':>5s} {'gc fast':>8s} {'ratio':>6s} {'gc full':>8s} {'ratio':>6s}"
          f"  ({examples} float64 examples, s)")
    for op in USER_VJPS:
        _time_check_op(op, "float64", 5, seed=1)
        t_op, ok = _time_check_op(op, "float64", examples, seed=0)
        drawn = _drawn_examples(op, "float64", examples, seed=0)
        times = []
        for fast in (True, False):
            t0 = time.process_time()
            for ex in drawn:
                args = tuple(torch.tensor(x, requires_grad=True) for x in ex.inputs)
                torch.autograd.gradcheck(_torch_function(op, ex.params), args, fast_mode=fast, raise_exception=False)
            times.append(time.process_time() - t0)
        print(f"{op:24s} {t_op:9.3f} {ok!s:>5s} {times[0]:8.3f} {t_op / times[0]:6.1f} {times[1]:8.3f} "
              f"{t_op / times[1]:6.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ops", nargs="+", default=None)
    parser.add_argument("--checks", action="store_true", help="time check_network and check_op beside gradcheck")
    parser.add_argument("--plain-longdouble", action="store_true",
                        help="set wide._LONG to float64, as on Windows and Apple silicon (no effect on any result)")
    args = parser.parse_args()
    if args.plain_longdouble:
        from reference_impl import wide

        wide._LONG = np.float64
    from reference_impl import double_double

    kernels = f"numba {importlib.metadata.version('numba')}" if double_double.KERNELS else "off (the NumPy path)"
    print(machine() + (", wide._LONG forced to float64" if args.plain_longdouble else "")
          + f", double-double kernels: {kernels}")
    if args.checks:
        checks()
        return
    print(f"{'op':<24}{'n':>9}  {'fwd ref ms':>11}{'plain':>9}{'ratio':>8}  {'vjp ref ms':>11}{'plain':>9}{'ratio':>8}")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        for op, (xs, g, plain_f, plain_v) in _cases(n, rng).items():
            if args.ops and op not in args.ops:
                continue
            spec = OPS[op]
            rf = _best(lambda spec=spec, xs=xs: spec.forward(*xs), args.repeat)  # type: ignore[misc]
            pf = _best(plain_f, args.repeat)
            rv = _best(lambda spec=spec, xs=xs, g=g: spec.vjp(g, *xs), args.repeat)  # type: ignore[misc]
            pv = _best(plain_v, args.repeat)
            print(f"{op:<24}{n:>9}  {rf * 1e3:>11.3f}{pf * 1e3:>9.3f}{rf / pf:>8.1f}  "
                  f"{rv * 1e3:>11.3f}{pv * 1e3:>9.3f}{rv / pv:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
