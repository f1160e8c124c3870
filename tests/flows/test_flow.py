"""The study flow on real Prefect (test harness server) and a real Dask cluster of worker processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
from distributed import LocalCluster

from sonimage.cluster import local_cluster

from flows.environment import configure

configure()

from prefect.client.orchestration import get_client  # noqa: E402  (Prefect reads its settings at import)
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402
from prefect_dask import DaskTaskRunner  # noqa: E402

from flows.refit import refit_flow  # noqa: E402
from flows.pipeline import study_flow  # noqa: E402
from sonimage.dicom.pseudonym import Pseudonymiser  # noqa: E402
from sonimage.survival.cox import FrozenCox  # noqa: E402
from sonimage.analysis.objectives import model_table  # noqa: E402
from sonimage.tables.patients import fes_complete_case  # noqa: E402
from sonimage.tables.clinical import join_patient_table  # noqa: E402
from sonimage.stages import convert as convert_stage  # noqa: E402
from prefect import flow  # noqa: E402

from flows.tasks import PrefectExecutor  # noqa: E402
from sonimage.dicom.pseudonym import read_linking  # noqa: E402
from sonimage.stages import extract as extract_stage  # noqa: E402
from sonimage.synth.generate import generate_study  # noqa: E402
from tests.helpers import REPO, SMALL_BOOTSTRAPS, require, write_simulated_tables  # noqa: E402

pytestmark = pytest.mark.slow  # starts a Prefect server and a Dask cluster

KEY = "flow-test-key"


@pytest.fixture(scope="module")
def prefect_api() -> None:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def cluster(prefect_api: None) -> LocalCluster:
    # Workers start after the harness exported PREFECT_API_URL, so they all talk to one server.
    with local_cluster(2) as c:
        yield c


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_flow_on_dask_workers_matches_the_library(shared_data: Path, cluster: LocalCluster, tmp_path: Path) -> None:
    root = require(shared_data / "sts-001-fdg-pet")
    key_file = tmp_path / "site.key"
    key_file.write_text(KEY)
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    state = study_flow.with_options(task_runner=runner)(str(tmp_path / "flow"), str(root), key_file=str(key_file),
                                                        cohort="sts", return_state=True)
    assert state.is_completed()
    outputs = state.result()
    lesions = pd.read_parquet(outputs["lesions"]).set_index("roi")
    assert set(lesions.index) == {"GTV_Mass", "GTV_Edema"}
    assert round(lesions.loc["GTV_Mass", "fdg_suvmax"], 2) == 7.91
    assert lesions.fes_suvmax.isna().all()  # no FES scan in this study: FES columns stay empty, rows stay
    wide = pd.read_parquet(outputs["lesion_features"])
    assert (wide.error == "").all() and wide.filter(like="glcm_").shape[1] > 20
    direct = convert_stage.run(root, tmp_path / "direct", Pseudonymiser(KEY.encode(), cohort_name="sts"))
    assert _digest(Path(outputs["manifest"])) == _digest(direct.manifest)
    assert _digest(Path(outputs["quarantine"])) == _digest(direct.quarantine)
    summary = json.loads((tmp_path / "flow" / "run_summary.json").read_text())
    for stage in ("convert", "features"):  # each stage's own peak per role (VmHWM restarted per stage)
        assert 100 < summary[f"peak MB {stage}, flow process"] and 100 < summary[f"peak MB {stage}, largest worker"]

    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))[0]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    names = [t.name for t in tasks]
    assert run.state.is_completed()
    patient = pd.read_parquet(outputs["manifest"]).patient.iloc[0]
    assert [n for n in names if n.startswith("convert-")] == [f"convert-sts-{patient}-PT+RTSTRUCT"]
    # one task per patient (issue 14), named by cohort, patient pseudonym and what it converts
    assert [n for n in names if n.startswith("lesions-")] == [f"lesions-sts-{patient}"]
    assert sorted(n for n in names if n.startswith("index-dicom")) == ["index-dicom-1/2 (1 batch)",
                                                                       "index-dicom-2/2 (1 batch)"]
    # 269 files in batches of 256; a study this small gets one item per task (flows.tasks.PrefectExecutor.groups)
    assert not any("STS_001" in n for n in names)  # task names carry pseudonyms only
    assert all(t.state.is_completed() for t in tasks)


def test_converted_contours_give_the_reference_lesion(shared_data: Path, tmp_path: Path) -> None:
    root = require(shared_data / "sts-001-fdg-pet")
    summary = convert_stage.run(root, tmp_path, Pseudonymiser(KEY.encode(), cohort_name="sts"))
    manifest = pd.read_parquet(summary.manifest).set_index("modality")
    labels = xr.open_zarr(tmp_path / manifest.loc["RTSTRUCT", "store"], consolidated=False)
    assert manifest.loc["RTSTRUCT", "referenced_series"] == manifest.loc["PT", "series"]
    gtv = next(r for r in labels.attrs["rois"] if r["name"] == "GTV_Mass")
    assert gtv["n_voxels"] == 5095
    suv = xr.open_zarr(tmp_path / manifest.loc["PT", "store"], consolidated=False)["suv"].values
    inside = suv[labels["label"].values == gtv["label"]]
    assert round(float(inside.max()), 2) == 7.91
    assert round(float(inside.min()), 2) == 0.17


def _prefect(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "SONIMAGE_CHECKOUT": str(cwd)}
    return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_scheduled_deployments_register_offline(prefect_api: None) -> None:
    pool = _prefect("work-pool", "create", "sonimage-process", "--type", "process", cwd=REPO)
    assert pool.returncode == 0, pool.stderr
    done = _prefect("deploy", "--all", "--prefect-file", "deployments/prefect.yaml", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
    assert {"nightly-ingest", "weekly-refit"} <= set(deployments)
    nightly = deployments["nightly-ingest"]
    assert nightly.work_pool_name == "sonimage-process"
    assert [(s.schedule.cron, s.schedule.timezone) for s in nightly.schedules] == [("0 2 * * *", "Europe/Amsterdam")]
    assert set(nightly.parameters) == {"drop", "out", "work", "linking"}


def test_workers_keep_the_default_allocator(cluster: LocalCluster) -> None:
    # Dask would set MALLOC_TRIM_THRESHOLD_, which made conversion 1.7x slower in workers (sonimage.cluster).
    from distributed import Client

    with Client(cluster) as client:
        settings = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert len(settings) == 2 and set(settings.values()) == {None}


def test_weekly_refit_flow_fits_and_validates(cluster: LocalCluster, tmp_path: Path) -> None:
    """The weekly-refit deployment's flow, run for real on Prefect and the cluster, over feature and clinical tables
    written in the pipeline's formats from the synthetic generator's true values (no images rendered)."""
    truth = write_simulated_tables(tmp_path)
    state = refit_flow.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))(
        str(tmp_path), str(tmp_path / "clinical"), json.dumps(SMALL_BOOTSTRAPS), return_state=True)
    assert state.is_completed(), state.message
    outputs = state.result()
    assert outputs["metrics"] == str(tmp_path.resolve() / "report" / "metrics.json")
    assert Path(outputs["report"]).is_file()
    metrics = json.loads(Path(outputs["metrics"]).read_text())
    assert metrics["objective4"]["effect"]["internal_validation"]["bootstrap_replicates"] == 8  # the settings reached it
    assert set(metrics["objective5"]) == {"impact", "transcan"}
    c_index = metrics["objective5"]["impact"]["risk"]["harrell_c"]
    assert 0.5 < c_index["estimate"] <= 1 and c_index["lower"] <= c_index["estimate"] <= c_index["upper"]
    for name in ("risk", "effect"):
        model = FrozenCox.load(tmp_path / "report" / "models" / f"{name}.json")
        dev, _ = fes_complete_case(model_table(join_patient_table(truth["sonia"].patients,
                                                                  truth["sonia"].patient_table)))
        survival = model.survival(dev.assign(cdk46i=1), 12.0)[:, 0]
        assert len(survival) == len(dev) > 50 and ((survival > 0) & (survival < 1)).all()


def _tables(out: Path) -> dict[str, str]:
    """Digests of the run's tables; the exclusions as rows (their reasons name the stores by absolute path)."""
    tables = {p.relative_to(out).as_posix(): _digest(p) for p in sorted(out.rglob("*.parquet"))
              if "reuse" not in p.parts and p.name != "excluded_patients.parquet"}
    excluded = pd.read_parquet(out / "features" / "excluded_patients.parquet")
    return tables | {"excluded": excluded.replace(str(out), "OUT", regex=True).to_dict("records")}


