"""The sonimage study flow: (synthetic) DICOM → Zarr volumes → lesion features → survival report."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.context import get_run_context
from prefect_dask import DaskTaskRunner

from flows.tasks import analyse, convert_series, index_batch, patient_lesion_stage, write_features, write_tables
from sonimage.cluster import local_cluster
from sonimage.dicom.pseudonym import Pseudonymiser, site_pseudonymiser
from sonimage.lesions.reuse import read_reuse_summary, write_reuse_summary
from sonimage.lesions.tree import plan_patients
from sonimage.run_summary import StageClock, render, run_summary, write_run_summary
from sonimage.settings import Settings
from sonimage.volumes.convert import (ConvertSummary, Job, MaskJob, Outcome, batches, input_files,
                                      masks_on_converted, plan_from_index)


def _convert(jobs: list[Job] | list[MaskJob], dicom_root: Path, out: Path) -> list[Outcome]:
    return list(convert_series.map(jobs, unmapped(str(dicom_root)), unmapped(str(out))).result()) if jobs else []


def convert_stage(dicom_root: Path, out: Path, pseudo: Pseudonymiser) -> ConvertSummary:
    """:func:`sonimage.volumes.convert.convert_tree` as tasks: index in batches, pseudonymise and plan here (the
    key and linking table never go to a task), one task per image series, then per RTSTRUCT on a converted PET,
    tables."""
    pseudo.check_cohorts()
    files = input_files(dicom_root)
    paths = [[str(p) for p in batch] for batch in batches(files)]
    indexed = index_batch.map(paths, unmapped(str(dicom_root))).result()
    plan = plan_from_index(indexed, pseudo)
    outcomes = _convert(plan.images, dicom_root, out)
    masks, lost = masks_on_converted(plan.masks, outcomes)
    outcomes += _convert(masks, dicom_root, out)
    return write_tables(str(out), outcomes, plan.object_rows, plan.quarantine + lost, len(files))


def features_stage(out: Path, settings: Settings) -> dict[str, str]:
    """:func:`sonimage.lesions.tree.features_tree` as tasks: one lesion-stage task per patient, then the tables."""
    scans, notes = plan_patients(out)
    for note in notes:
        get_run_logger().warning("%s %s: %s", note["cohort"], note["patient"], note["note"])
    done = patient_lesion_stage.map(scans, unmapped(str(out)), unmapped(settings)).result()
    write_reuse_summary(out, [reused for _, _, reused in done])
    return write_features(str(out), [r for readings, _, _ in done for r in readings],
                          [record for _, record, _ in done], settings)


def default_runner() -> DaskTaskRunner:
    """The scheduler at $SONIMAGE_DASK_ADDRESS when set (deployments), else a LocalCluster of worker processes."""
    address = os.environ.get("SONIMAGE_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={"n_workers": 2, "dashboard_address": ":8787"})


@flow(name="sonimage-study", log_prints=True, task_runner=default_runner())
def study_flow(out: str, dicom_root: str, linking: str | None = None, key_file: str | None = None,
               clinical: str | None = None, settings: str | None = None, cohort: str | None = None) -> dict[str, str]:
    """DICOM below ``dicom_root`` → Zarr volumes → lesion features → (with ``clinical`` tables) the study report.

    Parameters are paths and JSON only (deployments pass JSON): the site linking table and key file stay at the
    site and in this process; ``cohort`` names the cohort of patients the linking table gives none; ``settings``
    is :class:`sonimage.settings.Settings` as JSON (None: the defaults). Returns where the
    outputs are.
    """
    run_settings = Settings.from_json(settings)
    logger = get_run_logger()
    pseudo = site_pseudonymiser(key_file, linking, cohort)
    out_path, root = Path(out).resolve(), Path(dicom_root).resolve()
    clock = StageClock()
    with clock.stage("convert"):
        summary = convert_stage(root, out_path, pseudo)
    logger.info(summary.describe())
    outputs = {"manifest": str(summary.manifest), "quarantine": str(summary.quarantine),
               "volumes": str(out_path / "volumes")}
    with clock.stage("features"):
        outputs.update(features_stage(out_path, run_settings))
    if clinical:
        scheduler = get_run_context().task_runner.client.scheduler.address
        with clock.stage("analysis"):
            outputs.update(analyse(str(out_path), str(Path(clinical).resolve()), scheduler, run_settings))
    report_run(summary, outputs, clock, out_path)
    return outputs


def report_run(summary: ConvertSummary, tables: dict[str, str], clock: StageClock, out: Path) -> None:
    """Print the run summary table (into the flow run's logs) and keep it as ``run_summary.json``."""
    table = run_summary(summary, tables, clock.seconds, read_reuse_summary(out) if "lesions" in tables else None)
    print(render(table))
    write_run_summary(table, out)
