"""Join the image-derived tables with a study's clinical tables, ready for the survival analyses.

Clinical tables come from the trial office, one folder per cohort: ``<clinical>/<cohort>/patients.parquet``
(keyed by ``subject_id``, the trial pseudonym that the site linking table also gives the images as ``patient``) and
optionally ``<clinical>/<cohort>/lesions.parquet`` with lesion response at follow-up (``subject_id``,
``lesion_id`` and the columns of :data:`sonimage.tables.lesion_match.CLINIC_COLUMNS`), joined to the ROIs by
the lesion number in the ROI name (:mod:`sonimage.tables.lesion_match`). The image tables are read as the feature
stage wrote them (:mod:`sonimage.tables.lesions`, :mod:`sonimage.tables.patients`): only image-derived uptake values and
patient metrics are used; the clinical lesion table adds response.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sonimage.tables.lesion_match import match_clinic


@dataclass(frozen=True)
class StudyTables:
    """Per cohort: clinical patients joined with their patient-table row, the lesion table (with response where
    the clinic gives it); and the patients left out with why."""

    patients: dict[str, pd.DataFrame]
    lesions: dict[str, pd.DataFrame]
    excluded: pd.DataFrame


def join_patient_table(clinical: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Clinical rows (``subject_id``) with their patient-table row (``patient``), in the clinical order; the
    image-derived metrics replace any clinical column of the same name."""
    missing = sorted(set(clinical["subject_id"]) - set(patients["patient"]))
    if missing:
        raise ValueError(f"patients without lesions in the lesion table: {missing[:5]}")
    image = patients.drop(columns=[c for c in ("cohort",) if c in patients])
    clin = clinical.drop(columns=[c for c in image.columns if c in clinical])
    return clin.merge(image, left_on="subject_id", right_on="patient", how="left")


def join_response(lesions: pd.DataFrame, response: pd.DataFrame | None) -> pd.DataFrame:
    """The lesion table with the clinic's lesion response joined (by patient and the lesion number in the ROI
    name, never the ROI's position) where given."""
    if response is None:
        return lesions
    return match_clinic(lesions, response)[0]


def study_tables(features: Path, clinical: Path) -> StudyTables:
    """Clinical and image tables of every cohort found in both (``features``: the feature stage's folder with
    ``lesions.parquet`` and ``patients.parquet``); patients without usable lesions are listed."""
    patients, lesions, excluded = {}, {}, []
    usable = pd.read_parquet(Path(features) / "lesions.parquet").dropna(subset=["fdg_suvmax"])
    metrics = pd.read_parquet(Path(features) / "patients.parquet")
    for cohort, images in usable.groupby("cohort"):
        table = Path(clinical) / str(cohort) / "patients.parquet"
        if not table.is_file():
            continue
        clin = pd.read_parquet(table)
        missing = sorted(set(clin.subject_id) - set(images.patient))
        excluded += [{"cohort": cohort, "subject_id": s, "reason": "no lesion with image features"} for s in missing]
        response_path = table.with_name("lesions.parquet")
        response = pd.read_parquet(response_path) if response_path.is_file() else None
        patients[str(cohort)] = join_patient_table(clin[~clin.subject_id.isin(missing)].reset_index(drop=True),
                                                   metrics[metrics.cohort == cohort])
        lesions[str(cohort)] = join_response(images.reset_index(drop=True), response)
    return StudyTables(patients, lesions, pd.DataFrame(excluded, columns=["cohort", "subject_id", "reason"]))
