"""``python -m reference_impl certify``: certify the reference on this machine.

Runs, in this process, the checks the parity suite runs -- with the same
hypothesis strategies, framework adapters and error model -- and prints one
row per subject, backend, dtype, mode and device:

* every op of ``OPS`` against torch (``torch.autograd.grad``), jax
  (``jax.vjp``) and central finite differences in float64 (the engine's
  adjoint test, :mod:`reference_impl.engine.adjoint`), forward and VJP, float32 and float64,
  in the modes (``--modes eager,compiled``) and on the devices (``--devices cpu,cuda``)
  of :mod:`reference_impl.certify.modes`;
* every network preset of the documents and random architectures against
  torch (``nn.Linear`` + autograd), jax (``jax.grad``) and finite differences
  of the loss, and gradient descent against ``torch.optim.SGD`` and
  ``optax.sgd``;
* every golden fixture, replayed through the reference, torch and jax
  against the documents' printed numbers.

Convention differences (``reference_impl.frameworks.recipes.CONVENTIONS``)
are listed as conventions. Rows run in parallel on a standard process pool
(``--workers N``, default every core this process may use); each row uses
the same seed wherever it runs, so the certificate does not depend on the
number of workers. ``--json`` and ``--markdown`` write a certificate
with the versions of Python, NumPy, torch, jax and hypothesis, the platform,
the seed and the profile; ``--baseline OLD.json`` ranks what moved since an
earlier certificate; ``--html`` writes a one-page report with a heatmap of
the grades (:mod:`.html`). ``--scheduler ADDRESS`` runs the rows on a Dask
cluster instead of the local pool (:mod:`.cluster`); ``--project-workers``
projects the run's time on more workers from the measured row costs.

Exit codes: 0 everything agrees, 1 a disagreement, 2 a usage or environment
problem (an unknown op, a backend that is not installed, an unreadable baseline).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import __version__
from ..dtypes import NAMES as DTYPE_NAMES
from ..engine.comparison import STRICT_ULP_LIMIT
from ..engine.profiles import PROFILES
from ..frameworks import backends as fw_backends
from ..frameworks.recipes import CONVENTIONS
from ..ops import OPS
from ..oracle.args import unknown_name
from . import cluster as dask_cluster
from .baseline import UsageError, compare_baseline, load_baseline
from .html import html_report
from .report import Certificate, Progress, markdown_report, text_report
from .tasks import CertRow, Settings, Task, Tick, plan, run_task

__all__ = ["main", "run", "CertRow", "Certificate", "Progress", "SECTIONS", "BACKEND_CHOICES", "compare_baseline",
           "add_arguments", "certify_run", "available_workers", "timed_task"]

SECTIONS = ("ops", "networks", "golden")
DEFAULT_DTYPES = ("float32", "float64")
"""The dtypes of a run without ``--dtypes``; float16 and bfloat16 on request."""
BACKEND_CHOICES = ("torch", "jax", "fd")
"""``fd``: central finite differences in float64 (framework-free)."""


DESCRIPTION = ("Certify the reference against torch, jax and finite differences: every op (float32 and float64; "
               "float16 and bfloat16 with --dtypes), the documents' network presets, random architectures, gradient "
               "descent and the golden fixtures. Exit 0: everything agrees; 1: a disagreement; 2: usage or "
               "environment problem.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``certify``'s options, on the parser :mod:`reference_impl.cli` builds."""
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
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: every core this process may use, "
                        f"here {available_workers()}); 1 runs every row in this process")
    p.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES),
                   help=f"comma-separated, from {', '.join(DTYPE_NAMES)} (bfloat16: ml_dtypes'); default: "
                        f"{','.join(DEFAULT_DTYPES)}")
    p.add_argument("--modes", default=None,
                   help=f"comma-separated, from {', '.join(fw_backends.MODES)} (compiled: torch.compile, jax.jit; "
                        "eager jax runs under jax.disable_jit()); default: each framework's usual mode, "
                        "torch eager and jax jitted")
    p.add_argument("--devices", default="cpu",
                   help=f"comma-separated, from {', '.join(fw_backends.DEVICES)} (cuda where the frameworks see a "
                        "GPU); default: cpu")
    p.add_argument("--strict", action="store_true",
                   help=f"also fail passing rows whose accuracy grade exceeds {STRICT_ULP_LIMIT:g} ulp")
    p.add_argument("--html", metavar="PATH", default=None,
                   help="write a one-page HTML report with a heatmap of the grades (needs matplotlib: the "
                        "'report' extra)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run the rows on the Dask cluster of this scheduler (e.g. tcp://10.0.0.5:8786) instead "
                        "of local processes (needs dask.distributed: the 'cluster' extra)")
    p.add_argument("--scheduler-timeout", metavar="SECONDS", type=float, default=dask_cluster.CONNECT_TIMEOUT,
                   help=f"how long to wait for the scheduler and a first worker (default "
                        f"{dask_cluster.CONNECT_TIMEOUT:g})")
    p.add_argument("--project-workers", metavar="N,N", default=None,
                   help="print the time the run would take on these numbers of workers, projected from the "
                        "measured row costs (e.g. 4,16,64)")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def settings_from(args: argparse.Namespace) -> Settings:
    """Validate the options; :class:`UsageError` for anything wrong."""
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
    for opt in ("json", "markdown", "html"):
        path = getattr(args, opt, None)
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"--{opt}: the folder of {path} does not exist")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers: must be >= 1, got {args.workers}")
    dtypes = _choices(getattr(args, "dtypes", ",".join(DEFAULT_DTYPES)), "--dtypes", "dtype", DTYPE_NAMES)
    modes = _choices(args.modes, "--modes", "mode", fw_backends.MODES) if args.modes is not None else []
    devices = _choices(getattr(args, "devices", "cpu"), "--devices", "device", fw_backends.DEVICES)
    _check_backends_installed([b for b in backends if b != "fd"])
    if "cuda" in devices:
        _check_cuda([b for b in backends if b != "fd"], devices)
    n = args.max_examples if args.max_examples is not None else PROFILES[args.profile]
    return Settings(tuple(dict.fromkeys(backends)), tuple(dict.fromkeys(ops)), tuple(dict.fromkeys(sections)),
                    n, args.seed, args.profile, workers=args.workers or available_workers(), strict=args.strict,
                    dtypes=tuple(dict.fromkeys(dtypes)), modes=tuple(dict.fromkeys(modes)),
                    devices=tuple(dict.fromkeys(devices)))


