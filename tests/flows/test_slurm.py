"""`sonimage run --cluster slurm` on a real one-node SLURM cluster (slurmctld + slurmd + munge on this machine).

The study is a tiny synthetic SONIA cohort of 2 patients. The SLURM run's tables must equal the LocalCluster
run's byte for byte although one worker job is cancelled with ``scancel`` mid-run (its tasks rerun); workers given
a one-minute walltime retire before it (``--lifetime``) and are replaced, so work longer than one job's walltime
finishes.
Skips, naming the daemon, where SLURM or munge cannot start (e.g. not root, packages missing).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, as_completed

from flows.runners import dask_cluster, slurm_options
from sonimage.synth.generate import generate_study
from tests.flows.slurm_node import Unavailable, one_node

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TABLES = ("manifest.parquet", "quarantine.parquet", "features/lesion_features.parquet", "features/lesions.parquet",
          "features/patients.parquet", "features/registration.parquet", "features/fes_reading.parquet")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue (sonimage[slurm]) is not installed")
    cluster = one_node(tmp_path_factory.mktemp("slurm"))
    try:
        env = cluster.__enter__()
    except Unavailable as exc:
        pytest.skip(f"no SLURM cluster here: {exc}")
    try:
        yield env
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    generate_study(out, cohorts=("sonia",), n_patients=2, size="tiny", seed=3)
    (out / "site.key").write_text("slurm-test-key")
    return out


def _run(study: Path, out: Path, cluster: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [str(BIN / "sonimage"), "run", str(study / "dicom"), str(out), "--cluster", cluster, "--workers", "2",
               "--dashboard", "127.0.0.1:0", "--linking", str(study / "site-private" / "linking.csv"),
               "--key-file", str(study / "site.key")]
    run = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def _digests(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in TABLES}


def _jobs(env: dict[str, str]) -> set[str]:
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], env={**os.environ, **env}, capture_output=True, text=True)
    return set(queue.stdout.split())


def _job_logs(folder: Path) -> dict[str, str]:
    """Each worker job's log (dask-jobqueue writes the worker's and slurmstepd's messages to stderr)."""
    return {p.name: p.read_text(errors="replace") for p in folder.glob("*.err")} if folder.is_dir() else {}


def test_slurm_run_equals_local_run_with_a_worker_job_cancelled(slurm: dict[str, str], study: Path,
                                                                tmp_path: Path) -> None:
    local, batch = tmp_path / "local", tmp_path / "slurm"
    _run(study, local, "local", {})
    seen: set[str] = set()
    cancelled: list[str] = []
    finished = threading.Event()

    def cancel_a_worker_job_mid_run() -> None:
        while not finished.is_set():
            seen.update(_jobs(slurm))
            if not cancelled and seen and (batch / "volumes").is_dir():
                victim = min(seen, key=int)
                subprocess.run(["scancel", victim], env={**os.environ, **slurm}, check=True)
                cancelled.append(victim)
            time.sleep(0.2)

    watcher = threading.Thread(target=cancel_a_worker_job_mid_run)
    watcher.start()
    try:
        _run(study, batch, "slurm", slurm)
    finally:
        finished.set()
        watcher.join()
    assert cancelled, "no worker job was running during conversion"
    logs = _job_logs(batch / "logs")  # (that a lost job is replaced: the walltime test below)
    assert any(f"JOB {cancelled[0]} ON" in text and "CANCELLED" in text for text in logs.values())
    assert _digests(batch) == _digests(local)


def test_workers_retire_before_the_walltime_and_are_replaced(slurm: dict[str, str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SONIMAGE_SLURM_WALLTIME", "00:01:00")
    options = slurm_options()
    assert options["walltime"] == "00:01:00" and options["worker_extra_args"][:2] == ["--lifetime", "42s"]
    logs = tmp_path / "logs"
    with dask_cluster("slurm", 2, "127.0.0.1:0", logs) as (address, _), Client(address) as client:
        client.wait_for_workers(2, timeout=120)
        # 70 s of work per worker, more than one walltime. Results leave the workers as they come and nothing else
        # holds their futures (as a stage that gathers as it goes): a held future whose worker retired is recomputed.
        tasks = as_completed(client.map(time.sleep, [1.0] * 140, pure=False), with_results=True)
        statuses = [future.status for future, _ in tasks]
        assert statuses == ["finished"] * 140
    texts = _job_logs(logs)
    assert len(texts) >= 4, sorted(texts)
    assert any("worker-lifetime-reached" in t for t in texts.values())
    assert not any("DUE TO TIME LIMIT" in t for t in texts.values())
