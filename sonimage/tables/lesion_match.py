"""Match the clinic's lesion rows to the image ROIs by lesion identifier, never by position.

The reader names each ROI ``L<n>_<organ>`` (the rule: :mod:`sonimage.lesions.roi`); ``<n>`` is the lesion number
the clinical record form uses. An ROI's position in the RTSTRUCT (the label value of the converted store) is not an
identifier: a reader may skip a lesion (missed, or not contoured), so the k-th ROI is not lesion k. ROIs without a
number cannot be matched and are reported, as are clinic lesions without an ROI.
"""

from __future__ import annotations

import pandas as pd

from sonimage.lesions.roi import lesion_number

# Columns a clinical lesion table may carry (RECIST size response and the site's PERCIST SULpeak read).
CLINIC_COLUMNS = ("response_pct", "response", "recist_measurable", "baseline_size_mm", "follow_up_size_mm",
                  "percist_measurable", "fdg_sulpeak_baseline", "fdg_sulpeak_follow_up", "sulpeak_change_pct",
                  "pet_response")


def match_clinic(lesions: pd.DataFrame, clinic: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The lesion table (:mod:`sonimage.tables.lesions`: ``patient``, ``roi``) with the clinic's columns joined by
    (patient = ``subject_id``, number in the ROI name = ``lesion_id``), as ``lesion_id``; and a record of what
    matched, what did not, and organ disagreements. Every lesion row is kept (clinic columns missing where there
    is no match)."""
    ids = lesions["roi"].map(lesion_number).astype("Float64")
    les = lesions.drop(columns=[c for c in (*CLINIC_COLUMNS, "lesion_id", "clinic_organ") if c in lesions])
    les = les.assign(lesion_id=ids)
    cols = [c for c in CLINIC_COLUMNS if c in clinic]
    keep = clinic[["subject_id", "lesion_id", *cols, *(["organ"] if "organ" in clinic else [])]]
    keep = keep.rename(columns={"subject_id": "patient", "organ": "clinic_organ"})
    keep = keep.assign(lesion_id=keep["lesion_id"].astype("Float64"))
    dup = keep.duplicated(["patient", "lesion_id"])
    if dup.any():
        raise ValueError(f"clinical lesion table: {int(dup.sum())} duplicate (subject_id, lesion_id) rows")
    merged = les.merge(keep, on=["patient", "lesion_id"], how="left", indicator=True)
    matched = merged["_merge"] == "both"
    organ_differs = 0
    if "clinic_organ" in merged:
        known = merged["organ"].ne("unknown") & merged["clinic_organ"].notna()
        organ_differs = int((matched & known & merged["organ"].ne(merged["clinic_organ"])).sum())
    clinic_only = keep[keep["patient"].isin(set(les["patient"]))].merge(
        les[["patient", "lesion_id"]].dropna(), on=["patient", "lesion_id"], how="left", indicator=True)
    record = {
        "rule": "clinic lesion number = number in the ROI name (L<n>_<organ>); never the ROI's position",
        "lesion_rows": int(len(les)), "matched": int(matched.sum()), "roi_without_number": int(ids.isna().sum()),
        "roi_without_clinic_row": int((~matched & ids.notna().to_numpy()).sum()),
        "clinic_without_roi": int((clinic_only["_merge"] == "left_only").sum()), "organ_disagreements": organ_differs,
    }
    return merged.drop(columns="_merge"), record