def _choices(value: str | None, option: str, what: str, valid: Sequence[str]) -> list[str]:
    chosen = _split(value)
    if not chosen:
        raise UsageError(f"{option}: empty; choose from {', '.join(valid)}")
    for c in chosen:
        if c not in valid:
            raise UsageError(unknown_name(option, what, c, valid))
    return chosen


def _check_cuda(frameworks: Sequence[str], devices: Sequence[str]) -> None:
    """``--devices cuda`` needs a GPU that every selected framework sees."""
    lacking = [b for b in frameworks if "cuda" not in fw_backends.devices_present(b)]
    if not frameworks or lacking:
        who = ", ".join(lacking) if lacking else "finite differences (NumPy)"
        others = [d for d in devices if d != "cuda"] or ["cpu"]
        raise UsageError(f"--devices cuda: no CUDA device is present here for {who} "
                         "(torch.cuda.is_available(), jax.devices('gpu')); "
                         f"certify on --devices {','.join(others)}")


def _check_backends_installed(backends: Sequence[str]) -> None:
    missing = [b for b in backends if not fw_backends.available(b)]
    if missing:
        lines = [f"backend {b!r} is not installed; install it with: {fw_backends.INSTALL_HINT[b]}" for b in missing]
        others = [b for b in BACKEND_CHOICES if b not in missing]
        lines.append(f"or certify without it: --backends {','.join(others)}")
        raise UsageError("\n".join(lines))


def conventions(backends: Sequence[str]) -> list[dict[str, Any]]:
    """Each convention of ``frameworks.recipes.CONVENTIONS``, with the values
    the frameworks give at relu's kink where they are installed: a
    difference of convention, listed, never counted as a failure."""
    out: list[dict[str, Any]] = [{"name": k, "convention": v, "status": "convention"} for k, v in CONVENTIONS.items()]
    probes: dict[str, list[float]] = {"reference relu": OPS["relu"].vjp(np.ones(2), np.array([0.0, -0.0]))[0].tolist()}
    probes.update(fw_backends.relu_kink_probes(backends))
    for entry in out:
        if entry["name"] == "relu'(0)":
            entry["measured at [0.0, -0.0]"] = probes
    return out


def environment() -> dict[str, Any]:
    """Versions of everything the result depends on, read without importing
    torch or jax (``importlib.metadata``)."""
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
        "workers_available": available_workers(),
    }


def available_workers() -> int:
    """The cores this process may run on (its affinity mask where the
    platform has one)."""
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        return int(count() or 1)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cost(task: Task) -> int:
    """A rough order of the rows' run times: the longest start first, so
    that no worker is left with a long row at the end."""
    return ({"network": 3, "sgd": 2, "op": 1}.get(task.section, 0) + (2 if task.backend == "jax" else 0)
            + (5 if task.mode == "compiled" and task.backend == "torch" else 0))


_PRELOAD = ["reference_impl.certify", "reference_impl.frameworks.networks"]
"""Imported once by the fork server (torch and jax with them, which take
seconds to import), then inherited by every worker it forks."""


