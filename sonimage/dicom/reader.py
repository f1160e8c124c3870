"""Read a validated series into a :class:`Volume`: PET in SUVbw, CT in Hounsfield units."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pydicom

from sonimage.dicom.index import Instance, index_files, list_files
from sonimage.dicom.petheader import header_from_datasets
from sonimage.dicom.series import SeriesError, SeriesPlan, group_series
from sonimage.dicom.suv import suv_conversion
from sonimage.dicom.tracer import tracer_name
from sonimage.volumes.volume import Volume


def _pixels(root: Path, inst: Instance, shape: tuple[int, int], content: bytes | None = None) -> np.ndarray:
    """One slice's stored values: read straight from the file offset found at indexing (from ``content``, the
    file's bytes, when already read), else decoded by pydicom."""
    path = root / inst.path
    try:
        if inst.pixels is None:
            return pydicom.dcmread(path if content is None else io.BytesIO(content)).pixel_array
        offset, length, dtype = inst.pixels
        count = shape[0] * shape[1]
        if length < count * np.dtype(dtype).itemsize or inst.size < offset + length:
            raise ValueError(f"pixel data is truncated ({inst.size - offset} of {length} bytes present)")
        if content is not None:
            return np.frombuffer(content, dtype=dtype, count=count, offset=offset).reshape(shape)
        return np.fromfile(path, dtype=dtype, count=count, offset=offset).reshape(shape)
    except Exception as exc:  # truncated, undecodable or unreadable pixel data
        raise SeriesError(f"pixel data of {inst.shown} cannot be decoded: {exc}") from exc


def _pet_attrs(plan: SeriesPlan, head: pydicom.Dataset) -> tuple[np.ndarray, dict]:
    """SUV factors per slice and the PET attributes; series-level fields come from the first file's header."""
    first = header_from_datasets([head])
    conv = suv_conversion(dataclasses.replace(first, slices=tuple(s.timing for s in plan.slices)))
    attrs = {
        "quantity": "SUVbw",
        "units": "g/mL",
        "tracer": tracer_name(first.tracer),
        "original_units": first.units,
        "decay_correction": first.decay_correction,
        "suv_factor": conv.factor,
        "suv_bw_factor_g_per_bq": conv.bw_factor,
        "suv_method": conv.method,
        "suv_slice_factors": [float(f) for f in conv.slice_factors] if np.ptp(conv.slice_factors) > 0 else [],
        "uptake_time_s": conv.uptake_s,
        "suv_notes": list(conv.notes),
        **{f"ratio_{k}": v for k, v in conv.ratios.items()},
    }
    return conv.slice_factors, attrs


def load_plan(plan: SeriesPlan, root: Path, contents: Mapping[str, bytes] | None = None) -> Volume:
    """Pixel data of ``plan`` (files relative to ``root``) as a volume: PET → SUVbw float32, CT → HU.
    ``contents``: the files' bytes by relative path, when the caller has read them already."""
    root = Path(root)
    slope = np.array([s.timing.slope for s in plan.slices])
    intercept = np.array([s.timing.intercept for s in plan.slices])
    head = pydicom.dcmread(root / plan.files[0], stop_before_pixels=True)  # series-level fields, read once
    attrs: dict = {
        "modality": plan.modality,
        "manufacturer": str(head.get("Manufacturer", "")),
        "model": str(head.get("ManufacturerModelName", "")),
        "slice_positions_mm": list(plan.slice_positions),
    }
    if plan.modality == "PT":
        factors, pet = _pet_attrs(plan, head)
        attrs.update(pet)
        scale, offset, dtype = slope * factors, intercept * factors, np.float32
    else:
        integral = np.allclose(slope, np.round(slope)) and np.allclose(intercept, np.round(intercept))
        scale, offset = slope, intercept
        dtype = np.int16 if integral else np.float32
        attrs.update({"quantity": "CT", "units": "HU"})
    array = np.empty(plan.shape, dtype=dtype)
    for k, inst in enumerate(plan.slices):
        content = contents.get(inst.path) if contents else None
        values = _pixels(root, inst, plan.shape[1:], content) * scale[k] + offset[k]
        array[k] = values if dtype is np.float32 else np.round(values)
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
