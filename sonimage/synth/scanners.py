"""Scanner header profiles per site, scan timing, and the exact SUVbw factor of what is written.

Each site has one PET/CT scanner whose headers follow one vendor's conventions and that site's habits, so that
every SUV rule is exercised somewhere:

- Siemens: Units BQML, per-slice AcquisitionTime per bed position (times with microseconds), SeriesTime at the
  start of the first bed; DecayCorrection START (rule: series time), ADMIN or NONE (per-slice factors).
- GE: BQML, START, SeriesTime after the scan (reconstruction time), so the reference time must come from the
  private scan datetime (0009,100D) under creator "GEMS_PETD_01".
- Philips: CNTS with the SUV scale factor (7053,1000) and activity-concentration factor (7053,1009) under creator
  "Philips PET Private Group", or the activity factor alone; pixel data uint16.
Site habits: dose written in MBq; injection given as time only (the date is the scan's, or the day before when a
late-evening injection is scanned after midnight); all slices carry their own RescaleSlope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

import numpy as np

F18_HALF_LIFE_S = 6586.2
GE_CREATOR = "GEMS_PETD_01"
PHILIPS_CREATOR = "Philips PET Private Group"
MIDNIGHT_PROBABILITY = 0.05


@dataclass(frozen=True)
class ScannerProfile:
    """Header conventions of one site's PET/CT."""

    name: str
    vendor: str
    manufacturer: str
    model: str
    institution: str
    units: str = "BQML"
    decay_correction: str = "START"
    series_after_scan: bool = False  # GE: SeriesTime is the reconstruction time
    ge_private_scan_time: bool = False
    philips_suv_scale: bool = False
    philips_activity_scale: bool = False
    unsigned: bool = False
    microseconds: bool = False  # times written as HHMMSS.ffffff
    dose_in_mbq: bool = False
    injection_fields: str = "both"  # "both", "time" (RadiopharmaceuticalStartTime only) or "datetime"
    pixel_mm: float = 4.0728
    slice_mm: float = 3.0
    bed_mm: float = 160.0
    frame_s: int = 150

    @property
    def max_stored(self) -> int:
        return 65535 if self.unsigned else 32767


_SIEMENS = dict(vendor="Siemens", manufacturer="SIEMENS", microseconds=True, pixel_mm=4.0728, slice_mm=3.0,
                bed_mm=162.0, frame_s=150)
_GE = dict(vendor="GE", manufacturer="GE MEDICAL SYSTEMS", series_after_scan=True, ge_private_scan_time=True,
           pixel_mm=3.9063, slice_mm=3.27, bed_mm=157.0, frame_s=120)
_PHILIPS = dict(vendor="Philips", manufacturer="Philips Medical Systems", units="CNTS", unsigned=True, pixel_mm=4.0,
                slice_mm=4.0, bed_mm=180.0, frame_s=90)

SITE_PROFILES: dict[str, ScannerProfile] = {
    "NL01": ScannerProfile("siemens-start", model="Biograph mCT", institution="Amsterdam Cancer Hospital", **_SIEMENS),
    "NL02": ScannerProfile("ge-private-time", model="Discovery MI", institution="Groningen University Hospital", **_GE),
    "NL03": ScannerProfile("philips-cnts-suv", model="Vereos", institution="Nijmegen University Hospital",
                           philips_suv_scale=True, philips_activity_scale=True, **_PHILIPS),
    "NL04": ScannerProfile("siemens-admin-mbq", model="Biograph Vision", institution="Utrecht University Hospital",
                           decay_correction="ADMIN", dose_in_mbq=True, **_SIEMENS),
    "NL05": ScannerProfile("ge-private-time-only-mbq", model="Discovery 710", institution="Maastricht Hospital",
                           injection_fields="time", dose_in_mbq=True, **_GE),
    "NL06": ScannerProfile("siemens-none", model="Biograph mCT Flow", institution="Leiden University Hospital",
                           decay_correction="NONE", **_SIEMENS),
    "NL07": ScannerProfile("ge-private-time", model="Discovery MI", institution="Rotterdam Cancer Institute", **_GE),
    "NL08": ScannerProfile("siemens-start-time-only", model="Biograph Horizon", institution="Zwolle Hospital",
                           injection_fields="time", **_SIEMENS),
    "IT01": ScannerProfile("philips-cnts-suv", model="Ingenuity TF", institution="Ospedale di Genova",
                           philips_suv_scale=True, philips_activity_scale=True, **_PHILIPS),
    "IT02": ScannerProfile("ge-private-time-mbq", model="Discovery 710", institution="Ospedale di Novara",
                           dose_in_mbq=True, **_GE),
    "FR01": ScannerProfile("siemens-admin", model="Biograph Vision", institution="Centre de Lutte contre le Cancer",
                           decay_correction="ADMIN", **_SIEMENS),
    "ES01": ScannerProfile("philips-cnts-activity", model="Vereos", institution="Hospital Universitario",
                           philips_activity_scale=True, **_PHILIPS),
}


def profile_for_site(site: str) -> ScannerProfile:
    """The scanner profile of ``site``; a ValueError naming the site when it is unknown."""
    try:
        return SITE_PROFILES[site]
    except KeyError:
        raise ValueError(f"no scanner profile for site {site!r} (known: {', '.join(sorted(SITE_PROFILES))})") from None


