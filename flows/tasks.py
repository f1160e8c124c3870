"""Thin Prefect tasks over the library. Inputs and outputs are paths and small records, never arrays."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from distributed import Client
from prefect import task

from sonimage.dicom.index import Instance, Rejected, index_files
from sonimage.dicom.pseudonym import Pseudonymiser
from sonimage.features.table import LesionFeatures, feature_table, write_table as write_feature_table
from sonimage.lesions.jobs import PIPELINE_SETTINGS, LesionJob, PatientScans, delineation_table, lesion_features, \
    lesion_summary, prepare_patient, reading_tables
from sonimage.report.study import run_study_analysis
from sonimage.tables.parquet import write_table
from sonimage.tables.patients import patient_metrics
from sonimage.tables.study import study_tables
from sonimage.volumes.convert import ConvertSummary, Job, MaskJob, Outcome, convert_any, finish

RETRIES = {"retries": 1, "retry_delay_seconds": 2}


@task(name="index-dicom", **RETRIES)
def index_batch(paths: list[str], dicom_root: str, pseudo: Pseudonymiser) -> tuple[list[Instance], list[Rejected]]:
    """Header records (pseudonymised) of one batch of files."""
    return index_files([Path(p) for p in paths], Path(dicom_root), pseudo)


@task(name="convert-series", task_run_name="convert-{job.store}", **RETRIES)
def convert_series(job: Job | MaskJob, dicom_root: str, out: str) -> Outcome:
    """One series (or RTSTRUCT) to its Zarr store; returns its manifest or quarantine row."""
    return convert_any(job, Path(dicom_root), Path(out))


@task(name="write-tables")
def write_tables(out: str, outcomes: list[Outcome], object_rows: list[dict], quarantine: list[dict],
                 n_files: int) -> ConvertSummary:
    """Manifest and quarantine tables, with the count of every input file checked."""
    return finish(Path(out), outcomes, object_rows, quarantine, n_files)


@task(name="prepare-lesions", task_run_name="prepare-{scans.patient}", **RETRIES)
def prepare_lesions(scans: PatientScans, out: str) -> tuple[list[LesionJob], dict]:
    """Lesion jobs of one patient (FES labels registered onto the FES scan)."""
    return prepare_patient(scans, Path(out))


@task(name="lesion-features", task_run_name="features-{scan}", **RETRIES)
def extract_lesions(scan: str, jobs: list[LesionJob], out: str) -> list[LesionFeatures]:
    """IBSI and PET features of the lesions of one scan (one task per scan keeps scheduling overhead small)."""
    return [lesion_features(job, Path(out)) for job in jobs]


@task(name="write-feature-tables")
def write_features(out: str, results: list[LesionFeatures], registrations: list[dict]) -> dict[str, str]:
    """The wide lesion feature table, the lesion summary, patient heterogeneity metrics, every delineation, and
    the QC tables (registration per patient, liver reference per scan, FES reading per lesion)."""
    folder = Path(out) / "features"
    table, dictionary = feature_table(results, PIPELINE_SETTINGS)
    paths = {"lesion_features": write_feature_table(table, dictionary, folder / "lesion_features.parquet")}
    qc = reading_tables(registrations)
    summary = lesion_summary(results, qc["fes_reading"])
    paths["lesions"] = write_table(summary, folder / "lesions.parquet")
    metrics = patient_metrics(summary.dropna(subset=["fdg_suvmax"]))
    paths["patients"] = write_table(metrics, folder / "patients.parquet")
    paths["delineations"] = write_table(delineation_table(results), folder / "delineations.parquet")
    paths.update({name: write_table(df, folder / f"{name}.parquet") for name, df in qc.items()})
    return {k: str(v) for k, v in paths.items()}


@task(name="study-analysis")
def analyse(out: str, clinical: str, development: str, scheduler: str) -> dict[str, str]:
    """Objectives 1–5 and the HTML report; bootstraps fan out over the cluster at ``scheduler``."""
    tables = study_tables(pd.read_parquet(Path(out) / "features" / "lesions.parquet"), Path(clinical))
    report_dir = Path(out) / "report"
    write_table(tables.excluded, report_dir / "excluded.parquet")
    with Client(scheduler) as client:
        report = run_study_analysis(tables.patients, tables.lesions, report_dir, development=development,
                                    executor=client)
    return {"report": str(report), "metrics": str(report_dir / "metrics.json")}
