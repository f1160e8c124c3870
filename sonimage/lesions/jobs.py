"""Per-lesion feature extraction over the converted stores: plan per patient, compute per lesion, gather tables.

Lesions are drawn on the FDG PET (RTSTRUCT, converted to a label store). FES values come from the FES PET itself:
the FES CT is registered to the FDG CT and the labels are carried onto the FES grid by nearest neighbour
(:mod:`sonimage.lesions.registration`), so FES voxels are never interpolated. ROI names ``L<n>_<organ>`` give the
organ (a liver lesion is not FES-evaluable); other names give organ "unknown".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.extract import ALL_FAMILIES, extract_features
from sonimage.features.local_intensity import peak_margin
from sonimage.features.table import LesionFeatures
from sonimage.lesions.registration import map_labels, register_translation
from sonimage.settings import PIPELINE_FEATURES
from sonimage.tables.lesions import lesion_table
from sonimage.volumes.store import open_store, read_volume, write_volume

ORGAN = re.compile(r"^L\d+[_ -](?P<organ>[a-z_ ]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class PatientScans:
    """The stores of one patient's baseline scans (paths relative to the output root)."""

    cohort: str
    patient: str
    labels: str
    fdg_pet: str
    fdg_ct: str | None
    fes_pet: str | None
    fes_ct: str | None


@dataclass(frozen=True)
class LesionJob:
    """One lesion on one tracer's PET: where the image and labels are, which label, and its bounding box."""

    cohort: str
    patient: str
    tracer: str
    lesion: int
    roi: str
    image: str
    labels: str
    box: tuple[int, int, int, int, int, int]


def organ_of(roi: str) -> str:
    """Organ from an ROI name ``L<n>_<organ>``, else 'unknown'."""
    m = ORGAN.match(roi.strip())
    return m.group("organ").lower().replace(" ", "_") if m else "unknown"


def patient_scans(manifest: pd.DataFrame) -> tuple[list[PatientScans], list[dict]]:
    """Pair each lesion label store with its FDG PET and the patient's FES PET and CTs; say what is missing."""
    done = manifest[manifest.status == "converted"]
    scans, notes = [], []
    for row in done[done.modality == "RTSTRUCT"].itertuples():
        same = done[done.patient == row.patient]
        fdg = same[same.series == row.referenced_series]
        fes = same[(same.modality == "PT") & (same.tracer == "FES")]

        def ct(study: str) -> str | None:
            hits = same[(same.modality == "CT") & (same.study == study)]
            return hits.store.iloc[0] if len(hits) == 1 else None

        fes_row = fes.iloc[0] if len(fes) == 1 else None
        if fes_row is None:
            notes.append({"cohort": row.cohort, "patient": row.patient,
                          "note": f"{len(fes)} FES PET series: FES features left empty"})
        scans.append(PatientScans(row.cohort, row.patient, row.store, fdg.store.iloc[0], ct(fdg.study.iloc[0]),
                                  None if fes_row is None else fes_row.store,
                                  None if fes_row is None else ct(fes_row.study)))
    return scans, notes


def _boxes(labels: np.ndarray, rois: list[dict]) -> dict[int, tuple[int, int, int, int, int, int]]:
    out = {}
    for r in rois:
        idx = np.nonzero(labels == r["label"])
        if idx[0].size:
            out[r["label"]] = tuple(int(v) for i in idx for v in (i.min(), i.max() + 1))
    return out


