"""How the reference's cost grows with size, as ratios against its peers.

Not a test: prints, on the machine it names (platform, CPU count, BLAS),

1. for square ``n x n`` inputs, n = 64 ... 1024, the time of the float64
   (and float32) ``dense`` reference, forward + VJP (``OPS["dense"]``),
   beside the same formulas in plain NumPy (``x @ W + b``, ``g @ W.T``,
   ``x.T @ g``, ``g.sum(0)``) and torch on the CPU (``x @ W + b`` and
   ``torch.autograd.grad``), on the same inputs, with the ratios;
2. for networks (relu hidden layers, softmax cross-entropy), the
   reference's ``value_and_grad`` against the same network in plain NumPy,
   over batch x width, so a cost that grows faster than the plain formulas
   shows as a growing ratio.

Times are CPU time (``time.process_time``: every thread's, so BLAS's threads
count), the best of ``--repeat`` runs. A regression shows as a ratio. On a
shared machine, run with ``OPENBLAS_NUM_THREADS=1`` (torch then gets one
thread too): idle BLAS threads spin, and their spinning is CPU time.

Run: ``PYTHONPATH=. python benchmarks/bench_scaling.py [--sizes 64 128 ...] [--repeat 5] [--dtype float64]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import reference_impl as ri
from reference_impl.networks import MLP


def _best(f: Callable[[], Any], repeat: int) -> float:
    """The least CPU time of ``repeat`` runs of ``f`` (after one warm-up run)."""
    f()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        f()
        times.append(time.process_time() - start)
    return min(times)


def machine() -> str:
    """Platform, CPU count, NumPy and its BLAS (threadpoolctl where installed, else NumPy's build config)."""
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        blas = ", ".join(libs) or blas
    except ImportError:
        config: Any = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        info = config.get("Build Dependencies", {}).get("blas", {}) if isinstance(config, dict) else {}
        blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
    return (f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, NumPy {np.__version__}, BLAS: {blas}, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
            f"longdouble: {np.finfo(np.longdouble).nmant + 1}-bit significand")


def _torch_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray) -> Callable[[], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    if os.environ.get("OPENBLAS_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))
    tx, tw, tb, tg = (torch.from_numpy(v.copy()) for v in (x, w, b, g))

    def run() -> Any:
        xs, ws, bs = (t.detach().requires_grad_(True) for t in (tx, tw, tb))
        y = xs @ ws + bs
        return torch.autograd.grad(y, (xs, ws, bs), tg)

    return run


def dense_table(sizes: list[int], dtype: np.dtype, repeat: int) -> None:
    print(f"\ndense forward + VJP, {dtype}, n x n inputs (CPU seconds, best of {repeat})")
    print(f"{'n':>6} {'reference':>11} {'plain':>11} {'torch':>11} {'ref/plain':>10} {'ref/torch':>10}")
    for n in sizes:
        t_ref, t_plain, t_torch = _dense_times(n, dtype, repeat)
        print(f"{n:>6} {t_ref:>11.4g} {t_plain:>11.4g} {t_torch:>11.4g} {t_ref / t_plain:>10.1f} "
              f"{t_ref / t_torch:>10.1f}")


def _dense_times(n: int, dtype: np.dtype, repeat: int) -> tuple[float, float, float]:
    """(reference, plain NumPy, torch) CPU seconds of dense forward + VJP on n x n inputs."""
    op = ri.OPS["dense"]
    rng = np.random.default_rng(n)
    x, w, g = (rng.standard_normal((n, n)).astype(dtype) for _ in range(3))
    b = rng.standard_normal(n).astype(dtype)

    def reference() -> Any:
        return op.forward(x, w, b), op.vjp(g, x, w, b)

    def plain() -> Any:
        return x @ w + b, (g @ w.T, x.T @ g, g.sum(axis=0))

    torch_run = _torch_dense(x, w, b, g)
    t_torch = _best(torch_run, repeat) if torch_run is not None else float("nan")
    return _best(reference, repeat), _best(plain, repeat), t_torch


def _plain_network(params: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, t: np.ndarray) -> Any:
    """The network of :func:`network_table` as plain NumPy formulas: relu
    hidden layers, softmax cross-entropy (mean) on the last, and its gradients."""
    acts = [x]
    for i, (w, b) in enumerate(params):
        z = acts[-1] @ w + b
        acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
    z = acts[-1]
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    loss = -(t * np.log(s)).sum() / len(x)
    g = (s - t) / len(x)
    grads = []
    for i in range(len(params) - 1, -1, -1):
        w, _ = params[i]
        grads.append((acts[i].T @ g, g.sum(axis=0)))
        g = (g @ w.T) * (acts[i] > 0) if i > 0 else g @ w.T
    return loss, grads


def network_table(batches: list[int], widths: list[int], dtype: np.dtype, repeat: int) -> None:
    print(f"\nnetwork value_and_grad, {dtype}: 64 inputs, two relu layers of the width, 10 classes, "
          f"softmax cross-entropy (CPU seconds, best of {repeat})")
    print(f"{'batch':>6} {'width':>6} {'reference':>11} {'plain':>11} {'ref/plain':>10}")
    for batch in batches:
        for width in widths:
            t_ref, t_plain = _network_times(batch, width, dtype, repeat)
            print(f"{batch:>6} {width:>6} {t_ref:>11.4g} {t_plain:>11.4g} {t_ref / t_plain:>10.1f}")


def _network_times(batch: int, width: int, dtype: np.dtype, repeat: int) -> tuple[float, float]:
    """(reference, plain NumPy) CPU seconds of one value_and_grad of the 64-width-width-10 net."""
    net = MLP((64, width, width, 10), ("relu", "relu", "identity"), cost="softmax_cross_entropy")
    params = net.init_params(seed=0, dtype=dtype)
    rng = np.random.default_rng(batch * width)
    x = rng.standard_normal((batch, 64)).astype(dtype)
    t = np.eye(10, dtype=dtype)[rng.integers(0, 10, batch)]
    return (_best(lambda: net.value_and_grad(params, x, t), repeat),
            _best(lambda: _plain_network(list(params), x, t), repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["dense", "networks"], default=None)
    args = parser.parse_args()
    print(machine())
    dtypes = [np.dtype(np.float64), np.dtype(np.float32)] if args.dtype == "both" else [np.dtype(args.dtype)]
    for dtype in dtypes:
        if args.only in (None, "dense"):
            dense_table(args.sizes, dtype, args.repeat)
        if args.only in (None, "networks"):
            network_table(args.batches, args.widths, dtype, args.repeat)


if __name__ == "__main__":
    main()
