"""Operation with real processes: the stack, scheduled and incremental ingest, faults survived.

`make stack`'s processes are started once for the module (PostgreSQL, Prefect server with its scheduler service, a
Dask scheduler and 2 worker processes, an S3-compatible object store, a process work pool worker); the study is a
tiny synthetic SONIA cohort of 2 patients. The nightly deployment's own scheduled run is the undisturbed reference;
every other run is compared with it byte for byte: a worker SIGKILLed mid-run, the flow's process SIGKILLed and
rerun, patients delivered in two parts, a deployment run from and to the object store. A full disk is a file-size
limit on the converting process.
"""

from __future__ import annotations

import hashlib
import json
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
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import fsspec
import pandas as pd
import pydicom
import pytest
import xarray as xr
import yaml
from distributed import Client

from flows.environment import configure

configure()

from prefect.client.orchestration import get_client  # noqa: E402  (Prefect reads its settings at import)
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName  # noqa: E402
from prefect.client.schemas.objects import FlowRun  # noqa: E402
from prefect.events.worker import EventsWorker  # noqa: E402
from prefect.logging.handlers import APILogWorker  # noqa: E402
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings  # noqa: E402
from prefect.states import Scheduled  # noqa: E402
from prefect_dask import DaskTaskRunner  # noqa: E402

from flows.pipeline import study_flow  # noqa: E402
from flows.stack import REPO, Stack, up  # noqa: E402
from sonimage.storage import location, mirror  # noqa: E402
from sonimage.dicom.index import index_files, list_files  # noqa: E402
from sonimage.dicom.pseudonym import Pseudonymiser, content_digest  # noqa: E402
from sonimage.synth.generate import generate_study  # noqa: E402
from sonimage.tables.partitions import write_cohort_partitions  # noqa: E402
from sonimage.stages import convert as convert_stage
from sonimage.dicom.conversion import plan_from_index  # noqa: E402

pytestmark = pytest.mark.slow  # starts the production stack as processes

BIN = Path(sys.executable).parent
TABLES = ("manifest.parquet", "quarantine.parquet", "features/lesion_features.parquet", "features/lesions.parquet",
          "features/patients.parquet", "features/registration.parquet")