def prepare_patient(scans: PatientScans, out: Path) -> tuple[list[LesionJob], dict]:
    """Lesion jobs on FDG and, after CT registration, on FES; returns them with the registration record."""
    out = Path(out)
    labels = read_volume(out / scans.labels)
    rois = labels.attrs["rois"]
    names = {r["label"]: r["name"] for r in rois}
    jobs = [LesionJob(scans.cohort, scans.patient, "FDG", k, names[k], scans.fdg_pet, scans.labels, box)
            for k, box in _boxes(labels.array, rois).items()]
    record: dict = {"cohort": scans.cohort, "patient": scans.patient, "n_lesions": len(rois)}
    if not (scans.fes_pet and scans.fdg_ct and scans.fes_ct):
        record["note"] = "no FES PET/CT pair: FDG features only"
        return jobs, record
    try:
        shift = register_translation(read_volume(out / scans.fdg_ct), read_volume(out / scans.fes_ct))
    except RuntimeError as exc:  # SimpleITK's registration errors: the patient keeps its FDG features
        record["note"] = f"FES registration failed: {exc}"
        return jobs, record
    fes_grid = read_volume(out / scans.fes_pet)
    moved = map_labels(labels, fes_grid, shift)
    moved.attrs.clear()
    moved.attrs.update(quantity="label", rois=rois, translation_mm=list(shift), drawn_on=scans.fdg_pet)
    fes_labels = f"lesions/{scans.cohort}/{scans.patient}/fes-labels.zarr"
    write_volume(moved, out / fes_labels, "label")
    jobs += [LesionJob(scans.cohort, scans.patient, "FES", k, names[k], scans.fes_pet, fes_labels, box)
             for k, box in _boxes(moved.array, rois).items()]
    record.update(shift_x_mm=shift[0], shift_y_mm=shift[1], shift_z_mm=shift[2], note="")
    return jobs, record


def lesion_features(job: LesionJob, out: Path, settings: FeatureSettings = PIPELINE_FEATURES,
                    families: tuple[str, ...] = ALL_FAMILIES) -> LesionFeatures:
    """Features of one lesion, reading only its bounding box (plus the peak sphere's reach) from the stores."""
    image = open_store(Path(out) / job.image)
    spacing = tuple(float(s) for s in image.attrs["spacing"])
    margin = peak_margin(spacing, settings.peak_volume_ml)
    z0, z1, y0, y1, x0, x1 = job.box
    window = {d: slice(max(lo - m, 0), hi + m) for d, lo, hi, m in zip("zyx", (z0, y0, x0), (z1, y1, x1), margin)}
    var = next(iter(image.data_vars))
    pixels = image[var].isel(window).values.astype(np.float64)
    labels = open_store(Path(out) / job.labels)["label"].isel(window).values
    ids = {"cohort": job.cohort, "patient": job.patient, "lesion": job.lesion, "roi": job.roi,
           "organ": organ_of(job.roi), "tracer": job.tracer}
    try:
        features = extract_features(Roi(pixels, labels == job.lesion, spacing), settings, families,
                                    sul_ratio=image.attrs.get("ratio_sul_janma"))
    except ValueError as exc:
        return LesionFeatures(ids, [], str(exc))
    return LesionFeatures(ids, features)


def _value(features: list[Feature], name: str) -> float:
    return next((f.value for f in features if f.family == "pet" and f.name == name), float("nan"))


def lesion_summary(results: list[LesionFeatures]) -> pd.DataFrame:
    """The lesion table (:mod:`sonimage.tables.lesions`) of the features: FDG and FES uptake side by side."""
    rows: dict[tuple, dict] = {}
    for r in results:
        key = (r.ids["cohort"], r.ids["patient"], r.ids["lesion"])
        row = rows.setdefault(key, {"cohort": key[0], "patient": key[1], "lesion": key[2], "roi": r.ids["roi"],
                                    "organ": r.ids["organ"]})
        t = r.ids["tracer"].lower()
        row.update({f"{t}_suvmax": _value(r.features, "SUVmax"), f"{t}_suvmean": _value(r.features, "SUVmean"),
                    f"{t}_suvpeak": _value(r.features, "SUVpeak"), f"{t}_sulmax": _value(r.features, "SULmax"),
                    f"{t}_sulmean": _value(r.features, "SULmean"), f"{t}_mtv_ml": _value(r.features, "MTV (mL)"),
                    f"{t}_tlg": _value(r.features, "TLG SUV"), f"{t}_error": r.error})
    return lesion_table(pd.DataFrame(list(rows.values())))
