"""One patient's lesion reading beyond the reader contour: registration QC, liver reference, FES evaluability and
automatic delineations, with the settings that made them.

- :func:`read_patient_fes`: the FES CT registered rigidly to the FDG CT (:mod:`registration`, quality per
  patient), the automatic PERCIST liver VOI of every scan (:mod:`liver`), the lesion labels carried onto the FES
  scan as they are and read there (:mod:`fes_reading`: evaluability, reason, what the FES call needs).

It takes the patient's volumes in memory (:class:`sonimage.lesions.records.PatientVolumes`, read by the extract
stage) and the settings sections it uses; it opens no file.

SUL is SUV × lean body mass / body weight, lean body mass by Janmahasatian et al. (Clin Pharmacokinet 2005;
PERCIST's choice) by default, James (1976) selectable (``DelineationSettings.lbm_formula``); every row says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonimage.lesions.fes_reading import patient_rows, read_lesions
from sonimage.lesions.liver import liver_reference
from sonimage.lesions.records import PatientVolumes
from sonimage.lesions.registration import map_labels, register_rigid
from sonimage.settings import DelineationSettings, FesReadingSettings
from sonimage.volumes.volume import Volume


@dataclass(frozen=True)
class PatientFes:
    """What :func:`read_patient_fes` found: registration record, liver rows, lesion reading rows, FES labels."""

    record: dict
    liver: list[dict]
    lesions: list[dict]
    fes_labels: Volume | None


def _liver_row(tracer: str, pet: Volume, ct: Volume | None, settings: DelineationSettings) -> dict:
    ratio = pet.attrs.get(settings.sul_ratio_key)
    if ct is None:
        return {"tracer": tracer, "note": "no CT: liver not located", "percist_threshold_suv": float("nan")}
    ref = liver_reference(pet, ct, ratio, settings.lbm_formula)
    return {"tracer": tracer, **ref.record()}


def read_patient_fes(volumes: PatientVolumes, organs: dict[int, str], delineation: DelineationSettings,
                     reading: FesReadingSettings, fes_threshold: float) -> PatientFes:
    """Registration, liver references and FES reading of one patient (``organs``: lesion label → organ;
    ``fes_threshold``: the FES positivity threshold, SUVmax; see the module docstring)."""
    labels, fdg_pet, fdg_ct = volumes.labels, volumes.fdg_pet, volumes.fdg_ct
    liver = [_liver_row("FDG", fdg_pet, fdg_ct, delineation)]
    labels_present = sorted(int(v) for v in np.unique(labels.array) if v in organs)

    def without(reason: str, note: str, record: dict | None = None) -> PatientFes:
        return PatientFes({**(record or {}), "fes_status": reason, "note": note}, liver,
                          patient_rows(labels_present, organs, reason), None)

    if volumes.fes_pet is None:
        return without("no FES scan", "no FES PET: FDG features only")
    if fdg_ct is None or volumes.fes_ct is None:
        return without("registration failed", "no FES PET/CT pair: FDG features only")
    fes_ct = volumes.fes_ct
    try:
        rigid = register_rigid(fdg_ct, fes_ct)
    except RuntimeError as exc:  # SimpleITK's registration errors: the patient keeps its FDG features
        return without("registration failed", f"FES registration failed: {exc}")
    fes_pet = volumes.fes_pet
    liver.append(_liver_row("FES", fes_pet, fes_ct, delineation))
    record = {**rigid.record(), "min_ncc": reading.min_ncc}
    moved = map_labels(labels, fes_pet, rigid)
    if not rigid.ncc >= reading.min_ncc:
        reason = "registration below quality threshold"
        rows = patient_rows(labels_present, organs, reason)
        record.update(fes_status=reason, note=f"CT NCC {rigid.ncc:.3f} < {reading.min_ncc}")
    else:
        rows = read_lesions(np.asarray(fes_pet.array, np.float64), np.asarray(moved.array), organs,
                            tuple(float(s) for s in fes_pet.spacing), reading, fes_threshold)
        record.update(fes_status="registered", note="")
    fes_volume = Volume(np.asarray(moved.array), moved.spacing, moved.origin, moved.direction,
                        {"quantity": "label", "rois": labels.attrs["rois"], "rigid_parameters":
                         list(rigid.parameters), "rigid_centre": list(rigid.centre)})
    return PatientFes(record, liver, rows, fes_volume)
