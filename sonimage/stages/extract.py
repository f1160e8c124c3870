"""The feature stage over a converted tree: plan → one item per patient → gather.

:func:`run` reads ``out/manifest.parquet`` and plans each patient's scans (:func:`plan_patients`); one item per
patient (:func:`extract_patient`: its stores read once here, then :func:`sonimage.lesions.jobs.patient_lesions` on
the volumes: FES labels registered onto the FES scan, every lesion's features and delineations, written to the
patient's results file where the item runs, only the file's path and the patient's record handed back; reused when
nothing changed, :mod:`sonimage.lesions.reuse`); the gather (:func:`write_feature_tables`, reading the results
files one patient at a time) writes
``out/features/``: ``lesion_features.parquet`` (wide,
one row per lesion and tracer), ``lesions.parquet`` (the lesion table), ``patients.parquet`` (the patient table)
and the QC tables ``registration.parquet``, ``liver_reference.parquet``, ``fes_reading.parquet``, plus
``delineations.parquet`` (every MTV with its method) and ``excluded_patients.parquet``: every patient of the
manifest or the quarantine who is not in ``patients.parquet``, with the reason (patients in = patients out +
excluded). Every table records the run's settings in its Parquet metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from sonimage.features.base import FeatureSettings
from sonimage.features.families import ALL_FAMILIES
from sonimage.features.table import FeatureRows, LesionFeatures, write_table as write_feature_table
from sonimage.lesions.jobs import fes_labels_store, lesion_features, patient_lesions, patient_scans, plan_lesions
from sonimage.lesions.records import LesionJob, LesionReading, PatientLesions, PatientScans, PatientVolumes
from sonimage.lesions.reuse import input_key, keep, load_readings, results_path, reused, write_reuse_summary
from sonimage.parallel import Executor, parallel_map
from sonimage.settings import PIPELINE_FEATURES, DelineationSettings, Settings
from sonimage.tables.parquet import write_table
from sonimage.tables.patients import patient_metrics
from sonimage.tables.readings import delineation_rows, lesion_rows, reading_tables, summary_table
from sonimage.volumes.volume import Volume
from sonimage.volumes.store import open_variable, read_volume, write_volume

FEATURES = "features"
log = logging.getLogger(__name__)
EXCLUDED_COLUMNS = ["cohort", "patient", "reason"]
FAILED = "failed"  # the key of a patient record whose lesion stage raised: the error, as the exclusion's reason


def _converted_tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest and quarantine of a converted tree; an error saying what to run when there is none."""
    manifest, quarantine = Path(out) / "manifest.parquet", Path(out) / "quarantine.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: convert the DICOM first (sonimage convert DICOM_ROOT {out})")
    bad = pd.read_parquet(quarantine) if quarantine.is_file() else pd.DataFrame(columns=["patient"])
    return pd.read_parquet(manifest), bad


def plan_patients(out: Path) -> tuple[list[PatientScans], list[dict]]:
    """Each patient's scans from the manifest, and notes on what is missing; an error naming why when no patient
    has lesions to extract (an empty tree, or no RTSTRUCT on a converted FDG PET)."""
    manifest, quarantine = _converted_tables(out)
    scans, notes = patient_scans(manifest)
    if not scans:
        excluded = excluded_patients(manifest, quarantine, set())
        why = "; ".join(f"{r.patient}: {r.reason}" for r in excluded.head(3).itertuples()) or \
            "the manifest lists no patient (see quarantine.parquet)"
        raise ValueError(f"{out}: no patient has lesion contours (an RTSTRUCT on a converted FDG PET), so there are "
                         f"no lesions to extract; {len(excluded)} patient(s) excluded: {why}")
    return scans, notes


def _first(rows: pd.DataFrame, column: str = "reason") -> str:
    return str(rows[column].iloc[0]) if len(rows) else ""


