"""Faults survived and incremental ingest, with real processes.

A Dask scheduler and two worker processes are started here with the `dask` command, Prefect is a real server
(test harness), the study is a tiny synthetic SONIA cohort of 2 patients. Every run is compared byte for byte with
one undisturbed run: a worker SIGKILLed mid-run, the flow's own process SIGKILLed and rerun, patients delivered in
two parts. A full disk is a file-size limit on the converting process.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from distributed import Client

from flows.environment import configure

configure()

from prefect.settings import PREFECT_API_URL  # noqa: E402  (Prefect reads its settings at import)
from prefect.testing.utilities import prefect_test_harness  # noqa: E402
from prefect_dask import DaskTaskRunner  # noqa: E402

from flows.pipeline import study_flow  # noqa: E402
from sonimage.dicom.pseudonym import Pseudonymiser  # noqa: E402
from sonimage.synth.study import generate_study  # noqa: E402
from sonimage.volumes.convert import convert_tree  # noqa: E402

BIN = Path(sys.executable).parent
TABLES = ("manifest.parquet", "quarantine.parquet", "features/lesion_features.parquet", "features/lesions.parquet",
          "features/patients.parquet", "features/registration.parquet")
KEY = "resilience-test-key"
SKIPPED = re.compile(r"(\d+) series converted, (\d+) skipped")


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    generate_study(out, cohorts=("sonia",), n_patients=2, size="tiny", seed=3)
    (out / "site.key").write_text(KEY)
    return out


def _env(api_url: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url,
            "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_": "None"}


@pytest.fixture(scope="module")
def scheduler(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and 2 single-threaded workers (each under its nanny), as `dask` commands, on loopback."""
    folder = tmp_path_factory.mktemp("dask")
    spec = folder / "scheduler.json"
    log = open(folder / "dask.log", "wb")
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", ":0", "--scheduler-file", spec],
                              env=_env(api_url), stdout=log, stderr=subprocess.STDOUT)]
    deadline = time.monotonic() + 60
    while not spec.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    procs += [subprocess.Popen([BIN / "dask", "worker", "--scheduler-file", spec, "--nthreads", "1", "--host",
                                "127.0.0.1", "--dashboard-address", ":0", "--name", f"w{i}"],
                               env=_env(api_url), stdout=log, stderr=subprocess.STDOUT) for i in range(2)]
    try:
        with Client(scheduler_file=str(spec)) as client:
            client.wait_for_workers(2, timeout=90)
            yield client.scheduler.address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _run_flow(study: Path, out: Path, address: str, dicom: Path | None = None) -> dict[str, str]:
    state = study_flow.with_options(task_runner=DaskTaskRunner(address=address))(
        str(out), str(dicom or study / "dicom"), str(study / "site-private" / "linking.csv"),
        str(study / "site.key"), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


@pytest.fixture(scope="module")
def reference(study: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One undisturbed run from scratch."""
    out = tmp_path_factory.mktemp("reference")
    _run_flow(study, out, scheduler)
    return out


def _digests(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in TABLES}


def _stores(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in (out / "volumes").glob("*/*/*.zarr") if (p / "zarr.json").is_file()}


def _assert_same_tables(out: Path, reference: Path) -> None:
    assert _digests(out) == _digests(reference)
    manifest = pd.read_parquet(out / "manifest.parquet")
    lesions = pd.read_parquet(out / "features" / "lesions.parquet")
    assert not manifest.duplicated(["series"]).any() and not lesions.duplicated(["patient", "lesion"]).any()
    assert len(manifest) == 10 and len(lesions) > 0  # 2 patients x (FDG, FES) x (PET, CT) + 2 RTSTRUCTs


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_worker_killed_mid_run_loses_nothing(study: Path, scheduler: str, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        with Client(scheduler) as client:
            pids = client.run(os.getpid)
            busy: dict = {}

            def converting() -> bool:
                busy.update({w: keys for w, keys in client.processing().items() if keys})
                return bool(busy) and (out / "volumes").is_dir()

            _wait(converting, 120, "a worker busy converting")
            victim = next(iter(busy))
            os.kill(pids[victim], signal.SIGKILL)  # the worker process itself; its nanny starts a new one
            killed.append(pids[victim])

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    _run_flow(study, out, scheduler)
    killer.join()
    assert killed, "no worker was killed"
    with Client(scheduler) as client:
        client.wait_for_workers(2, timeout=60)
        assert killed[0] not in client.run(os.getpid).values()
    _assert_same_tables(out, reference)


def _flow_command(study: Path, out: Path, address: str) -> list[str]:
    return [str(BIN / "sonimage"), "run", str(study / "dicom"), str(out), "--cluster", address,
            "--linking", str(study / "site-private" / "linking.csv"), "--key-file", str(study / "site.key")]


def test_flow_process_killed_then_rerun_resumes(study: Path, scheduler: str, api_url: str, reference: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "killed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(_flow_command(study, out, scheduler), env=_env(api_url), stdout=fh,
                                stderr=subprocess.STDOUT)
        try:
            _wait(lambda: len(_stores(out)) >= 3 or proc.poll() is not None, 180, "3 converted stores")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    done_before = _stores(out)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert 3 <= len(done_before) < 10 and not (out / "manifest.parquet").exists()

    rerun = subprocess.run(_flow_command(study, out, scheduler), env=_env(api_url), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    converted, skipped = map(int, SKIPPED.search(rerun.stdout + rerun.stderr).groups())
    assert skipped >= len(done_before) and converted + skipped == 10
    _assert_same_tables(out, reference)


def test_patients_added_between_runs_only_new_series_converted(study: Path, scheduler: str, reference: Path,
                                                               tmp_path: Path) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    first, second = sorted((study / "dicom" / "sonia").iterdir())
    shutil.copytree(first, drop / "sonia" / first.name)
    _run_flow(study, out, scheduler, drop)
    assert len(_stores(out)) == 5
    shutil.copytree(second, drop / "sonia" / second.name)
    before = {s: (out / s / "zarr.json").stat().st_mtime_ns for s in _stores(out)}
    _run_flow(study, out, scheduler, drop)
    after = {s: (out / s / "zarr.json").stat().st_mtime_ns for s in _stores(out)}
    assert len(after) == 10 and all(after[s] == t for s, t in before.items())  # the first patient's stores untouched
    _assert_same_tables(out, reference)


def test_changed_series_is_converted_again(study: Path, tmp_path: Path) -> None:
    dicom = tmp_path / "dicom"
    shutil.copytree(study / "dicom", dicom)
    pseudo = Pseudonymiser(KEY.encode())
    first = convert_tree(dicom, tmp_path / "out", pseudo)
    assert (first.n_converted, first.n_skipped) == (10, 0)
    manifest = first.manifest.read_bytes()
    again = convert_tree(dicom, tmp_path / "out", pseudo)
    assert (again.n_converted, again.n_skipped) == (0, 10)
    ct = next(p for p in sorted(dicom.rglob("*.dcm")) if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")
    ds = pydicom.dcmread(ct)
    ds.InstitutionName = "re-sent from PACS"  # same SeriesInstanceUID, other bytes
    ds.save_as(ct)
    changed = convert_tree(dicom, tmp_path / "out", pseudo)
    assert (changed.n_converted, changed.n_skipped) == (1, 9)
    assert changed.manifest.read_bytes() == manifest


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


def test_full_disk_names_the_store_and_leaves_no_store(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([str(BIN / "sonimage"), "convert", str(study / "dicom"), str(out), "--key-file",
                           str(study / "site.key")], preexec_fn=_limit_file_size, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert re.search(rf"cannot write volume store {re.escape(str(out))}/volumes/sonia/\S+\.zarr: File too large",
                     message), message
    assert not list(out.rglob("zarr.json")) and not list(out.rglob("*.tmp")) and not (out / "manifest.parquet").exists()
