"""``certify --scheduler ADDRESS``: the rows on a Dask cluster.

The client's executor (``dask.distributed.Client.get_executor``) takes the
place of the local process pool: the same task function, the same rows, the
same seed, so a row's result does not depend on where it ran. Every worker
must be able to import this version of ``reference_impl`` (and the
frameworks the run certifies against); :func:`connect` checks that before
any row runs and imports the frameworks there once, so that the row costs the
certificate records are the rows', not the imports'.

``dask.distributed`` is an optional dependency (the ``cluster`` extra),
imported here, on use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .. import __version__
from .baseline import UsageError

__all__ = ["CONNECT_TIMEOUT", "Cluster", "connect", "INSTALL"]

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the scheduler to answer, and for a first worker to join."""
INSTALL = "python -m pip install 'reference-impl[cluster]'"


@dataclass
class Cluster:
    """A connected client, its executor and what it has."""

    client: Any
    address: str
    workers: int
    threads: int

    def executor(self) -> Any:
        """A ``concurrent.futures.Executor`` whose tasks run on the cluster (not cached: ``pure=False``)."""
        return self.client.get_executor(pure=False)

    @property
    def description(self) -> str:
        return f"on the Dask scheduler at {self.address} ({self.workers} workers, {self.threads} threads)"

    def close(self) -> None:
        self.client.close()


def _worker_version(backends: tuple[str, ...]) -> str:
    """On a worker: import the rows' code and ``backends``' frameworks, and return its ``reference_impl`` version."""
    importlib.import_module("reference_impl.certify")
    get_backend = importlib.import_module("reference_impl.frameworks.backends").get_backend
    for b in backends:
        get_backend(b)
    if "jax" in backends:  # the network rows' jax adapters
        importlib.import_module("reference_impl.frameworks.networks")
    return str(importlib.import_module("reference_impl").__version__)


def connect(address: str, timeout: float = CONNECT_TIMEOUT, backends: tuple[str, ...] = ()) -> Cluster:
    """A client of the scheduler at ``address`` with at least one worker that
    runs this version of ``reference_impl``; :class:`UsageError`, naming
    ``--scheduler``, when there is none within ``timeout`` seconds. Each
    worker imports the frameworks of ``backends`` (``torch``, ``jax``) first."""
    if not isinstance(address, str) or not address.strip():
        raise UsageError("--scheduler: give the scheduler's address, e.g. tcp://10.0.0.5:8786")
    if not timeout > 0:
        raise UsageError(f"--scheduler-timeout: must be > 0 seconds, got {timeout}")
    try:
        from dask.distributed import Client as _Client
    except ImportError:
        raise UsageError(f"--scheduler needs dask.distributed; install it with: {INSTALL}") from None
    hint = f"start one with `dask scheduler` and workers with `dask worker {address}`"
    make: Any = _Client
    try:
        client = make(address, timeout=timeout, set_as_default=False)
    except Exception as e:  # an unreachable or malformed address: a usage problem, named
        raise UsageError(f"--scheduler: no Dask scheduler answered at {address} within {timeout:g} s "
                         f"({type(e).__name__}: {e}); {hint}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
        versions = client.run(_worker_version, tuple(b for b in backends if b != "fd"))
    except Exception as e:  # no worker joined, or a worker cannot import the package
        client.close()
        raise UsageError(f"--scheduler: the scheduler at {address} has no worker that can run the rows "
                         f"within {timeout:g} s ({type(e).__name__}: {e}); start workers with "
                         f"`dask worker {address}` where reference_impl {__version__} is installed") from None
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        client.close()
        raise UsageError(f"--scheduler: workers run another reference_impl than this {__version__}: "
                         + ", ".join(f"{w} has {v}" for w, v in sorted(wrong.items())))
    threads = sum(int(n) for n in client.nthreads().values())
    return Cluster(client, address, len(versions), threads)
