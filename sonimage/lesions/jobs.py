"""Per-lesion feature extraction of one patient, from its volumes in memory: plan, then compute per lesion.

Lesions are drawn on the FDG PET (RTSTRUCT, converted to a label store). FES values come from the FES PET itself:
the FES CT is registered to the FDG CT and the labels are carried onto the FES grid by nearest neighbour
(:mod:`sonimage.lesions.registration`), so FES voxels are never interpolated. ROI names ``L<n>_<organ>`` give the
organ (a liver lesion is not FES-evaluable); other names give organ "unknown". Jobs name their images by store
path (relative to the output root), as keys into the arrays the extract stage read (:mod:`sonimage.stages.extract`);
nothing here opens a file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.families import ALL_FAMILIES, extract_features
from sonimage.features.local_intensity import peak_margin
from sonimage.lesions.delineation import delineation_rows
from sonimage.lesions.reading import read_patient_fes
from sonimage.lesions.records import LesionJob, LesionReading, PatientScans, PatientVolumes
from sonimage.lesions.roi import organ_of
from sonimage.settings import PIPELINE_FEATURES, DelineationSettings, FesReadingSettings, FesRuleSettings
from sonimage.volumes.volume import Volume


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


def fes_labels_store(scans: PatientScans) -> str:
    """Where the extract stage keeps a patient's lesion labels carried onto the FES grid (relative to the output
    root)."""
    return f"lesions/{scans.cohort}/{scans.patient}/fes-labels.zarr"


def plan_lesions(scans: PatientScans, volumes: PatientVolumes, delineation: DelineationSettings,
                 fes_reading: FesReadingSettings, fes: FesRuleSettings
                 ) -> tuple[list[LesionJob], dict, Volume | None]:
    """Lesion jobs on FDG and, after CT registration and the FES reading, on FES; returns them with the patient's
    record (registration QC, per-scan liver reference, per-lesion FES evaluability: see
    :mod:`sonimage.lesions.reading`) and the label map carried onto the FES grid (None without one)."""
    labels = volumes.labels
    rois = labels.attrs["rois"]
    names = {r["label"]: r["name"] for r in rois}
    read = read_patient_fes(volumes, {k: organ_of(n) for k, n in names.items()}, delineation, fes_reading,
                            fes.threshold)
    fdg_threshold = read.liver[0]["percist_threshold_suv"] if read.liver else float("nan")
    jobs = [LesionJob(scans.cohort, scans.patient, "FDG", k, names[k], scans.fdg_pet, scans.labels, box,
                      fdg_threshold) for k, box in _boxes(labels.array, rois).items()]
    record: dict = {"cohort": scans.cohort, "patient": scans.patient, "n_lesions": len(rois), **read.record}
    record["liver"], record["lesions"] = read.liver, read.lesions
    if read.fes_labels is None:
        return jobs, record, None
    jobs += [LesionJob(scans.cohort, scans.patient, "FES", k, names[k], scans.fes_pet, fes_labels_store(scans), box)
             for k, box in _boxes(read.fes_labels.array, rois).items()]
    return jobs, record, read.fes_labels


def _image(volume: Volume) -> tuple[np.ndarray, dict]:
    return volume.array, {**volume.attrs, "spacing": list(volume.spacing)}


def patient_lesions(scans: PatientScans, volumes: PatientVolumes, features: FeatureSettings,
                    delineation: DelineationSettings, fes_reading: FesReadingSettings, fes: FesRuleSettings
                    ) -> tuple[list[LesionReading], dict, Volume | None]:
    """The whole lesion stage of one patient: :func:`plan_lesions`, then every lesion's features and delineations
    (:func:`lesion_features`) from the volumes in memory, FDG lesions first. Returns the readings, the patient's
    record and the FES label map (for the stage to keep)."""
    jobs, record, fes_labels = plan_lesions(scans, volumes, delineation, fes_reading, fes)
    sources = {scans.labels: (volumes.labels.array, {}), scans.fdg_pet: _image(volumes.fdg_pet)}
    if fes_labels is not None:
        sources[fes_labels_store(scans)] = (fes_labels.array, {})
        sources[str(scans.fes_pet)] = _image(volumes.fes_pet)
    readings = [lesion_features(job, sources, features, delineation=delineation) for job in jobs]
    return readings, record, fes_labels


def lesion_features(job: LesionJob, sources: dict[str, tuple], settings: FeatureSettings = PIPELINE_FEATURES,
                    families: tuple[str, ...] = ALL_FAMILIES,
                    delineation: DelineationSettings = DelineationSettings()) -> LesionReading:
    """Features of one lesion from its bounding box (plus the peak sphere's and the delineation search region's
    reach); FDG lesions also get every delineation's MTV. ``sources``: store path → (image or label array, or
    anything sliceable like one, and the store's attributes with ``spacing``)."""
    image, attrs = sources[job.image]
    spacing = tuple(float(s) for s in attrs["spacing"])
    margin = [max(m, int(np.ceil(delineation.margin_mm / s)) + 1)
              for m, s in zip(peak_margin(spacing, settings.peak_volume_ml), spacing)]
    z0, z1, y0, y1, x0, x1 = job.box
    window = tuple(slice(max(lo - m, 0), hi + m) for lo, hi, m in zip((z0, y0, x0), (z1, y1, x1), margin))
    if job.tracer == "FDG" and delineation.region == "whole-body":
        window = (slice(None),) * 3  # the delineation's search region is the whole scan
    pixels = np.asarray(image[window], np.float64)
    labels = sources[job.labels][0][window]
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
