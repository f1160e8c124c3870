"""Join the image-derived tables with a study's clinical tables, ready for the survival analyses.

Clinical tables come from the trial office, one folder per cohort: ``<clinical>/<cohort>/patients.parquet``
(keyed by ``subject_id``, the trial pseudonym that the site linking table also gives the images) and optionally
``<clinical>/<cohort>/lesions.parquet`` with lesion response at follow-up (``subject_id``, ``lesion_id`` and the
columns of :data:`sonimage.tables.lesion_match.CLINIC_COLUMNS`), joined to the ROIs by the lesion number in the ROI
name. Only image-derived uptake values are used: the clinical lesion table adds response.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sonimage.tables.lesion_match import match_clinic
from sonimage.tables.patients import NOT_FES_EVALUABLE



@dataclass(frozen=True)
class StudyTables:
    """Per-cohort patient and lesion tables for the analyses, and the patients left out with why."""

    patients: dict[str, pd.DataFrame]
    lesions: dict[str, pd.DataFrame]
    excluded: pd.DataFrame


def analysis_lesions(summary: pd.DataFrame, response: pd.DataFrame | None) -> pd.DataFrame:
    """Image lesion summary in the columns the analyses read, with response joined where the clinic gives it
    (by lesion identifier, :func:`sonimage.tables.lesion_match.match_clinic`)."""
    les = summary.assign(subject_id=summary.patient, lesion_id=summary.lesion, fdg_suv=summary.fdg_suvmax,
                         fes_suv=summary.fes_suvmax, fes_evaluable=~summary.organ.isin(NOT_FES_EVALUABLE))
    if response is not None:
        les, _ = match_clinic(les, response)
    return les


def study_tables(summary: pd.DataFrame, clinical: Path) -> StudyTables:
    """Clinical and image tables of every cohort found in both; patients without usable lesions are listed."""
    patients, lesions, excluded = {}, {}, []
    usable = summary.dropna(subset=["fdg_suvmax"])
    for cohort, images in usable.groupby("cohort"):
        table = Path(clinical) / str(cohort) / "patients.parquet"
        if not table.is_file():
            continue
        clin = pd.read_parquet(table)
        missing = sorted(set(clin.subject_id) - set(images.patient))
        excluded += [{"cohort": cohort, "subject_id": s, "reason": "no lesion with image features"} for s in missing]
        response_path = table.with_name("lesions.parquet")
        response = pd.read_parquet(response_path) if response_path.is_file() else None
        patients[str(cohort)] = clin[~clin.subject_id.isin(missing)].reset_index(drop=True)
        lesions[str(cohort)] = analysis_lesions(images, response)
    return StudyTables(patients, lesions, pd.DataFrame(excluded, columns=["cohort", "subject_id", "reason"]))
