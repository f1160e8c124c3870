"""One patient's lesion reading beyond the reader contour: registration QC, liver reference, FES evaluability and
automatic delineations, with the settings that made them.

- :func:`read_patient_fes`: the FES CT registered rigidly to the FDG CT (:mod:`registration`, quality per
  patient), the automatic PERCIST liver VOI of every scan (:mod:`liver`), the lesion labels carried onto the FES
  scan as they are and read there (:mod:`fes_reading`: evaluability, reason, what the FES call needs).
- :func:`delineation_rows`: every delineation method's MTV/TLG of one FDG lesion (:mod:`delineation`).

SUL is SUV × lean body mass / body weight, lean body mass by Janmahasatian et al. (Clin Pharmacokinet 2005;
PERCIST's choice) by default, James (1976) selectable (``DelineationSettings.lbm_formula``); every row says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sonimage.features.table import LesionFeatures
from sonimage.lesions.delineation import delineate, delineation_row
from sonimage.lesions.fes_reading import patient_rows, read_lesions
from sonimage.lesions.liver import liver_reference
from sonimage.lesions.registration import map_labels, register_rigid
from sonimage.volumes.store import read_volume
from sonimage.volumes.volume import Volume

if TYPE_CHECKING:
    from sonimage.lesions.jobs import PatientScans
    from sonimage.settings import DelineationSettings, Settings

@dataclass(frozen=True)
class LesionReading(LesionFeatures):
    """A lesion's features plus its delineation rows (FDG lesions)."""

    delineations: tuple[dict, ...] = ()


@dataclass(frozen=True)
class PatientFes:
    """What :func:`read_patient_fes` found: registration record, liver rows, lesion reading rows, FES labels."""

    record: dict
    liver: list[dict]
    lesions: list[dict]
    fes_labels: Volume | None


def delineation_rows(image: np.ndarray, contour: np.ndarray, spacing: tuple[float, float, float],
                     settings: DelineationSettings, percist_threshold_suv: float,
                     sul_ratio: float | None) -> list[dict]:
    """One row per delineation method of one lesion (``error`` says why a method gave nothing)."""
    rows = []
    for method in settings.methods:
        try:
            mask, threshold, touches = delineate(image, contour, spacing, method, percist_threshold_suv)
            rows.append({**delineation_row(image, mask, spacing, method, threshold, touches, sul_ratio),
                         "sul_lbm_formula": settings.lbm_formula, "error": ""})
        except ValueError as exc:
            rows.append({"method": method.kind, "label": method.label, "parameters": method.parameters,
                         "mtv_ml": float("nan"), "tlg": float("nan"), "suvmean": float("nan"), "error": str(exc)})
    return rows


def _liver_row(tracer: str, pet: Volume, ct: Volume | None, settings: DelineationSettings) -> dict:
    ratio = pet.attrs.get(settings.sul_ratio_key)
    if ct is None:
        return {"tracer": tracer, "note": "no CT: liver not located", "percist_threshold_suv": float("nan")}
    ref = liver_reference(pet, ct, ratio, settings.lbm_formula)
    return {"tracer": tracer, **ref.record()}


def read_patient_fes(scans: PatientScans, labels: Volume, organs: dict[int, str], out: Path,
                     settings: Settings) -> PatientFes:
    """Registration, liver references and FES reading of one patient (``organs``: lesion label → organ; see the
    module docstring)."""
    out = Path(out)
    fdg_pet = read_volume(out / scans.fdg_pet)
    fdg_ct = read_volume(out / scans.fdg_ct) if scans.fdg_ct else None
    liver = [_liver_row("FDG", fdg_pet, fdg_ct, settings.delineation)]
    labels_present = sorted(int(v) for v in np.unique(labels.array) if v in organs)

    def without(reason: str, note: str, record: dict | None = None) -> PatientFes:
        return PatientFes({**(record or {}), "fes_status": reason, "note": note}, liver,
                          patient_rows(labels_present, organs, reason), None)

    if not scans.fes_pet:
        return without("no FES scan", "no FES PET: FDG features only")
    if not (scans.fdg_ct and scans.fes_ct):
        return without("registration failed", "no FES PET/CT pair: FDG features only")
    fes_ct = read_volume(out / scans.fes_ct)
    try:
        rigid = register_rigid(fdg_ct, fes_ct)
    except RuntimeError as exc:  # SimpleITK's registration errors: the patient keeps its FDG features
        return without("registration failed", f"FES registration failed: {exc}")
    fes_pet = read_volume(out / scans.fes_pet)
    liver.append(_liver_row("FES", fes_pet, fes_ct, settings.delineation))
    record = {**rigid.record(), "min_ncc": settings.fes_reading.min_ncc}
    moved = map_labels(labels, fes_pet, rigid)
    if not rigid.ncc >= settings.fes_reading.min_ncc:
        reason = "registration below quality threshold"
        rows = patient_rows(labels_present, organs, reason)
        record.update(fes_status=reason, note=f"CT NCC {rigid.ncc:.3f} < {settings.fes_reading.min_ncc}")
    else:
        rows = read_lesions(np.asarray(fes_pet.array, np.float64), np.asarray(moved.array), organs,
                            tuple(float(s) for s in fes_pet.spacing), settings.fes_reading, settings.fes.threshold)
        record.update(fes_status="registered", note="")
    fes_volume = Volume(np.asarray(moved.array), moved.spacing, moved.origin, moved.direction,
                        {"quantity": "label", "rois": labels.attrs["rois"], "rigid_parameters":
                         list(rigid.parameters), "rigid_centre": list(rigid.centre), "drawn_on": scans.fdg_pet})
    return PatientFes(record, liver, rows, fes_volume)
