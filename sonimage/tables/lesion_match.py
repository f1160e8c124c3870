"""Match the clinic's lesion rows to the image ROIs by lesion identifier, never by position.

The reader names each ROI ``L<n>_<organ>``; ``<n>`` is the lesion number the clinical record form uses. An
ROI's position in the RTSTRUCT (the label value of the converted store) is not an identifier: a reader may skip a
lesion (missed, or not contoured), so the k-th ROI is not lesion k. ROIs without a number cannot be matched and
are reported, as are clinic lesions without an ROI.
"""

from __future__ import annotations

import re

import pandas as pd

LESION_NUMBER = re.compile(r"^\s*L(?:esion)?[ _-]?0*(?P<n>\d+)(?:\b|_)", re.IGNORECASE)

# Columns a clinical lesion table may carry (RECIST size response and the site's PERCIST SULpeak read).
CLINIC_COLUMNS = ("response_pct", "response", "recist_measurable", "baseline_size_mm", "follow_up_size_mm",
                  "percist_measurable", "fdg_sulpeak_baseline", "fdg_sulpeak_follow_up", "sulpeak_change_pct",
                  "pet_response")


def lesion_number(roi: str) -> float:
    """The lesion number in an ROI name (``L07_bone``, ``Lesion 7``, ``L7-liver`` → 7); NaN when it has none."""
    m = LESION_NUMBER.match(str(roi))
    return float(m.group("n")) if m else float("nan")


def image_lesion_ids(images: pd.DataFrame) -> pd.Series:
    """Lesion identifier per image row: from the ROI name when there is one, else the table's lesion number."""
    if "roi" in images:
        return images["roi"].map(lesion_number).astype("Float64")
    return images["lesion_id"].astype("Float64")


def match_clinic(images: pd.DataFrame, clinic: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Image lesion rows (``subject_id`` + ``roi`` or ``lesion_id``) with the clinic's columns joined by
    (subject_id, lesion number); and a record of what matched, what did not, and organ disagreements.

    Returns every image row (clinic columns missing where there is no match) and keys ``lesion_id`` by the
    identifier; rows whose ROI carries no number keep ``lesion_id`` missing.
    """
    ids = image_lesion_ids(images)
    les = images.assign(lesion_id=ids)
    cols = [c for c in CLINIC_COLUMNS if c in clinic]
    keep = clinic[["subject_id", "lesion_id", *cols, *(["organ"] if "organ" in clinic else [])]].copy()
    keep["lesion_id"] = keep["lesion_id"].astype("Float64")
    dup = keep.duplicated(["subject_id", "lesion_id"])
    if dup.any():
        raise ValueError(f"clinical lesion table: {int(dup.sum())} duplicate (subject_id, lesion_id) rows")
    keep = keep.rename(columns={"organ": "clinic_organ"})
    drop = [c for c in (*cols, "clinic_organ") if c in les]
    merged = les.drop(columns=drop).merge(keep, on=["subject_id", "lesion_id"], how="left", indicator=True)
    matched = merged["_merge"] == "both"
    organ_differs = 0
    if "organ" in merged and "clinic_organ" in merged:
        known = merged["organ"].ne("unknown") & merged["clinic_organ"].notna()
        organ_differs = int((matched & known & merged["organ"].ne(merged["clinic_organ"])).sum())
    subjects = set(les["subject_id"])
    clinic_only = keep[keep["subject_id"].isin(subjects)].merge(
        les[["subject_id", "lesion_id"]].dropna(), on=["subject_id", "lesion_id"], how="left", indicator=True)
    record = {
        "rule": "clinic lesion number = number in the ROI name (L<n>_<organ>); never the ROI's position",
        "image_rows": int(len(les)), "matched": int(matched.sum()),
        "roi_without_number": int(ids.isna().sum()),
        "image_without_clinic_row": int((~matched & ids.notna().to_numpy()).sum()),
        "clinic_without_roi": int((clinic_only["_merge"] == "left_only").sum()),
        "organ_disagreements": organ_differs,
    }
    return merged.drop(columns="_merge"), record