def _task_names(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert all(t.state.is_completed() for t in runs)
    return sorted(t.name for t in runs)


def test_patients_grouped_into_tasks_give_the_tables_of_one_task_per_patient(cluster: LocalCluster,
                                                                             tmp_path: Path) -> None:
    """Several patients to a Prefect task (issue 14: Prefect's per-task cost) write the same tables, byte for
    byte, as the stages in process, and a patient whose lesion stage fails inside a group is the only one excluded."""
    generate_study(tmp_path / "study", cohorts=("sonia",), n_patients=5, size="tiny", seed=3)
    linking = read_linking(tmp_path / "study" / "site-private" / "linking.csv")
    dicom = tmp_path / "study" / "dicom"

    def damage(out: Path) -> str:  # one patient's converted FDG CT store becomes unreadable
        manifest = pd.read_parquet(out / "manifest.parquet")
        ct = manifest[(manifest.modality == "CT") & (manifest.tracer == "FDG")].sort_values("patient").iloc[2]
        (out / ct.store / "zarr.json").unlink()
        return ct.patient

    plain = tmp_path / "plain"
    convert_stage.run(dicom, plain, Pseudonymiser(b"k", linking))
    broken = damage(plain)
    extract_stage.run(plain)

    grouped = PrefectExecutor(slots=1, per_slot=2, min_size=lambda fn: 2)  # 5 patients: tasks of 3, 1 and 1
    runner = DaskTaskRunner(address=cluster.scheduler_address)

    @flow(task_runner=runner)
    def convert(out: str) -> None:
        convert_stage.run(dicom, Path(out), Pseudonymiser(b"k", linking), grouped)

    @flow(task_runner=runner)
    def extract(out: str) -> None:
        extract_stage.run(Path(out), grouped)

    out = tmp_path / "grouped"
    converted = convert(str(out), return_state=True)
    assert damage(out) == broken
    extracted = extract(str(out), return_state=True)
    assert converted.is_completed() and extracted.is_completed()
    assert _tables(out) == _tables(plain) and len(_tables(out)) == 10 and len(_tables(out)["excluded"]) == 1
    excluded = pd.read_parquet(out / "features" / "excluded_patients.parquet")
    assert list(excluded.patient) == [broken] and excluded.reason.iloc[0].startswith("lesion stage failed on ")
    patients = sorted(pd.read_parquet(out / "manifest.parquet").patient.unique())
    assert _task_names(extracted.state_details.flow_run_id) == [
        f"lesions-sonia-{patients[0]}…{patients[2]} (3 patients)", f"lesions-sonia-{patients[3]}",
        f"lesions-sonia-{patients[4]}"]  # the largest group first, the broken patient inside it
    converts = [n for n in _task_names(converted.state_details.flow_run_id) if n.startswith("convert-")]
    assert converts[0] == f"convert-sonia-{patients[0]}…{patients[2]} (3 patients)" and len(converts) == 3
    assert all(n.startswith(f"convert-sonia-{p}-") for n, p in zip(converts[1:], patients[3:]))  # + what
