"""Read a validated series into a :class:`Volume`: PET in SUVbw, CT in Hounsfield units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from sonimage.dicom.index import index_files, list_files
from sonimage.dicom.petheader import header_from_datasets
from sonimage.dicom.series import SeriesError, SeriesPlan, group_series
from sonimage.dicom.suv import suv_conversion
from sonimage.dicom.tracer import tracer_name
from sonimage.volumes.volume import Volume


def _pixels(ds: pydicom.Dataset, path: str) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:  # truncated or undecodable pixel data
        raise SeriesError(f"pixel data of {path} cannot be decoded: {exc}") from exc


def _pet_attrs(datasets: list[pydicom.Dataset]) -> tuple[np.ndarray, dict]:
    conv = suv_conversion(header_from_datasets(datasets))
    head = header_from_datasets(datasets[:1])
    attrs = {
        "quantity": "SUVbw",
        "units": "g/mL",
        "tracer": tracer_name(head.tracer),
        "original_units": head.units,
        "decay_correction": head.decay_correction,
        "suv_factor": conv.factor,
        "suv_bw_factor_g_per_bq": conv.bw_factor,
        "suv_method": conv.method,
        "suv_factor_varies_by_slice": bool(np.ptp(conv.slice_factors) > 0),
        "uptake_time_s": conv.uptake_s,
        "suv_notes": list(conv.notes),
        **{f"ratio_{k}": v for k, v in conv.ratios.items()},
    }
    return conv.slice_factors, attrs


def load_plan(plan: SeriesPlan, root: Path) -> Volume:
    """Pixel data of ``plan`` (files relative to ``root``) as a volume: PET → SUVbw float32, CT → HU."""
    datasets = [pydicom.dcmread(root / f) for f in plan.files]
    slope = np.array([float(ds.get("RescaleSlope", 1) or 1) for ds in datasets])
    intercept = np.array([float(ds.get("RescaleIntercept", 0) or 0) for ds in datasets])
    first = datasets[0]
    attrs: dict = {
        "modality": plan.modality,
        "manufacturer": str(first.get("Manufacturer", "")),
        "model": str(first.get("ManufacturerModelName", "")),
        "slice_positions_mm": list(plan.slice_positions),
    }
    if plan.modality == "PT":
        factors, pet = _pet_attrs(datasets)
        attrs.update(pet)
        scale, offset, dtype = slope * factors, intercept * factors, np.float32
    else:
        integral = np.allclose(slope, np.round(slope)) and np.allclose(intercept, np.round(intercept))
        scale, offset = slope, intercept
        dtype = np.int16 if integral else np.float32
        attrs.update({"quantity": "CT", "units": "HU"})
    array = np.empty(plan.shape, dtype=dtype)
    for k, (ds, path) in enumerate(zip(datasets, plan.files)):
        px = _pixels(ds, path)
        if px.shape != plan.shape[1:]:
            raise SeriesError(f"pixel data of {path} has shape {px.shape}, expected {plan.shape[1:]}")
        array[k] = px * scale[k] + offset[k] if dtype is np.float32 else np.round(px * scale[k] + offset[k])
    return Volume(array=array, spacing=plan.spacing, origin=plan.origin, direction=plan.direction, attrs=attrs)


def read_dicom_volume(folder: Path) -> Volume:
    """The one image series in ``folder`` (PET in SUVbw, CT in HU); an error naming the folder otherwise."""
    folder = Path(folder)
    instances, rejected = index_files(list_files(folder), folder)
    plans, _, bad = group_series(instances)
    problems = rejected + bad
    if len(plans) != 1 or problems:
        why = "; ".join(f"{r.path}: {r.reason}" for r in problems) or f"{len(plans)} image series found"
        raise SeriesError(f"{folder}: expected exactly one PET or CT series: {why}")
    return load_plan(plans[0], folder)
