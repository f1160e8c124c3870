"""Join the image-derived tables with a study's clinical tables, ready for the survival analyses.

Clinical tables come from the trial office, one folder per cohort: ``<clinical>/<cohort>/patients.parquet`` or
``patients.csv`` (schema :data:`CLINICAL_SCHEMA`, checked by :func:`read_clinical`; keyed by ``subject_id``, the
trial pseudonym that the site linking table also gives the images as ``patient``) and
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

from sonimage.dicom.pseudonym import SAFE_COMPONENT
from sonimage.tables.lesion_match import match_clinic

# The clinical patient table: column -> (kind, what it holds). Every column here is required and may not be empty;
# other columns are kept (image-derived columns of the same name are replaced by the image values).
CLINICAL_SCHEMA: dict[str, tuple[str, str]] = {
    "subject_id": ("id", "trial pseudonym, as the linking table's subject_id (letters, digits, '.', '_', '-')"),
    "age": ("age", "age at randomisation, years (18 to 120)"),
    "ecog": ("ecog", "ECOG performance status, 0 to 4"),
    "de_novo": ("bool", "de novo metastatic disease (true/false, yes/no or 1/0)"),
    "visceral": ("bool", "visceral metastases (true/false, yes/no or 1/0)"),
    "bone_only": ("bool", "bone-only disease (true/false, yes/no or 1/0)"),
    "prior_endocrine": ("bool", "prior (neo)adjuvant endocrine therapy (true/false, yes/no or 1/0)"),
    "arm": ("text", "treatment arm as randomised or given, e.g. 'AI' or 'AI+CDK4/6i'"),
    "cdk46i": ("binary", "1 if a CDK4/6 inhibitor was given first line, else 0"),
    "pfs1_months": ("time", "first-line progression-free survival, months (0 or more)"),
    "pfs1_event": ("binary", "1 progression or death, 0 censored"),
}
TRUE, FALSE = {"true", "yes", "1", "1.0", "y", "t"}, {"false", "no", "0", "0.0", "n", "f"}
MAX_ERRORS = 20


class ClinicalTableError(ValueError):
    """A clinical table that does not follow :data:`CLINICAL_SCHEMA`; the message lists each error by row and
    column."""


def clinical_file(folder: Path) -> Path | None:
    """The cohort's clinical patient table in ``folder``: ``patients.parquet``, else ``patients.csv``."""
    return next((p for p in (Path(folder) / "patients.parquet", Path(folder) / "patients.csv") if p.is_file()), None)


def _check(value: object, kind: str) -> tuple[object, str]:
    """(the value in its type, '' or what is wrong with it) for one cell of a column of ``kind``."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) or str(value).strip() == "":
        return None, "empty"
    text = str(value).strip()
    if kind == "id":
        return text, "" if SAFE_COMPONENT.fullmatch(text) and ".." not in text and not text.startswith(".") \
            else f"{text!r} is not a pseudonym (letters, digits, '.', '_', '-')"
    if kind == "text":
        return text, ""
    if kind == "bool":
        low = text.lower()
        return low in TRUE, "" if low in TRUE | FALSE else f"{text!r} is not true/false, yes/no or 1/0"
    try:
        number = float(text)
    except ValueError:
        return None, f"{text!r} is not a number"
    if kind == "binary" and number not in (0, 1):
        return None, f"{text} is not 0 or 1"
    if kind == "ecog" and number not in (0, 1, 2, 3, 4):
        return None, f"{text} is not an ECOG status (0 to 4)"
    if kind == "age" and not 18 <= number <= 120:
        return None, f"{text} is not an age in years (18 to 120)"
    if kind == "time" and not number >= 0:
        return None, f"{text} is not a time of 0 months or more"
    return (int(number) if kind in ("binary", "ecog") else number), ""


def validate_clinical(table: pd.DataFrame, source: str, cohort: str | None = None) -> pd.DataFrame:
    """``table`` with the schema's columns in their types; a :class:`ClinicalTableError` listing every error by
    row (as a spreadsheet numbers them: the header is row 1) and column, when it does not follow the schema."""
    missing = [c for c in CLINICAL_SCHEMA if c not in table.columns]
    if missing:
        raise ClinicalTableError(f"{source}: missing column(s) {', '.join(missing)} (the clinical table needs "
                                 f"{', '.join(CLINICAL_SCHEMA)})")
    out, errors = table.reset_index(drop=True).copy(), []
    for column, (kind, _) in CLINICAL_SCHEMA.items():
        checked = [_check(v, kind) for v in out[column]]
        errors += [(row, column, why) for row, (_, why) in enumerate(checked, start=2) if why]
        out[column] = [v for v, _ in checked]
    seen: dict[str, int] = {}
    for row, subject in enumerate(out["subject_id"], start=2):
        if subject is not None and subject in seen:
            errors.append((row, "subject_id", f"{subject!r} is also on row {seen[subject]}"))
        seen.setdefault(subject, row)
    if cohort is not None and "cohort" in out:
        errors += [(row, "cohort", f"{v!r} is not this folder's cohort {cohort!r}")
                   for row, v in enumerate(out["cohort"].astype(str), start=2) if v != cohort]
    if errors:
        errors.sort()
        shown = "\n".join(f"  row {r}, column {c}: {why}" for r, c, why in errors[:MAX_ERRORS])
        more = f"\n  ... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        raise ClinicalTableError(f"{source}: {len(errors)} error(s) in the clinical table (rows numbered as a "
                                 f"spreadsheet shows them, the header is row 1):\n{shown}{more}")
    kinds = {c: k for c, (k, _) in CLINICAL_SCHEMA.items()}
    return out.astype({c: bool if k == "bool" else int if k in ("binary", "ecog") else float if k in ("age", "time")
                       else str for c, k in kinds.items()})


def read_clinical(path: Path, cohort: str | None = None) -> pd.DataFrame:
    """A cohort's clinical patient table (Parquet or CSV), checked against :data:`CLINICAL_SCHEMA`."""
    path = Path(path)
    table = pd.read_csv(path, dtype={"subject_id": str, "cohort": str}) if path.suffix.lower() == ".csv" \
        else pd.read_parquet(path)
    return validate_clinical(table, str(path), cohort)


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
        table = clinical_file(Path(clinical) / str(cohort))
        if table is None:
            continue
        clin = read_clinical(table, str(cohort))
        missing = sorted(set(clin.subject_id) - set(images.patient))
        excluded += [{"cohort": cohort, "subject_id": s, "reason": "no lesion with image features"} for s in missing]
        response_path = table.with_name("lesions.parquet")
        response = pd.read_parquet(response_path) if response_path.is_file() else None
        patients[str(cohort)] = join_patient_table(clin[~clin.subject_id.isin(missing)].reset_index(drop=True),
                                                   metrics[metrics.cohort == cohort])
        lesions[str(cohort)] = join_response(images.reset_index(drop=True), response)
    return StudyTables(patients, lesions, pd.DataFrame(excluded, columns=["cohort", "subject_id", "reason"]))
