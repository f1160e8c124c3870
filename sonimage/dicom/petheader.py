"""The PET header fields SUV depends on, read alike from pydicom datasets and from keyword→value mappings."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from pydicom.dataset import Dataset

from sonimage.dicom.times import combine, parse_dt, parse_tm

# Half-lives (s) by radionuclide code meaning, for series that omit RadionuclideHalfLife.
HALF_LIFE_S = {"18F": 6586.2, "F-18": 6586.2, "68GA": 4057.7, "GA-68": 4057.7, "11C": 1223.4, "C-11": 1223.4,
               "13N": 597.9, "N-13": 597.9, "89ZR": 282276.0, "ZR-89": 282276.0}

GE_CREATOR = "GEMS_PETD_01"
PHILIPS_CREATOR = "Philips PET Private Group"


@dataclass(frozen=True, slots=True)
class SliceTiming:
    """Per-slice values: acquisition start, frame timing (s) and the rescale."""

    acquisition: datetime | None
    frame_reference_s: float | None
    frame_duration_s: float | None
    slope: float
    intercept: float


@dataclass(frozen=True)
class PetHeader:
    """Series-level SUV inputs plus one :class:`SliceTiming` per slice."""

    units: str
    suv_type: str
    decay_correction: str
    manufacturer: str
    weight_kg: float | None
    height_cm: float | None
    sex: str
    dose: float | None
    half_life_s: float | None
    injection: datetime | None
    injection_time: time | None
    series: datetime | None
    ge_scan: datetime | None
    philips_suv_scale: float | None
    philips_activity_scale: float | None
    tracer: str
    slices: tuple[SliceTiming, ...]


def _number(value: Any) -> float | None:
    try:
        out = float(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return out if out is not None and math.isfinite(out) else None


def _private(ds: Dataset, group: int, creator: str, element: int) -> Any:
    """A private element found through its creator's block, else at the usual block 0x10 (creators get stripped)."""
    block = 0x10
    for tag in range(0x10, 0x100):
        item = ds.get((group, tag))
        if item is not None and str(item.value).strip() == creator:
            block = tag
            break
    item = ds.get((group, (block << 8) | element))
    return None if item is None else item.value


def _dataset_getter(ds: Dataset) -> Callable[[str], Any]:
    rp = ds.get("RadiopharmaceuticalInformationSequence")
    rp0 = rp[0] if rp else Dataset()
    special: dict[str, Callable[[], Any]] = {
        "GEScanDateTime": lambda: _private(ds, 0x0009, GE_CREATOR, 0x0D),
        "PhilipsSUVScaleFactor": lambda: _private(ds, 0x7053, PHILIPS_CREATOR, 0x00),
        "PhilipsActivityScaleFactor": lambda: _private(ds, 0x7053, PHILIPS_CREATOR, 0x09),
        "RadionuclideCode": lambda: (rp0.RadionuclideCodeSequence[0].get("CodeMeaning")
                                     if rp0.get("RadionuclideCodeSequence") else None),
    }

    def get(name: str) -> Any:
        if name in special:
            return special[name]()
        if name.startswith("Radio"):
            return rp0.get(name)
        return ds.get(name)

    return get


def _mapping_getter(m: Mapping[str, Any]) -> Callable[[str], Any]:
    philips = m.get("PhilipsPETPrivateGroup") or {}
    alias = {"PhilipsSUVScaleFactor": philips.get("SUVScaleFactor"),
             "PhilipsActivityScaleFactor": philips.get("ActivityConcentrationScaleFactor")}
    return lambda name: alias[name] if name in alias else m.get(name)


def _slice(get: Callable[[str], Any]) -> SliceTiming:
    acq = parse_dt(get("AcquisitionDateTime")) or combine(get("AcquisitionDate"), get("AcquisitionTime"))
    ref = _number(get("FrameReferenceTime"))
    dur = _number(get("ActualFrameDuration"))
    return SliceTiming(
        acquisition=acq,
        frame_reference_s=None if ref is None else ref / 1000.0,
        frame_duration_s=None if dur is None else dur / 1000.0,
        slope=_number(get("RescaleSlope")) or 1.0,
        intercept=_number(get("RescaleIntercept")) or 0.0,
    )


def _header(getters: Sequence[Callable[[str], Any]]) -> PetHeader:
    get = getters[0]
    half_life = _number(get("RadionuclideHalfLife"))
    if half_life is None and get("RadionuclideCode"):
        half_life = HALF_LIFE_S.get(str(get("RadionuclideCode")).strip().upper())
    height_m = _number(get("PatientSize"))
    tracer = " ".join(str(get(k) or "") for k in ("Radiopharmaceutical", "SeriesDescription"))
    return PetHeader(
        units=str(get("Units") or "").strip().upper(),
        suv_type=str(get("SUVType") or "BW").strip().upper(),
        decay_correction=str(get("DecayCorrection") or "").strip().upper(),
        manufacturer=str(get("Manufacturer") or "").strip(),
        weight_kg=_number(get("PatientWeight")),
        height_cm=None if not height_m else height_m * 100.0,
        sex=str(get("PatientSex") or "O").strip().upper() or "O",
        dose=_number(get("RadionuclideTotalDose")),
        half_life_s=half_life,
        injection=parse_dt(get("RadiopharmaceuticalStartDateTime")),
        injection_time=parse_tm(get("RadiopharmaceuticalStartTime")),
        series=combine(get("SeriesDate"), get("SeriesTime")),
        ge_scan=parse_dt(get("GEScanDateTime")),
        philips_suv_scale=_number(get("PhilipsSUVScaleFactor")),
        philips_activity_scale=_number(get("PhilipsActivityScaleFactor")),
        tracer=tracer.strip(),
        slices=tuple(_slice(g) for g in getters),
    )


def slice_timing(ds: Dataset) -> SliceTiming:
    """The per-slice SUV inputs of one dataset (read once, at indexing)."""
    return _slice(_dataset_getter(ds))


def slice_timing_from_mapping(values: Mapping[str, Any]) -> SliceTiming:
    """The per-slice SUV inputs from a keyword→value mapping (the index's minimal tag reader)."""
    return _slice(values.get)


def header_from_datasets(datasets: Sequence[Dataset]) -> PetHeader:
    """SUV inputs of a series from its slices' pydicom datasets (pixel data not needed)."""
    return _header([_dataset_getter(ds) for ds in datasets])


def header_from_mappings(items: Sequence[Mapping[str, Any]]) -> PetHeader:
    """SUV inputs from keyword→value mappings (e.g. JSON header dumps); Philips privates under 'PhilipsPETPrivateGroup'."""
    return _header([_mapping_getter(m) for m in items])
