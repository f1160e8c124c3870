"""Index a DICOM tree from headers alone: one record per readable file, one rejection per unreadable one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from sonimage.dicom.pseudonym import Pseudonymiser


@dataclass(frozen=True)
class Instance:
    """Header facts of one DICOM file; identifiers and UIDs are pseudonymised when the index was given a key."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    patient_id: str
    modality: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    frames: int
    size: int


@dataclass(frozen=True)
class Rejected:
    """A file, or a whole series of files, that cannot be used, and why."""

    path: str
    reason: str
    n_files: int = 1
    series_uid: str = ""


def list_files(root: Path) -> list[Path]:
    """Every regular file below ``root`` (hidden ones too: nothing is skipped unseen), sorted."""
    out = [Path(d) / f for d, _, files in os.walk(root) for f in files]
    return sorted(p for p in out if p.is_file())


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n else None


def read_instance(path: Path, root: Path, pseudo: Pseudonymiser | None = None) -> Instance | Rejected:
    """Header record of ``path``; a :class:`Rejected` naming the file (relative to ``root``) when it is not usable DICOM.

    With ``pseudo``, the patient ID and every UID are replaced by pseudonyms before the record leaves this function.
    """
    rel = str(path.relative_to(root))
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return Rejected(rel, "not a DICOM file (no DICM preamble)")
    except Exception as exc:  # pydicom raises many types on damaged files
        return Rejected(rel, f"unreadable DICOM header: {type(exc).__name__}: {exc}")
    if "SOPInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
        return Rejected(rel, "DICOM file without SOPInstanceUID/SeriesInstanceUID (not an image object, e.g. DICOMDIR)")
    uid = pseudo.uid if pseudo else str
    return Instance(
        path=rel,
        sop_instance_uid=uid(str(ds.SOPInstanceUID)),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        series_uid=uid(str(ds.SeriesInstanceUID)),
        study_uid=uid(str(ds.get("StudyInstanceUID", ""))),
        frame_of_reference_uid=uid(str(ds.get("FrameOfReferenceUID", ""))),
        patient_id=(pseudo.patient if pseudo else str)(str(ds.get("PatientID", ""))),
        modality=str(ds.get("Modality", "")).upper(),
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        pixel_spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        size=path.stat().st_size,
    )


def index_files(paths: list[Path], root: Path, pseudo: Pseudonymiser | None = None
                ) -> tuple[list[Instance], list[Rejected]]:
    """Header records for ``paths`` (pseudonymised with ``pseudo``) and the files rejected on the way."""
    good: list[Instance] = []
    bad: list[Rejected] = []
    for p in paths:
        rec = read_instance(p, root, pseudo)
        (good if isinstance(rec, Instance) else bad).append(rec)  # type: ignore[arg-type]
    return good, bad
