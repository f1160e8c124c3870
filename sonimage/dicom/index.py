"""Index a DICOM tree from headers alone: one record per readable file, one rejection per unreadable one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from sonimage.dicom.petheader import SliceTiming, slice_timing
from sonimage.dicom.pseudonym import Pseudonymiser

RAW_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # implicit and explicit VR little endian


@dataclass(frozen=True)
class Instance:
    """Header facts of one DICOM file; identifiers and UIDs are pseudonymised when the index was given a key.

    ``path`` (relative to the DICOM root) is for reading the file; ``shown`` is the same path for messages and
    tables, with any folder named after the patient's original ID replaced by the pseudonym.
    """

    path: str
    shown: str
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
    timing: SliceTiming
    pixels: tuple[int, int, str] | None  # (byte offset, length, numpy dtype) of raw little-endian pixel data
    referenced_series: str = ""  # for RTSTRUCT and SEG: the image series they were drawn on


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
        ds = pydicom.dcmread(path, defer_size=4096)  # large values (pixel data) are skipped, their offsets kept
    except InvalidDicomError:
        return Rejected(rel, "not a DICOM file (no DICM preamble)")
    except Exception as exc:  # pydicom raises many types on damaged files
        return Rejected(rel, f"unreadable DICOM header: {type(exc).__name__}: {exc}")
    if "SOPInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
        return Rejected(rel, "DICOM file without SOPInstanceUID/SeriesInstanceUID (not an image object, e.g. DICOMDIR)")
    uid = pseudo.uid if pseudo else str
    patient = str(ds.get("PatientID", "")).strip()
    shown = "/".join(pseudo.patient(patient) if pseudo and patient and part == patient else part
                     for part in rel.split("/"))
    return Instance(
        path=rel,
        shown=shown,
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
        timing=slice_timing(ds),
        pixels=_raw_pixels(ds),
        referenced_series=uid(_referenced_series(ds)) if ds.get("Modality") in ("RTSTRUCT", "SEG") else "",
    )


def _referenced_series(ds: pydicom.Dataset) -> str:
    """The SeriesInstanceUID an RTSTRUCT or SEG refers to ('' when it names none)."""
    try:
        if ds.Modality == "RTSTRUCT":
            frame = ds.ReferencedFrameOfReferenceSequence[0]
            return str(frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID)
        return str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    except (AttributeError, IndexError):
        return ""


def _raw_pixels(ds: pydicom.Dataset) -> tuple[int, int, str] | None:
    """Where uncompressed pixel data sits in the file, so it can be read without parsing the file again."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    raw = ds.get_item("PixelData", keep_deferred=True) if "PixelData" in ds else None
    if syntax not in RAW_SYNTAXES or raw is None or getattr(raw, "value_tell", None) is None:
        return None
    bits, signed = int(ds.get("BitsAllocated", 16)), int(ds.get("PixelRepresentation", 0))
    if bits not in (8, 16, 32) or int(ds.get("SamplesPerPixel", 1)) != 1:
        return None
    return int(raw.value_tell), int(raw.length), f"<{'i' if signed else 'u'}{bits // 8}"


def index_files(paths: list[Path], root: Path, pseudo: Pseudonymiser | None = None
                ) -> tuple[list[Instance], list[Rejected]]:
    """Header records for ``paths`` (pseudonymised with ``pseudo``) and the files rejected on the way."""
    good: list[Instance] = []
    bad: list[Rejected] = []
    for p in paths:
        rec = read_instance(p, root, pseudo)
        (good if isinstance(rec, Instance) else bad).append(rec)  # type: ignore[arg-type]
    return good, bad
