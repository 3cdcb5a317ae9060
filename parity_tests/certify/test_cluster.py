"""``certify --scheduler``: the rows on a Dask cluster started by the test
give the certificate a local run gives (the same seed draws the same
examples wherever a row runs), and an unreachable scheduler is a usage
problem that names the option."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_impl.certify import command as certify

pytest.importorskip("distributed", reason="--scheduler needs dask.distributed (the 'cluster' extra)")

pytestmark = pytest.mark.numpy_only

SELECTION = ["--ops", "relu,tanh,softmax", "--backends", "fd", "--sections", "ops", "--max-examples", "4",
             "--no-progress"]
MEASURED = ("seconds",)
"""What depends on where and when a row ran; everything else must agree."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


def _rows(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [{k: v for k, v in r.items() if k not in MEASURED} for r in data["rows"]]


def test_rows_on_a_cluster_equal_the_local_run(cluster: Any, tmp_path: Path) -> None:
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    assert certify.main([*SELECTION, "--workers", "1", "--json", str(local)]) == 0
    assert certify.main([*SELECTION, "--scheduler", cluster.scheduler_address, "--json", str(remote),
                         "--project-workers", "2,8"]) == 0
    assert _rows(remote) == _rows(local)
    assert len(_rows(remote)) == 6
    timing = json.loads(remote.read_text(encoding="utf-8"))["timing"]
    assert timing["executor"] == f"on the Dask scheduler at {cluster.scheduler_address} (2 workers, 2 threads)"
    assert set(timing["projected_seconds"]) == {"2", "8"}
    assert all(float(r["seconds"]) > 0 for r in json.loads(remote.read_text(encoding="utf-8"))["rows"])


def test_the_rows_ran_on_the_workers(cluster: Any) -> None:
    from dask.distributed import Client, get_task_stream

    with Client(cluster.scheduler_address) as client, get_task_stream(client) as stream:
        assert certify.main([*SELECTION, "--scheduler", cluster.scheduler_address]) == 0
    ran = [t for t in stream.data if str(t["key"]).startswith("timed_task")]
    assert len(ran) == 6, [t["key"] for t in stream.data]
    assert {t["worker"] for t in ran} <= set(cluster.scheduler_info["workers"])


def test_an_unreachable_scheduler_is_a_usage_problem(capsys: pytest.CaptureFixture[str]) -> None:
    code = certify.main([*SELECTION, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--scheduler: no Dask scheduler answered at tcp://127.0.0.1:9 within 1 s" in err
    assert "dask scheduler" in err and "dask worker tcp://127.0.0.1:9" in err


def test_a_malformed_scheduler_timeout_is_a_usage_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert certify.main([*SELECTION, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "0"]) == 2
    assert "--scheduler-timeout: must be > 0" in capsys.readouterr().err


def test_certify_loads_dask_and_matplotlib_only_on_use() -> None:
    code = ("import sys, reference_impl.certify; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'matplotlib')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