KEY = "resilience-test-key"
SKIPPED = re.compile(r"(\d+) series converted, (\d+) skipped")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`make stack`'s processes: PostgreSQL, Prefect server (scheduler service on), Dask scheduler + 2 workers,
    object store, process work pool worker. Without PostgreSQL binaries the server runs on SQLite and only the
    stack test skips."""
    folder = tmp_path_factory.mktemp("stack")
    try:
        services, services.missing = up(folder), ""
    except FileNotFoundError as exc:  # PostgreSQL not installed
        services = up(folder, postgres=False)
        services.missing = str(exc)
    try:
        with temporary_settings({PREFECT_API_URL: services.env["PREFECT_API_URL"],
                                 PREFECT_API_AUTH_STRING: services.env["PREFECT_API_AUTH_STRING"]}):
            yield services
            # deliver this process's last logs and events while the server is up (later modules would wait on them)
            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
    finally:
        services.stop()


@pytest.fixture(scope="module")
def scheduler(stack: Stack) -> str:
    return stack.env["SONIMAGE_DASK_ADDRESS"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    generate_study(out, cohorts=("sonia",), n_patients=2, size="tiny", seed=3)
    (out / "site.key").write_text(KEY)
    return out


def _run_flow(study: Path, out: Path, address: str, dicom: Path | None = None) -> dict[str, str]:
    state = study_flow.with_options(task_runner=DaskTaskRunner(address=address))(
        str(out), str(dicom or study / "dicom"), str(study / "site-private" / "linking.csv"),
        str(study / "site.key"), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


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


def test_flow_process_killed_then_rerun_resumes(study: Path, stack: Stack, scheduler: str, reference: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "killed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(_flow_command(study, out, scheduler), env=stack.environ(), stdout=fh,
                                stderr=subprocess.STDOUT)
        try:
            _wait(lambda: len(_stores(out)) >= 3 or proc.poll() is not None, 180, "3 converted stores")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    done_before = _stores(out)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert 3 <= len(done_before) < 10 and not (out / "manifest.parquet").exists()

    rerun = subprocess.run(_flow_command(study, out, scheduler), env=stack.environ(), capture_output=True, text=True,
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
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["series converted"] == 5 and summary["series skipped (same bytes as before)"] == 5
    assert summary["lesions"] == len(pd.read_parquet(reference / "features" / "lesions.parquet"))
    # the first patient's lesion stage is reused (its stores and the settings unchanged), the new one computed
    assert summary["patients' lesion features computed"] == 1
    assert summary["patients' lesion features reused (inputs unchanged)"] == 1
    _assert_same_tables(out, reference)


def _assert_digest_is_keyed(dicom: Path, out: Path, pseudo: Pseudonymiser) -> None:
    """The digest a store records is keyed: that of the site key, not the plain SHA-256 of the series' files, and
    another under another key; the key itself is in no store."""
    jobs = plan_from_index([index_files(list_files(dicom), dicom)], pseudo).images
    job = next(j for j in jobs if j.plan.modality == "CT")
    files = [dicom / f for f in job.plan.files]
    attrs = json.loads((out / job.store / "zarr.json").read_text())["attributes"]
    plain = hashlib.sha256()
    for f in files:
        plain.update(f.stat().st_size.to_bytes(8, "little"))
        plain.update(f.read_bytes())
    assert len(files) > 1 and "content_sha256" not in attrs
    assert attrs["content_hmac_sha256"] == content_digest(pseudo.content_key(job.store), files) != plain.hexdigest()
    assert attrs["content_hmac_sha256"] != content_digest(Pseudonymiser(b"another-site-key").content_key(job.store),
                                                          files)
    assert not any(KEY in p.read_text() for p in out.rglob("zarr.json"))


def test_changed_series_is_converted_again(study: Path, tmp_path: Path) -> None:
    dicom = tmp_path / "dicom"
    shutil.copytree(study / "dicom", dicom)
    pseudo = Pseudonymiser(KEY.encode(), cohort_name="sonia")
    first = convert_stage.run(dicom, tmp_path / "out", pseudo)
    assert (first.n_converted, first.n_skipped) == (10, 0)
    manifest = first.manifest.read_bytes()
    again = convert_stage.run(dicom, tmp_path / "out", pseudo)
    assert (again.n_converted, again.n_skipped) == (0, 10)
    _assert_digest_is_keyed(dicom, tmp_path / "out", pseudo)
    ct = next(p for p in sorted(dicom.rglob("*.dcm")) if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")
    ds = pydicom.dcmread(ct)
    ds.InstitutionName = "re-sent from PACS"  # same SeriesInstanceUID, other bytes
    ds.save_as(ct)
    changed = convert_stage.run(dicom, tmp_path / "out", pseudo)
    assert (changed.n_converted, changed.n_skipped) == (1, 9)
    assert changed.manifest.read_bytes() == manifest


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


def test_full_disk_names_the_store_and_leaves_no_store(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([str(BIN / "sonimage"), "convert", str(study / "dicom"), str(out), "--cohort", "sonia",
                           "--key-file", str(study / "site.key")], preexec_fn=_limit_file_size, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    failed = re.search(rf"cannot write ({re.escape(str(out))}/volumes/sonia/\S+\.zarr): File too large", message)
    assert failed, message
    assert not Path(failed.group(1)).exists() and not list(out.rglob("*.tmp"))
    assert not (out / "manifest.parquet").exists()
    for store in {p.parent for p in out.rglob("zarr.json") if p.parent.suffix == ".zarr"}:
        xr.open_zarr(store, consolidated=False).load()  # a store in place is whole (written before the disk filled)


@dataclass(frozen=True)
class ScheduledRun:
    out: Path
    run: FlowRun


@pytest.fixture(scope="module")
def scheduled(study: Path, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> ScheduledRun:
    """The undisturbed run every other run is compared with: the nightly deployment's own scheduled run, made due
    now and executed by the stack's work pool worker (the deployment's parameters point at this test's folders)."""
    folder = tmp_path_factory.mktemp("scheduled")
    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    nightly = next(d for d in spec["deployments"] if d["name"] == "nightly-ingest")
    assert nightly["schedules"] == [{"cron": "0 2 * * *", "timezone": "Europe/Amsterdam"}]
    nightly["parameters"] = {"drop": str(study / "dicom"), "out": str(folder / "out"), "key_file": str(study / "site.key"),
                             "linking": str(study / "site-private" / "linking.csv")}
    spec["deployments"] = [nightly]
    (folder / "prefect.yaml").write_text(yaml.safe_dump(spec))
    deployed = stack.deploy(folder / "prefect.yaml")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with get_client(sync_client=True) as client:
        def runs() -> list[FlowRun]:
            return client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["nightly-ingest"])), sort="EXPECTED_START_TIME_ASC")

        _wait(lambda: bool(runs()), 60, "the schedule's flow runs")
        run = runs()[0]
        client.set_flow_run_state(run.id, Scheduled(), force=True)  # due now instead of at 02:00
        _wait(lambda: client.read_flow_run(run.id).state.is_final(), 300, "the scheduled run to finish")
    return ScheduledRun(folder / "out", run)


@pytest.fixture(scope="module")
def reference(scheduled: ScheduledRun) -> Path:
    return scheduled.out


def test_nightly_schedule_ran_the_ingest(scheduled: ScheduledRun) -> None:
    assert scheduled.run.auto_scheduled  # created by the server's scheduler from the deployment's cron
    assert scheduled.run.expected_start_time.astimezone(ZoneInfo("Europe/Amsterdam")).strftime("%H:%M") == "02:00"
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(scheduled.run.id).state.is_completed()
    _assert_same_tables(scheduled.out, scheduled.out)
    patients = pd.read_parquet(scheduled.out / "tables" / "patients")
    assert set(patients.cohort) == {"sonia"}
    assert len(patients) == len(pd.read_parquet(scheduled.out / "features" / "patients.parquet"))