@dataclass(frozen=True)
class Acquisition:
    """Times, dose and scale factors of one PET scan, exactly as written into its headers."""

    profile: ScannerProfile
    tracer: str
    injection: datetime
    dose_text: str  # RadionuclideTotalDose as written (Bq, or MBq at MBq sites)
    scan_start: datetime
    series: datetime
    slice_acquisition: tuple[datetime, ...]  # per slice, in the order of the slices given
    frame_ms: int
    weight_text: str
    midnight: bool
    activity_scale_text: str = ""
    suv_scale_text: str = ""
    write_injection_date: bool = True
    write_injection_time: bool = True
    factors: np.ndarray = field(default_factory=lambda: np.ones(0))

    @property
    def dose_bq(self) -> float:
        value = float(self.dose_text)
        return value * 1e6 if self.profile.dose_in_mbq else value

    @property
    def uptake_s(self) -> float:
        return (self.scan_start - self.injection).total_seconds()


def decay_constant() -> float:
    """λ of F-18 in 1/s."""
    return math.log(2) / F18_HALF_LIFE_S


def mean_count_offset_s(duration_s: float) -> float:
    """Seconds from frame start to the decay-weighted mean count time."""
    lam = decay_constant()
    return math.log(lam * duration_s / (1 - math.exp(-lam * duration_s))) / lam


def _bw_to_suv(weight_g: float, dose_bq: float, injection: datetime, reference: datetime) -> float:
    """SUVbw per Bq/mL for images decay corrected to ``reference``."""
    dt = (reference - injection).total_seconds()
    return weight_g / (dose_bq * math.exp(-decay_constant() * dt))


def suv_factors(acq: Acquisition) -> np.ndarray:
    """Exact per-slice factors from stored×slope to SUVbw, computed from the header values as written."""
    p = acq.profile
    weight_g = float(acq.weight_text) * 1000.0
    n = len(acq.slice_acquisition)
    if p.decay_correction == "START":
        bq = np.full(n, _bw_to_suv(weight_g, acq.dose_bq, acq.injection, acq.scan_start))
    elif p.decay_correction == "ADMIN":
        bq = np.full(n, weight_g / acq.dose_bq)
    else:  # NONE: each frame's mean activity back to administration
        lam, dur = decay_constant(), acq.frame_ms / 1000.0
        frame = lam * dur / (1 - math.exp(-lam * dur))
        bq = np.array([weight_g / acq.dose_bq * frame * math.exp(lam * (t - acq.injection).total_seconds())
                       for t in acq.slice_acquisition])
    if p.units == "BQML":
        return bq
    if p.philips_suv_scale:
        return np.full(n, float(acq.suv_scale_text))
    return bq * float(acq.activity_scale_text)


def _seconds(t: datetime, microseconds: bool, rng: np.random.Generator) -> datetime:
    return t.replace(microsecond=int(rng.integers(0, 1_000_000)) if microseconds else 0)


def plan_scan(profile: ScannerProfile, tracer: str, scan_date: date, weight_kg: float, slice_z: np.ndarray,
              rng: np.random.Generator) -> Acquisition:
    """Injection, dose and per-bed timing of one whole-body scan (beds from the feet up), with its SUV factors."""
    midnight = bool(rng.random() < MIDNIGHT_PROBABILITY)
    uptake = timedelta(seconds=int(rng.normal(62 if tracer == "FDG" else 60, 6) * 60))
    if midnight:
        evening = datetime.combine(scan_date - timedelta(days=1), time(23, 0))
        injection = evening + timedelta(seconds=int(rng.integers(0, 3000)))
        uptake = max(uptake, datetime.combine(scan_date, time(0, 5)) - injection)
    else:
        injection = datetime.combine(scan_date, time(8, 0)) + timedelta(seconds=int(rng.integers(0, 6 * 3600)))
    mbq = 3.0 * weight_kg * rng.uniform(0.9, 1.1) if tracer == "FDG" else rng.uniform(170.0, 230.0)
    mbq = round(mbq, 2)
    dose_text = f"{mbq:.2f}" if profile.dose_in_mbq else f"{int(round(mbq * 1e6))}"
    start = _seconds(injection + uptake, profile.microseconds, rng)
    step = timedelta(seconds=profile.frame_s + 4)
    bed = np.floor((slice_z - slice_z.min()) / profile.bed_mm).astype(int)
    per_slice = tuple(start + int(b) * step for b in bed)
    end = start + int(bed.max() + 1) * step
    series = end + timedelta(seconds=int(rng.integers(120, 600))) if profile.series_after_scan else start
    time_only = midnight or profile.injection_fields == "time"
    acq = Acquisition(
        profile=profile, tracer=tracer, injection=injection, dose_text=dose_text, scan_start=start, series=series,
        slice_acquisition=per_slice, frame_ms=profile.frame_s * 1000, weight_text=f"{weight_kg:.1f}",
        midnight=midnight, write_injection_date=not time_only,
        write_injection_time=time_only or profile.injection_fields == "both",
    )
    if profile.units == "CNTS":
        activity = f"{rng.uniform(1.4, 1.8):.6f}"
        suv_scale = ""
        if profile.philips_suv_scale:
            bw = _bw_to_suv(float(acq.weight_text) * 1000.0, acq.dose_bq, injection, start)
            suv_scale = f"{bw * float(activity):.6e}"
        acq = replace(acq, activity_scale_text=activity, suv_scale_text=suv_scale)
    return replace(acq, factors=suv_factors(acq))
