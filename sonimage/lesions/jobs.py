"""Per-lesion feature extraction over the converted stores: plan per patient, compute per lesion, gather tables.

Lesions are drawn on the FDG PET (RTSTRUCT, converted to a label store). FES values come from the FES PET itself:
the FES CT is registered to the FDG CT and the labels are carried onto the FES grid by nearest neighbour
(:mod:`sonimage.lesions.registration`), so FES voxels are never interpolated. ROI names ``L<n>_<organ>`` give the
organ (a liver lesion is not FES-evaluable); other names give organ "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.extract import ALL_FAMILIES, extract_features
from sonimage.features.local_intensity import peak_margin
from sonimage.features.table import LesionFeatures
from sonimage.lesions.delineation import DelineationSettings
from sonimage.lesions.reading import LesionReading, delineation_rows, read_patient_fes
from sonimage.lesions.roi import organ_of
from sonimage.settings import PIPELINE_FEATURES, Settings
from sonimage.tables.lesions import lesion_table
from sonimage.tables.patients import FesRule
from sonimage.volumes.store import open_variable, read_volume, write_volume

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
    percist_threshold_suv: float = float("nan")  # from the scan's automatic liver VOI (FDG jobs)


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
    """Bounding box (z0, z1, y0, y1, x0, x1) of every ROI's label present in ``labels``, in one pass."""
    found = ndimage.find_objects(np.asarray(labels)) if np.asarray(labels).max(initial=0) > 0 else []
    out = {}
    for r in rois:
        box = found[r["label"] - 1] if 0 < r["label"] <= len(found) else None
        if box is not None:
            out[r["label"]] = tuple(int(v) for b in box for v in (b.start, b.stop))
    return out


def _plan(scans: PatientScans, out: Path, settings: Settings) -> tuple[list[LesionJob], dict, dict[str, np.ndarray]]:
    """:func:`prepare_patient`, also returning the label arrays it holds in memory (by store path)."""
    labels = read_volume(out / scans.labels)
    rois = labels.attrs["rois"]
    names = {r["label"]: r["name"] for r in rois}
    read = read_patient_fes(scans, labels, {k: organ_of(n) for k, n in names.items()}, out, settings)
    fdg_threshold = read.liver[0]["percist_threshold_suv"] if read.liver else float("nan")
    jobs = [LesionJob(scans.cohort, scans.patient, "FDG", k, names[k], scans.fdg_pet, scans.labels, box,
                      fdg_threshold) for k, box in _boxes(labels.array, rois).items()]
    record: dict = {"cohort": scans.cohort, "patient": scans.patient, "n_lesions": len(rois), **read.record}
    record["liver"], record["lesions"] = read.liver, read.lesions
    arrays = {scans.labels: labels.array}
    if read.fes_labels is None:
        return jobs, record, arrays
    fes_labels = f"lesions/{scans.cohort}/{scans.patient}/fes-labels.zarr"
    write_volume(read.fes_labels, out / fes_labels, "label")
    arrays[fes_labels] = read.fes_labels.array
    jobs += [LesionJob(scans.cohort, scans.patient, "FES", k, names[k], scans.fes_pet, fes_labels, box)
             for k, box in _boxes(read.fes_labels.array, rois).items()]
    return jobs, record, arrays


def prepare_patient(scans: PatientScans, out: Path, settings: Settings | None = None
                    ) -> tuple[list[LesionJob], dict]:
    """Lesion jobs on FDG and, after CT registration and the FES reading, on FES; returns them with the patient's
    record (registration QC, per-scan liver reference, per-lesion FES evaluability: see
    :mod:`sonimage.lesions.reading`)."""
    jobs, record, _ = _plan(scans, Path(out), settings or Settings())
    return jobs, record


def patient_lesions(scans: PatientScans, out: Path, settings: Settings | None = None
                    ) -> tuple[list[LesionReading], dict]:
    """The whole lesion stage of one patient in one call (one task): :func:`prepare_patient`, then every lesion's
    features and delineations (:func:`lesion_features`) from the scans read once each (the label maps the
    planning already holds, each PET read whole once), FDG lesions first. Returns the readings with the
    patient's record."""
    settings = settings or Settings()
    jobs, record, labels = _plan(scans, Path(out), settings)
    sources: dict[str, tuple[np.ndarray, dict]] = {path: (array, {}) for path, array in labels.items()}
    for path in dict.fromkeys(job.image for job in jobs):
        image, attrs = open_variable(Path(out) / path)
        sources[path] = image[...], attrs
    readings = [lesion_features(job, Path(out), settings.features, delineation=settings.delineation,
                                sources=sources) for job in jobs]
    return readings, record


