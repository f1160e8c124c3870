"""The feature stage over a converted tree, runnable without Prefect (the flow maps the same steps to tasks).

``features_tree(out)`` reads ``out/manifest.parquet``, plans each patient's lesions (FES labels registered onto the
FES scan), computes features one scan at a time, and writes ``out/features/``: ``lesion_features.parquet`` (wide,
one row per lesion and tracer), ``lesions.parquet`` (the lesion table), ``patients.parquet`` (the patient table)
and the QC tables ``registration.parquet``, ``liver_reference.parquet``, ``fes_reading.parquet``, plus
``delineations.parquet`` (every MTV with its method). Every table records the run's settings in its Parquet metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from sonimage.features.table import LesionFeatures, feature_table, write_table as write_feature_table
from sonimage.lesions.jobs import LesionJob, PatientScans, delineation_table, lesion_features, lesion_summary, \
    patient_scans, prepare_patient, reading_tables
from sonimage.parallel import Executor, parallel_map
from sonimage.settings import Settings
from sonimage.tables.parquet import write_table
from sonimage.tables.patients import patient_metrics

FEATURES = "features"
log = logging.getLogger(__name__)


def plan_patients(out: Path) -> tuple[list[PatientScans], list[dict]]:
    """Each patient's scans from the manifest, and notes on what is missing."""
    return patient_scans(pd.read_parquet(Path(out) / "manifest.parquet"))


def jobs_by_scan(prepared: list[tuple[list[LesionJob], dict]]) -> dict[str, list[LesionJob]]:
    """Lesion jobs grouped per scan (patient and tracer), so one task reads one scan's stores."""
    scans: dict[str, list[LesionJob]] = {}
    for batch, _ in prepared:
        for job in batch:
            scans.setdefault(f"{job.patient}-{job.tracer}", []).append(job)
    return scans


def scan_features(jobs: list[LesionJob], out: Path, settings: Settings) -> list[LesionFeatures]:
    """Features (and, on FDG, delineations) of the lesions of one scan."""
    return [lesion_features(job, Path(out), settings.features, delineation=settings.delineation) for job in jobs]


def write_feature_tables(out: Path, results: list[LesionFeatures], registrations: list[dict],
                         settings: Settings) -> dict[str, str]:
    """The wide lesion feature table, the lesion table, the patient table, every delineation
    (``delineations.parquet``) and the QC tables: registration per patient, liver reference per scan, FES reading
    per lesion (:func:`sonimage.lesions.jobs.reading_tables`)."""
    folder = Path(out) / FEATURES
    meta = settings.metadata()
    table, dictionary = feature_table(results, settings.features)
    paths = {"lesion_features": write_feature_table(table, dictionary, folder / "lesion_features.parquet", meta)}
    qc = reading_tables(registrations)
    summary = lesion_summary(results, qc["fes_reading"], settings.delineation.method, settings.fes)
    paths["lesions"] = write_table(summary, folder / "lesions.parquet", metadata=meta)
    metrics = patient_metrics(summary.dropna(subset=["fdg_suvmax"]), settings.fes)
    paths["patients"] = write_table(metrics, folder / "patients.parquet", metadata=meta)
    paths["delineations"] = write_table(delineation_table(results), folder / "delineations.parquet", metadata=meta)
    paths.update({name: write_table(df, folder / f"{name}.parquet", metadata=meta) for name, df in qc.items()})
    return {k: str(v) for k, v in paths.items()}


def features_tree(out: Path, executor: Executor | None = None, settings: Settings | None = None) -> dict[str, str]:
    """The whole feature stage over ``out`` (a converted tree); ``executor`` fans patients and scans out."""
    settings = settings or Settings()
    scans, notes = plan_patients(out)
    for note in notes:
        log.warning("%s %s: %s", note["cohort"], note["patient"], note["note"])
    prepared = parallel_map(prepare_patient, scans, executor, Path(out), settings)
    per_scan = parallel_map(scan_features, jobs_by_scan(prepared).values(), executor, Path(out), settings)
    return write_feature_tables(out, [r for batch in per_scan for r in batch], [rec for _, rec in prepared],
                                settings)