def _pool_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it: a clean single-threaded
    process that has imported the frameworks once forks every worker (no
    fork of this process, whose threads are unknown); ``spawn`` elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _one_thread_per_worker() -> None:
    """The pool already uses every core: a worker's torch runs its (tiny)
    ops on one thread instead of competing with the other workers."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def timed_task(task: Task, s: Settings, tick: Tick | None = None) -> CertRow:
    """:func:`run_task`, its row's ``seconds`` the whole row's cost where it ran
    (what ``--project-workers`` schedules)."""
    start = time.monotonic()
    row = run_task(task, s, tick)
    row.seconds = time.monotonic() - start
    return row


def run(s: Settings, progress_stream: TextIO | None = None, progress: bool = True,
        executor: Executor | None = None, executor_name: str = "") -> Certificate:
    """Compute every row of :func:`plan`: on ``executor`` where given (a Dask
    cluster's), else in this process with one worker, else on a local process
    pool (``forkserver`` or ``spawn``: no fork of this process's threads);
    rows keep the plan's order."""
    start = time.monotonic()
    tasks = plan(s)
    bar = Progress(len(tasks), progress_stream, enabled=progress)
    rows: list[CertRow | None] = [None] * len(tasks)
    conv: list[dict[str, Any]] = []
    if executor is None and (s.workers <= 1 or len(tasks) <= 1):
        executor_name = "in this process"
        for b in s.backends:  # the frameworks' imports outside the rows' costs
            if b != "fd":
                fw_backends.get_backend(b)
        for i, task in enumerate(tasks):
            bar.begin(task.label)
            rows[i] = timed_task(task, s, bar.tick)
            bar.finish(rows[i].status.upper())  # type: ignore[union-attr]
        conv = conventions(s.backends) if "ops" in s.sections else []
    else:
        if executor is None:
            n = min(s.workers, len(tasks))
            executor_name = f"on {n} local worker processes"
            executor = ProcessPoolExecutor(max_workers=n, mp_context=_pool_context(),
                                           initializer=_one_thread_per_worker)
        order = sorted(range(len(tasks)), key=lambda i: -_cost(tasks[i]))
        with executor as pool:
            futures = {pool.submit(timed_task, tasks[i], s): i for i in order}
            probes = pool.submit(conventions, s.backends) if "ops" in s.sections else None
            for future in as_completed(futures):
                i = futures[future]
                rows[i] = future.result()
                bar.label, bar.examples = tasks[i].label, rows[i].examples  # type: ignore[union-attr]
                bar.finish(rows[i].status.upper())  # type: ignore[union-attr]
            conv = probes.result() if probes is not None else []
    bar.close()
    done = [r for r in rows if r is not None]
    return Certificate(s, done, environment(), conv, time.monotonic() - start,
                       _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), executor=executor_name)


def _project_workers(value: str | None) -> tuple[int, ...]:
    out = []
    for v in _split(value):
        if not v.isdigit() or int(v) < 1:
            raise UsageError(f"--project-workers: {v!r} is not a worker count >= 1 (give e.g. 4,16,64)")
        out.append(int(v))
    if value is not None and not out:
        raise UsageError("--project-workers: empty; give worker counts, e.g. 4,16,64")
    return tuple(dict.fromkeys(out))


def _check_html(path: str | None) -> None:
    if path is not None and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--html needs matplotlib; install it with: python -m pip install 'reference-impl[report]'")


def certify_run(args: argparse.Namespace) -> int:
    """``certify`` on parsed options; returns the exit code."""
    html = getattr(args, "html", None)
    scheduler = getattr(args, "scheduler", None)
    cluster = None
    try:
        s = settings_from(args)
        baseline = load_baseline(Path(args.baseline)) if args.baseline else None
        projected = _project_workers(getattr(args, "project_workers", None))
        _check_html(html)
        if scheduler is not None:
            cluster = dask_cluster.connect(scheduler, getattr(args, "scheduler_timeout", dask_cluster.CONNECT_TIMEOUT),
                                           s.backends)
    except UsageError as e:
        print(f"certify: {e}", file=sys.stderr)
        return 2
    try:
        if cluster is not None:
            cert = run(s, progress=not args.no_progress, executor=cluster.executor(),
                       executor_name=cluster.description)
        else:
            cert = run(s, progress=not args.no_progress)
    finally:
        if cluster is not None:
            cluster.close()
    cert.project_workers = projected
    if baseline is not None:
        cert.baseline = compare_baseline(baseline, cert.rows, cert.environment, str(args.baseline),
                                         cert.settings_dict())
    print(text_report(cert))
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(cert.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if args.markdown:
            Path(args.markdown).write_text(markdown_report(cert), encoding="utf-8")
        if html:
            Path(html).write_text(html_report(cert), encoding="utf-8")
    except OSError as e:
        print(f"certify: cannot write the report: {e}", file=sys.stderr)
        return 2
    return 1 if cert.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``certify`` with its options, as ``python -m reference_impl certify`` runs it."""
    parser = argparse.ArgumentParser(prog="python -m reference_impl certify", description=DESCRIPTION)
    add_arguments(parser)
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # argparse exits 2 on bad usage and 0 for --help
        return int(e.code) if isinstance(e.code, int) else 2
    return certify_run(args)


certify_main = main