def excluded_patients(manifest: pd.DataFrame, quarantine: pd.DataFrame, kept: set[tuple[str, str]],
                      failed: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """Every patient of the manifest or the quarantine not in ``kept`` ((cohort, patient) pairs of the patient
    table), with the real cause: the lesion stage's error (``failed``), the RTSTRUCT quarantined (with its reason:
    e.g. drawn on a missing or quarantined series), no RTSTRUCT, or no lesion with FDG features."""
    failed = failed or {}
    named = quarantine[quarantine.patient.fillna("") != ""] if len(quarantine) else quarantine
    everyone = pd.concat([manifest[["cohort", "patient"]], named.reindex(columns=["cohort", "patient"])])
    rows = []
    for (cohort, patient), _ in everyone.fillna("").groupby(["cohort", "patient"]):
        if (cohort, patient) in kept:
            continue
        mine = manifest[manifest.patient == patient]
        bad = named[named.patient == patient] if len(named) else named
        rtstruct = bad[bad.modality == "RTSTRUCT"] if len(bad) else bad
        if (cohort, patient) in failed:
            reason = failed[(cohort, patient)]
        elif ((mine.modality == "RTSTRUCT") & (mine.status == "converted")).any():
            reason = "no lesion with FDG features (every ROI of the RTSTRUCT empty or failed)"
        elif len(rtstruct):
            reason = f"RTSTRUCT quarantined: {_first(rtstruct)}"
        else:
            reason = "no RTSTRUCT (lesion contours drawn on the FDG PET)"
            if len(bad):
                reason += f"; quarantined: {_first(bad, 'modality') or 'file'} {_first(bad)}"
        rows.append({"cohort": cohort, "patient": patient, "reason": reason})
    return pd.DataFrame(rows, columns=EXCLUDED_COLUMNS)


def fes_quarantine_reasons(metrics: pd.DataFrame, quarantine: pd.DataFrame) -> pd.DataFrame:
    """The patient table with "no FES scan" replaced by "FES PET quarantined: <reason>" where the patient's FES
    PET was quarantined (the scan existed; it could not be used)."""
    if not len(quarantine) or "fes_missing_reason" not in metrics:
        return metrics
    fes = quarantine[(quarantine.modality == "PT") & (quarantine.tracer == "FES")]
    why = dict(zip(fes.patient, fes.reason))
    out = metrics.copy()
    hit = (out.fes_missing_reason.fillna("") == "no FES scan") & out.patient.isin(why)
    out.loc[hit, "fes_missing_reason"] = [f"FES PET quarantined: {why[p]}" for p in out.patient[hit]]
    return out


def read_patient(scans: PatientScans, out: Path) -> PatientVolumes:
    """The patient's stores read into memory, each once (the lesion modules open no file)."""
    def read(store: str | None) -> Volume | None:
        return read_volume(Path(out) / store) if store else None

    return PatientVolumes(read(scans.labels), read(scans.fdg_pet), read(scans.fdg_ct), read(scans.fes_pet),
                          read(scans.fes_ct))


def _keep_fes_labels(scans: PatientScans, out: Path, fes_labels: Volume | None) -> None:
    """Write the labels carried onto the FES grid (with the FDG PET they were drawn on) for QC and later reads."""
    if fes_labels is not None:
        kept = Volume(fes_labels.array, fes_labels.spacing, fes_labels.origin, fes_labels.direction,
                      {**fes_labels.attrs, "drawn_on": scans.fdg_pet})
        write_volume(kept, Path(out) / fes_labels_store(scans), "label")


def extract_patient(scans: PatientScans, out: Path, settings: Settings | None = None) -> PatientLesions:
    """One patient's whole lesion stage (the stage's item): the results of an earlier run with the same input
    stores and settings (:mod:`sonimage.lesions.reuse`; the flag says so), else its stores read once and
    :func:`sonimage.lesions.jobs.patient_lesions` on them, the readings written to the patient's results file
    (:func:`sonimage.lesions.reuse.keep`) and only its path and record returned. A patient whose stage raises gets
    no results and a record holding the error (``FAILED``), which becomes its reason in
    ``excluded_patients.parquet``."""
    settings = settings or Settings()
    try:
        key = input_key(scans, Path(out), settings)
        if (record := reused(scans, Path(out), key)) is not None:
            return PatientLesions(str(results_path(scans)), record, True)
        readings, record, fes_labels = patient_lesions(scans, read_patient(scans, out), settings.features,
                                                       settings.delineation, settings.fes_reading, settings.fes)
    except Exception as exc:  # noqa: BLE001 - one patient's failure excludes that patient, the batch goes on
        stores = ", ".join(s for s in (scans.labels, scans.fdg_pet, scans.fdg_ct, scans.fes_pet, scans.fes_ct) if s)
        log.error("%s %s: lesion stage failed (%s: %s)", scans.cohort, scans.patient, type(exc).__name__, exc)
        return PatientLesions(None, {"cohort": scans.cohort, "patient": scans.patient,
                                     FAILED: f"lesion stage failed on {stores}: {type(exc).__name__}: {exc}"}, False)
    _keep_fes_labels(scans, out, fes_labels)
    return PatientLesions(keep(scans, Path(out), key, readings, record), record, False)


def prepare_patient(scans: PatientScans, out: Path, settings: Settings | None = None
                    ) -> tuple[list[LesionJob], dict]:
    """The patient's lesion jobs and record (:func:`sonimage.lesions.jobs.plan_lesions`) from its stores, keeping
    the FES labels as a store, so that each job can be read from the stores alone (:func:`lesion_from_stores`)."""
    settings = settings or Settings()
    jobs, record, fes_labels = plan_lesions(scans, read_patient(scans, out), settings.delineation,
                                            settings.fes_reading, settings.fes)
    _keep_fes_labels(scans, out, fes_labels)
    return jobs, record


def lesion_from_stores(job: LesionJob, out: Path, settings: FeatureSettings = PIPELINE_FEATURES,
                       families: tuple[str, ...] = ALL_FAMILIES,
                       delineation: DelineationSettings = DelineationSettings()) -> LesionReading:
    """:func:`sonimage.lesions.jobs.lesion_features` of one job, reading only its box (and reach) from the stores."""
    sources = {path: open_variable(Path(out) / path) for path in (job.image, job.labels)}
    return lesion_features(job, sources, settings, families, delineation)


def write_feature_tables(out: Path, results: Iterable[list[LesionFeatures]], registrations: list[dict],
                         settings: Settings, failed: dict[tuple[str, str], str] | None = None) -> dict[str, str]:
    """The wide lesion feature table, the lesion table, the patient table, every delineation
    (``delineations.parquet``), the QC tables: registration per patient, liver reference per scan, FES reading
    per lesion (:func:`sonimage.tables.readings.reading_tables`), and the patients left out with why
    (``excluded_patients.parquet``; ``failed`` gives the error of each patient whose lesion stage failed).

    ``results``: each patient's readings in turn (e.g. read from the results files one at a time); only table rows
    are kept of them (:class:`sonimage.features.table.FeatureRows`: one float array per lesion)."""
    folder = Path(out) / FEATURES
    meta = settings.metadata()
    features, uptake, delineations = FeatureRows(settings.features), [], []
    for readings in results:
        for reading in readings:
            features.add(reading)
        uptake += lesion_rows(readings)
        delineations += delineation_rows(readings)
    table, dictionary = features.table()
    del features
    paths = {"lesion_features": write_feature_table(table, dictionary, folder / "lesion_features.parquet", meta)}
    del table
    qc = reading_tables(registrations)
    summary = summary_table(uptake, qc["fes_reading"], settings.delineation.method, settings.fes)
    paths["lesions"] = write_table(summary, folder / "lesions.parquet", metadata=meta)
    manifest, quarantine = _converted_tables(out)
    metrics = fes_quarantine_reasons(patient_metrics(summary.dropna(subset=["fdg_suvmax"]), settings.fes), quarantine)
    paths["patients"] = write_table(metrics, folder / "patients.parquet", metadata=meta)
    excluded = excluded_patients(manifest, quarantine, set(zip(metrics.cohort, metrics.patient)), failed)
    paths["excluded_patients"] = write_table(excluded, folder / "excluded_patients.parquet", metadata=meta)
    paths["delineations"] = write_table(pd.DataFrame(delineations), folder / "delineations.parquet", metadata=meta)
    paths.update({name: write_table(df, folder / f"{name}.parquet", metadata=meta) for name, df in qc.items()})
    return {k: str(v) for k, v in paths.items()}


def run(out: Path, executor: Executor | None = None, settings: Settings | None = None) -> dict[str, str]:
    """The whole feature stage over ``out`` (a converted tree); ``executor`` fans patients out (one item per
    patient: :func:`extract_patient`), reusing a patient's results of an earlier run when its input stores and the
    settings are unchanged (:mod:`sonimage.lesions.reuse`); the gather reads the patients' results files one at a
    time."""
    settings = settings or Settings()
    scans, notes = plan_patients(out)
    for note in notes:
        log.warning("%s %s: %s", note["cohort"], note["patient"], note["note"])
    done = parallel_map(extract_patient, scans, executor, Path(out), settings)
    write_reuse_summary(out, [d.reused for d in done])
    failed = {(d.record["cohort"], d.record["patient"]): d.record[FAILED] for d in done if FAILED in d.record}
    return write_feature_tables(out, (load_readings(out, d.results) for d in done if d.results),
                                [d.record for d in done if FAILED not in d.record], settings, failed)
