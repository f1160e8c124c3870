"""Vendor-neutral SUVbw conversion, following the OncoRay SUV manual (Vácha et al.) and QIBA.

Rules in order: the rescale slope applies per slice; units decide the path (BQML, CNTS with Philips scale
factors, GML by SUVType, CM2ML); weight in g (values > 1000 kg are taken as grams); a dose below 1e5 is taken as
MBq; decay correction ADMIN, START or NONE.

Reference time for DecayCorrection START, first that applies:
1. SeriesDate/SeriesTime when not after the earliest acquisition (1 s tolerance);
2. the GE private PET scan datetime (0009,xx0D);
3. back-computed per slice from acquisition time, frame duration and frame reference time
   (t_ref = t_acq + T_ave - Δt, T_ave = ln(λT / (1 - e^(-λT))) / λ), when the frame reference time is positive;
4. the earliest acquisition time.
A frame reference time of 0 with a series time after acquisition (seen on Siemens-derived series) is read as
"not filled in", so rule 4 applies there; rule 3 would move the reference by half a frame (~1 % SUV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from sonimage.dicom import body
from sonimage.dicom.petheader import PetHeader
from sonimage.dicom.times import seconds_between


class SuvError(ValueError):
    """The series cannot be converted to SUV; the message says why."""


@dataclass(frozen=True)
class SuvConversion:
    """How stored values become SUVbw: ``suv = (slope * stored + intercept) * slice_factors[k]``."""

    slice_factors: np.ndarray
    bw_factor: float | None
    method: str
    reference_time: datetime | None
    uptake_s: float | None
    ratios: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def factor(self) -> float:
        """One factor for the series (the first slice's; all slices share it unless decay correction is NONE)."""
        return float(self.slice_factors[0])


def _impossible(h: PetHeader) -> None:
    """A negative weight or dose is no header to trust, whatever route the conversion would take."""
    if h.weight_kg is not None and h.weight_kg < 0:
        raise SuvError(f"PatientWeight is negative ({h.weight_kg:g})")
    if h.dose is not None and h.dose < 0:
        raise SuvError(f"RadionuclideTotalDose is negative ({h.dose:g})")


def _weight_g(h: PetHeader, notes: list[str]) -> float:
    if not h.weight_kg:
        raise SuvError("PatientWeight is missing or zero")
    if h.weight_kg > 1000:
        notes.append("PatientWeight > 1000 read as grams")
        return h.weight_kg
    return h.weight_kg * 1000.0


def _dose_bq(h: PetHeader, notes: list[str]) -> float:
    if not h.dose:
        raise SuvError("RadionuclideTotalDose is missing or zero")
    if h.dose < 1e5:
        notes.append("RadionuclideTotalDose < 1e5 read as MBq")
        return h.dose * 1e6
    return h.dose


def _decay_constant(h: PetHeader) -> float:
    if not h.half_life_s or h.half_life_s <= 0:
        raise SuvError("RadionuclideHalfLife is missing and the radionuclide code is unknown")
    return math.log(2) / h.half_life_s


def _earliest_acquisition(h: PetHeader) -> datetime:
    times = [s.acquisition for s in h.slices if s.acquisition is not None]
    if not times:
        raise SuvError("AcquisitionDate/AcquisitionTime are missing")
    return min(times)


def _injection(h: PetHeader, scan: datetime) -> datetime:
    """Administration datetime; a time-only value takes the scan's date, the day before when that would follow the scan."""
    if h.injection is not None:
        return h.injection
    if h.injection_time is None:
        raise SuvError("RadiopharmaceuticalStartDateTime and RadiopharmaceuticalStartTime are missing")
    inj = datetime.combine(scan.date(), h.injection_time)
    return inj - timedelta(days=1) if inj > scan else inj


def _mean_count_offset(lam: float, duration: float) -> float:
    """Seconds from frame start to the decay-weighted mean count time, ln(λT / (1 - e^(-λT))) / λ."""
    if duration <= 0:
        return 0.0
    return math.log(lam * duration / (1 - math.exp(-lam * duration))) / lam


def _start_reference(h: PetHeader, lam: float) -> tuple[datetime, str]:
    earliest = _earliest_acquisition(h)
    if h.series is not None and h.series <= earliest + timedelta(seconds=1):
        return h.series, "series time"
    if h.ge_scan is not None:
        return h.ge_scan, "GE private scan datetime"
    back = [
        s.acquisition + timedelta(seconds=_mean_count_offset(lam, s.frame_duration_s) - s.frame_reference_s)
        for s in h.slices
        if s.acquisition and s.frame_reference_s and s.frame_duration_s
    ]
    if back:
        origin = min(back)
        spread = [seconds_between(origin, t) for t in back]
        return origin + timedelta(seconds=float(np.median(spread))), "back-computed from frame reference time"
    return earliest, "earliest acquisition time"


def _activity_factors(h: PetHeader, notes: list[str]) -> tuple[np.ndarray, float, str, datetime, float]:
    """Per-slice factors from Bq/mL to SUVbw, the series bw factor, method, reference time and uptake seconds."""
    weight, dose, lam = _weight_g(h, notes), _dose_bq(h, notes), _decay_constant(h)
    n = len(h.slices)
    dc = h.decay_correction
    if dc == "ADMIN":
        ref = _earliest_acquisition(h)
        inj = _injection(h, ref)
        return np.full(n, weight / dose), weight / dose, "decay corrected to administration", inj, seconds_between(inj, ref)
    if dc == "START":
        ref, method = _start_reference(h, lam)
        inj = _injection(h, ref)
        dt = seconds_between(inj, ref)
        bw = weight / (dose * math.exp(-lam * dt))
        return np.full(n, bw), bw, method, ref, dt
    if dc == "NONE":
        earliest = _earliest_acquisition(h)
        inj = _injection(h, earliest)
        factors = []
        for s in h.slices:
            if s.acquisition is None or not s.frame_duration_s:
                raise SuvError("DecayCorrection NONE needs AcquisitionTime and ActualFrameDuration on every slice")
            lt = lam * s.frame_duration_s
            factors.append(weight / dose * lt / (1 - math.exp(-lt)) * math.exp(lam * seconds_between(inj, s.acquisition)))
        arr = np.asarray(factors)
        return arr, float(arr[0]), "not decay corrected: corrected per slice to administration", inj, seconds_between(inj, earliest)
    raise SuvError(f"DecayCorrection {dc or '(missing)'} is not ADMIN, START or NONE")


def _ratios(h: PetHeader) -> dict[str, float]:
    """SUV-scale ratios to SUVbw (multiply SUVbw by these) where height and weight are known."""
    if not h.weight_kg or not h.height_cm:
        return {}
    w = h.weight_kg if h.weight_kg <= 1000 else h.weight_kg / 1000.0
    return {
        "sul_janma": body.lbm_janmahasatian(w, h.height_cm, h.sex) / w,
        "sul_james": body.lbm_james(w, h.height_cm, h.sex) / w,
        "suv_ibw": body.ideal_body_weight(h.height_cm, h.sex) / w,
        "suv_bsa": body.bsa_dubois(w, h.height_cm) * 1e4 / (w * 1000.0),
    }


def suv_conversion(h: PetHeader) -> SuvConversion:
    """The SUVbw conversion of a PET series, or :class:`SuvError` naming the missing or unusable field."""
    notes: list[str] = []
    n = len(h.slices)
    _impossible(h)
    if any(abs(s.intercept) > 0 for s in h.slices):
        raise SuvError("RescaleIntercept is not 0 (PET requires 0)")
    units = h.units
    ref: datetime | None = None
    uptake: float | None = None
    bw: float | None = None
    if units == "BQML":
        factors, bw, method, ref, uptake = _activity_factors(h, notes)
    elif units == "CNTS":
        if h.philips_suv_scale:
            factors, method = np.full(n, h.philips_suv_scale), "Philips SUV scale factor"
            try:
                act, bw, _, ref, uptake = _activity_factors(h, notes)
            except SuvError as exc:
                notes.append(f"no independent check of the vendor factor: {exc}")
            else:
                if h.philips_activity_scale:
                    notes.append(f"activity-scale route gives {h.philips_activity_scale * act[0]:.6g}")
        elif h.philips_activity_scale:
            act, bw, method, ref, uptake = _activity_factors(h, notes)
            factors, method = act * h.philips_activity_scale, f"Philips activity scale factor, {method}"
        else:
            raise SuvError("Units CNTS without a Philips SUV or activity-concentration scale factor: not convertible")
    elif units == "GML":
        if not h.weight_kg and h.suv_type != "BW":
            raise SuvError(f"PatientWeight is missing: needed to undo SUVType {h.suv_type}")
        w = h.weight_kg or 1.0
        try:
            norm = body.normaliser_kg(h.suv_type, w, h.height_cm, h.sex)
        except ValueError as exc:
            raise SuvError(str(exc)) from exc
        factors, method = np.full(n, w / norm), f"already SUV ({h.suv_type})"
    elif units == "CM2ML":
        if not h.weight_kg or not h.height_cm:
            raise SuvError("Units CM2ML needs PatientWeight and PatientSize")
        bsa_cm2 = body.bsa_dubois(h.weight_kg, h.height_cm) * 1e4
        factors, method = np.full(n, h.weight_kg * 1000.0 / bsa_cm2), "SUVbsa back to SUVbw (Du Bois)"
    else:
        raise SuvError(f"Units {units or '(missing)'} cannot be converted to SUV (needs BQML, CNTS, GML or CM2ML)")
    return SuvConversion(np.asarray(factors, dtype=np.float64), bw, method, ref, uptake, _ratios(h), tuple(notes))
