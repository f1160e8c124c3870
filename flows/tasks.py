"""Thin Prefect tasks over the library stages. Inputs and outputs are paths and small records, never arrays."""

from __future__ import annotations

from pathlib import Path

from distributed import Client
from prefect import task

from sonimage.dicom.index import Instance, Rejected, index_files
from sonimage.features.table import LesionFeatures
from sonimage.lesions.jobs import PatientScans
from sonimage.lesions.reading import LesionReading
from sonimage.lesions.reuse import patient_lesions_reused
from sonimage.lesions.tree import write_feature_tables
from sonimage.settings import Settings
from sonimage.study import analyse_study
from sonimage.volumes.convert import ConvertSummary, Job, MaskJob, Outcome, convert_any, finish

RETRIES = {"retries": 1, "retry_delay_seconds": 2}


# Index and convert tasks get no pseudonymiser: the site key and linking table stay in the flow process, which
# pseudonymises the index records and gives each conversion task its pseudonymised plan and one store's digest key.
# Their results are never persisted (persist_result=False): index records hold the headers' original identifiers.
@task(name="index-dicom", persist_result=False, **RETRIES)
def index_batch(paths: list[str], dicom_root: str) -> tuple[list[Instance], list[Rejected]]:
    """Header records (as read, for the flow process to pseudonymise) of one batch of files."""
    return index_files([Path(p) for p in paths], Path(dicom_root))


@task(name="convert-series", task_run_name="convert-{job.label}", persist_result=False, **RETRIES)
def convert_series(job: Job | MaskJob, dicom_root: str, out: str) -> Outcome:
    """One series (or RTSTRUCT) to its Zarr store; returns its manifest or quarantine row."""
    return convert_any(job, Path(dicom_root), Path(out))


@task(name="write-tables")
def write_tables(out: str, outcomes: list[Outcome], object_rows: list[dict], quarantine: list[dict],
                 n_files: int) -> ConvertSummary:
    """Manifest and quarantine tables, with the count of every input file checked."""
    return finish(Path(out), outcomes, object_rows, quarantine, n_files)


@task(name="lesion-stage", task_run_name="lesions-{scans.cohort}-{scans.patient}", **RETRIES)
def patient_lesion_stage(scans: PatientScans, out: str, settings: Settings
                         ) -> tuple[list[LesionReading], dict, bool]:
    """One patient's whole lesion stage (registration, FES reading, liver VOI, features and delineations of every
    lesion on both tracers): one task per patient, as Prefect's per-task cost exceeded the smaller tasks' work.
    Reused from an earlier run when its input stores and the settings are unchanged (the flag says so)."""
    return patient_lesions_reused(scans, Path(out), settings)


@task(name="write-feature-tables")
def write_features(out: str, results: list[LesionFeatures], registrations: list[dict],
                   settings: Settings) -> dict[str, str]:
    """The wide lesion feature table, the lesion and patient tables, delineations and the QC tables."""
    return write_feature_tables(Path(out), results, registrations, settings)


@task(name="study-analysis")
def analyse(out: str, clinical: str, scheduler: str, settings: Settings) -> dict[str, str]:
    """Objectives 1–5 and the HTML report; bootstraps fan out over the cluster at ``scheduler``."""
    with Client(scheduler) as client:
        return analyse_study(Path(out), Path(clinical), client, settings)