def lesion_features(job: LesionJob, out: Path, settings: FeatureSettings = PIPELINE_FEATURES,
                    families: tuple[str, ...] = ALL_FAMILIES,
                    delineation: DelineationSettings = DelineationSettings(),
                    sources: dict[str, tuple[np.ndarray, dict]] | None = None) -> LesionReading:
    """Features of one lesion, reading only its bounding box (plus the peak sphere's and the delineation
    search region's reach) from the stores; FDG lesions also get every delineation's MTV. ``sources`` holds
    images and label maps already in memory (store path → array and the store's attributes)."""
    sources = sources or {}
    image, attrs = sources.get(job.image) or open_variable(Path(out) / job.image)
    spacing = tuple(float(s) for s in attrs["spacing"])
    margin = [max(m, int(np.ceil(delineation.margin_mm / s)) + 1)
              for m, s in zip(peak_margin(spacing, settings.peak_volume_ml), spacing)]
    z0, z1, y0, y1, x0, x1 = job.box
    window = tuple(slice(max(lo - m, 0), hi + m) for lo, hi, m in zip((z0, y0, x0), (z1, y1, x1), margin))
    if job.tracer == "FDG" and delineation.region == "whole-body":
        window = (slice(None),) * 3  # the delineation's search region is the whole scan
    pixels = np.asarray(image[window], np.float64)
    labels = (sources.get(job.labels) or open_variable(Path(out) / job.labels))[0][window]
    sul_ratio = attrs.get(delineation.sul_ratio_key)
    ids = {"cohort": job.cohort, "patient": job.patient, "lesion": job.lesion, "roi": job.roi,
           "organ": organ_of(job.roi), "tracer": job.tracer, "sul_lbm_formula": delineation.lbm_formula}
    mask = labels == job.lesion
    try:
        features = extract_features(Roi(pixels, mask, spacing), settings, families, sul_ratio=sul_ratio)
    except ValueError as exc:
        return LesionReading(ids, [], str(exc))
    rows = delineation_rows(pixels, mask, spacing, delineation, job.percist_threshold_suv, sul_ratio) \
        if job.tracer == "FDG" else []
    return LesionReading(ids, features, delineations=tuple({**ids, **r} for r in rows))


def _value(features: list[Feature], name: str) -> float:
    return next((f.value for f in features if f.family == "pet" and f.name == name), float("nan"))


def lesion_summary(results: list[LesionFeatures], readings: pd.DataFrame | None = None,
                   primary: str = "rtstruct", rule: FesRule = FesRule()) -> pd.DataFrame:
    """The lesion table (:mod:`sonimage.tables.lesions`) of the features: FDG and FES uptake side by side, then
    the MTV/TLG of every automatic delineation (``fdg_mtv_ml_<method>``; ``fdg_mtv_ml`` is the reader contour)
    and, with ``readings`` (:func:`reading_tables`' ``fes_reading``), each lesion's FES evaluability and reason and
    what the call needs (diameter, RC(d), local background); then each lesion's ``fes_call`` and
    ``fes_call_reason`` by ``rule`` (:meth:`sonimage.tables.patients.FesRule.calls`). ``volume_ml`` (the burden of the patient table) is the MTV of ``primary`` (``rtstruct`` or a method label),
    named in ``fdg_mtv_method``."""
    rows: dict[tuple, dict] = {}
    for r in results:
        key = (r.ids["cohort"], r.ids["patient"], r.ids["lesion"])
        row = rows.setdefault(key, {"cohort": key[0], "patient": key[1], "lesion": key[2], "roi": r.ids["roi"],
                                    "organ": r.ids["organ"]})
        t = r.ids["tracer"].lower()
        row.update({f"{t}_suvmax": _value(r.features, "SUVmax"), f"{t}_suvmean": _value(r.features, "SUVmean"),
                    f"{t}_suvpeak": _value(r.features, "SUVpeak"), f"{t}_sulmax": _value(r.features, "SULmax"),
                    f"{t}_sulmean": _value(r.features, "SULmean"), f"{t}_mtv_ml": _value(r.features, "MTV (mL)"),
                    f"{t}_tlg": _value(r.features, "TLG SUV"), f"{t}_error": r.error,
                    "sul_lbm_formula": r.ids.get("sul_lbm_formula", "Janmahasatian")})
        for d in getattr(r, "delineations", ()):
            if d["method"] != "contour":
                row.update({f"{t}_mtv_ml_{d['label']}": d["mtv_ml"], f"{t}_tlg_{d['label']}": d["tlg"]})
    table = lesion_table(pd.DataFrame(list(rows.values())))
    if primary == "rtstruct":
        table["volume_ml"], table["fdg_mtv_method"] = table["fdg_mtv_ml"], "reader contour"
    else:
        table["volume_ml"], table["fdg_mtv_method"] = table[f"fdg_mtv_ml_{primary}"], primary
        table["fdg_tlg"] = table[f"fdg_tlg_{primary}"]
    if readings is not None and len(readings):
        table = table.merge(readings, on=["cohort", "patient", "lesion"], how="left")
        table["fes_evaluable"] = table["fes_evaluable"].fillna(False).astype(bool) & table["fes_suvmax"].notna()
        reason = table["fes_not_evaluable_reason"].fillna("")
        table["fes_not_evaluable_reason"] = reason.where(table["fes_evaluable"] | (reason != ""), "no FES value")
    return table.join(rule.calls(table))


def delineation_table(results: list[LesionFeatures]) -> pd.DataFrame:
    """Long table of every delineation (method, parameters, threshold, MTV, TLG, SUVmean) of every FDG lesion."""
    return pd.DataFrame([d for r in results for d in getattr(r, "delineations", ())])


def reading_tables(records: list[dict]) -> dict[str, pd.DataFrame]:
    """Registration QC (one row per patient), liver reference (one per scan) and FES reading (one per lesion)
    from the records of :func:`prepare_patient`."""
    keys = ("cohort", "patient")
    liver = [{**{k: r[k] for k in keys}, **row} for r in records for row in r.get("liver", [])]
    lesions = [{**{k: r[k] for k in keys}, "lesion": row["label"], **{c: v for c, v in row.items() if c != "label"}}
               for r in records for row in r.get("lesions", [])]
    return {"registration": pd.DataFrame([{k: v for k, v in r.items() if k not in ("liver", "lesions")}
                                          for r in records]),
            "liver_reference": pd.DataFrame(liver), "fes_reading": pd.DataFrame(lesions)}