def _use_object_store(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's fsspec talks to the stack's object store (processes started later read the environment)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, stack.env[key])
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": stack.env["FSSPEC_S3_ENDPOINT_URL"]})


def test_stack_runs_a_deployment_on_object_storage(study: Path, stack: Stack, reference: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if stack.missing:
        pytest.skip(f"PostgreSQL cannot run on this machine ({stack.missing}): the stack needs it")
    _use_object_store(stack, monkeypatch)
    files = sorted(str(p.relative_to(study / "dicom")) for p in (study / "dicom").rglob("*") if p.is_file())
    assert sorted(mirror(study / "dicom", "s3://sonimage-drop/incoming")) == files  # every file uploaded
    started = time.monotonic()
    env = stack.environ()
    done = subprocess.run([str(BIN / "prefect"), "deployment", "run", "sonimage-ingest/nightly-ingest", "--watch",
                           "--param", "drop=s3://sonimage-drop/incoming", "--param", "out=s3://sonimage-study/out",
                           "--param", f"work={tmp_path / 'work'}", "--param", f"key_file={study / 'site.key'}",
                           "--param", f"linking={study / 'site-private' / 'linking.csv'}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Completed" in done.stdout, done.stdout[-3000:]
    print(f"deployment run on the stack: {time.monotonic() - started:.0f} s")
    fetched = tmp_path / "fetched"
    mirror("s3://sonimage-study/out", fetched)
    assert not (fetched / "drop").exists() and not (fetched / ".prefect").exists()  # original DICOM stays local
    _assert_same_tables(fetched, reference)
    store = pd.read_parquet(fetched / "manifest.parquet").query("modality == 'PT'").store.iloc[0]
    suv = xr.open_zarr(f"s3://sonimage-study/out/{store}", consolidated=False, zarr_format=3)["suv"]
    assert suv.shape == xr.open_zarr(reference / store, consolidated=False)["suv"].shape


def test_mirror_copies_only_what_changed(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_object_store(stack, monkeypatch)
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("one", "b/two"):
        (tmp_path / "a" / name).write_bytes(name.encode() * 100)
    assert mirror(tmp_path / "a", "s3://sonimage-drop/mirror-test") == ["b/two", "one"]
    assert mirror(tmp_path / "a", "s3://sonimage-drop/mirror-test") == []
    (tmp_path / "a" / "one").write_bytes(b"eno" * 100)  # same size, other bytes
    assert mirror(tmp_path / "a", "s3://sonimage-drop/mirror-test") == ["one"]
    assert mirror("s3://sonimage-drop/mirror-test", tmp_path / "back") == ["b/two", "one"]
    assert (tmp_path / "back" / "one").read_bytes() == b"eno" * 100
    assert not location("s3://sonimage-drop/x").is_local and location(tmp_path).is_local


def test_cli_shows_dashboard_progress_and_counts(study: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "sonimage"), "convert", str(study / "dicom"), str(tmp_path / "out"), "--workers",
                           "1", "--cohort", "sonia", "--key-file", str(study / "site.key")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", done.stdout)
    assert re.search(r"index DICOM headers .* 1/1", done.stdout) and re.search(r"convert \(per patient\) .* 2/2", done.stdout)
    assert "10 series converted, 0 skipped" in done.stdout


def test_cohort_partitions_rewrite_only_their_cohort(tmp_path: Path) -> None:
    table = tmp_path / "lesions.parquet"
    pd.DataFrame({"cohort": ["impact", "sonia", "sonia"], "patient": ["I1", "S1", "S2"], "suv": [1.0, 2.0, 3.0]}) \
        .to_parquet(table)
    first = write_cohort_partitions(table, tmp_path / "tables" / "lesions")
    assert [p.parent.name for p in first] == ["cohort=impact", "cohort=sonia"]
    stamp = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in first}
    pd.DataFrame({"cohort": ["sonia"], "patient": ["S3"], "suv": [4.0]}).to_parquet(table)  # a sonia-only delivery
    (sonia,) = write_cohort_partitions(table, tmp_path / "tables" / "lesions")
    assert (first[0].read_bytes(), first[0].stat().st_mtime_ns) == stamp[first[0]]  # impact untouched
    assert pd.read_parquet(sonia).patient.tolist() == ["S3"]
    again = write_cohort_partitions(table, tmp_path / "tables" / "lesions")
    assert again == [sonia] and sonia.read_bytes() == write_cohort_partitions(table, tmp_path / "x")[0].read_bytes()
    both = duckdb.sql(f"select cohort, count(*) n from read_parquet('{tmp_path}/tables/lesions/*/*.parquet', "
                      "hive_partitioning=true) group by cohort order by cohort").fetchall()
    assert both == [("impact", 1), ("sonia", 1)]
