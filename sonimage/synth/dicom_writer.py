"""Write PET and CT series as a scanner would: one file per slice, explicit VR little endian, vendor headers.

PET pixel data are stored per slice as integers with their own RescaleSlope (int16, uint16 for Philips), in
Bq/mL (Units BQML) or counts (CNTS); ``stored × slope × factor`` gives SUVbw back, with ``factor`` from
:func:`sonimage.synth.scanners.suv_factors` (kept in the ground truth). Every UID derives from the seed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sonimage.io import write_bytes_atomic, write_directory_atomic
from sonimage.synth.anatomy import Grid
from sonimage.synth.scanners import (F18_HALF_LIFE_S, GE_CREATOR, PHILIPS_CREATOR, Acquisition, ScannerProfile,
                                     mean_count_offset_s)

PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RADIOPHARMACEUTICAL = {"FDG": "Fluorodeoxyglucose", "FES": "Fluoroestradiol"}


def make_uid(*parts: object) -> str:
    """A UID derived deterministically from ``parts`` (seed, cohort, subject, ...)."""
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def da(d: date | datetime) -> str:
    """DICOM DA."""
    return d.strftime("%Y%m%d")


def tm(t: datetime, microseconds: bool = False) -> str:
    """DICOM TM, with six decimals where the scanner writes them."""
    return t.strftime("%H%M%S.%f" if microseconds else "%H%M%S")


def ds_text(value: float, digits: int = 6) -> str:
    """A DS value of at most 16 characters."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


@dataclass(frozen=True)
class Patient:
    """Identifying and physical fields of a patient as the hospital's PACS holds them."""

    name: str
    patient_id: str
    birth_date: date
    sex: str
    age_years: int
    weight_text: str
    height_m_text: str


@dataclass(frozen=True)
class SeriesHeader:
    """Study- and series-level identity of one series."""

    study_uid: str
    series_uid: str
    frame_uid: str
    accession: str
    study_datetime: datetime
    study_description: str
    series_number: int
    series_description: str
    uid_seed: tuple[str, ...]  # entropy for the SOPInstanceUIDs


def save_atomic(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM file: to a temporary file in the same folder, then renamed into place."""
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    write_bytes_atomic(path, buf.getvalue())


def _encoded(elements: list[DataElement]) -> list[tuple[int, bytes]]:
    """Each element's explicit VR little endian encoding, keyed by its tag."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    ends = []
    for elem in elements:
        write_data_element(fp, elem)
        ends.append(fp.tell())
    data = fp.getvalue()
    return [(int(e.tag), data[a:b]) for e, a, b in zip(elements, [0, *ends[:-1]], ends)]


GROUP_LENGTH = 0x00020000  # (0002,0000) FileMetaInformationGroupLength
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"}  # 4-byte length (PS3.5 7.1.2)
SliceValue = str | list[str] | int | bytes


def encode_element(tag: int, vr: str, value: SliceValue) -> bytes:
    """One element in explicit VR little endian (PS3.5 7.1.2) as pydicom writes it: text values joined by
    backslashes and padded to even length (UI with NUL, others with a space); US as an unsigned short; OB/OW as
    given."""
    if vr == "US":
        data = struct.pack("<H", value)
    elif isinstance(value, bytes):
        data = value + b"\0" * (len(value) % 2)
    else:
        text = ("\\".join(value) if isinstance(value, list) else str(value)).encode("ascii")
        data = text + (b"\0" if vr == "UI" else b" ") * (len(text) % 2)
    head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode())
    length = struct.pack("<HI", 0, len(data)) if vr in LONG_VRS else struct.pack("<H", len(data))
    return head + length + data


class SliceEncoder:
    """The files of one series: the header of ``ds`` (with its file meta) is encoded once by pydicom; per slice
    only the elements named ``varying`` are encoded (:func:`encode_element`) and put in their place.

    ``ds`` holds every element, the varying ones with any value of their VR (the first slice's); the files are
    those ``ds.save_as(..., enforce_file_format=True)`` writes for each slice's values."""

    def __init__(self, ds: Dataset, varying: tuple[str, ...]) -> None:
        write_file_meta_info(DicomBytesIO(), ds.file_meta, enforce_standard=True)  # adds version, implementation
        self._vrs = {k: (int(ds[k].tag), ds[k].VR) for k in varying}
        instance = ds.file_meta["MediaStorageSOPInstanceUID"]
        self._instance_tag = int(instance.tag)
        meta = _encoded([e for e in ds.file_meta if e.tag not in (GROUP_LENGTH, instance.tag)])
        self._meta = self._split(meta, {self._instance_tag})
        tags = {tag for tag, _ in self._vrs.values()}
        self._body = self._split(_encoded([e for e in ds if int(e.tag) not in tags]), tags)

    @staticmethod
    def _split(fixed: list[tuple[int, bytes]], slots: set[int]) -> list[bytes | int]:
        """Fixed chunks merged (in tag order) with the tags of the ``slots`` filled per slice."""
        out: list[bytes | int] = []
        for tag, chunk in sorted(fixed + [(t, b"") for t in slots]):
            if tag in slots:
                out.append(tag)
            elif out and isinstance(out[-1], bytes):
                out[-1] += chunk
            else:
                out.append(chunk)
        return out

    def file(self, values: dict[str, SliceValue]) -> bytes:
        """The bytes of one slice's file: ``values`` by keyword for every varying element (SOPInstanceUID too)."""
        by_tag = {tag: encode_element(tag, vr, values[k]) for k, (tag, vr) in self._vrs.items()}
        uid = encode_element(self._instance_tag, "UI", values["SOPInstanceUID"])
        meta = b"".join(uid if isinstance(c, int) else c for c in self._meta)
        body = b"".join(by_tag[c] if isinstance(c, int) else c for c in self._body)
        group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta))
        return b"\0" * 128 + b"DICM" + group_length + meta + body


def _base(p: Patient, h: SeriesHeader, profile: ScannerProfile, sop_class: str, modality: str,
          when: datetime) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if modality == "PT" else ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.StudyDate, ds.StudyTime = da(h.study_datetime), tm(h.study_datetime)
    ds.SeriesDate, ds.SeriesTime = da(when), tm(when, profile.microseconds)
    ds.AccessionNumber = h.accession
    ds.Modality = modality
    ds.Manufacturer = profile.manufacturer
    ds.InstitutionName = profile.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = f"{profile.vendor.upper()}PETCT1"
    ds.StudyDescription = h.study_description
    ds.SeriesDescription = h.series_description
    ds.ManufacturerModelName = profile.model
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = da(p.birth_date)
    ds.PatientSex = p.sex
    ds.PatientAge = f"{p.age_years:03d}Y"
    ds.PatientSize = p.height_m_text
    ds.PatientWeight = p.weight_text
    ds.BodyPartExamined = "WHOLEBODY"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = h.study_uid
    ds.SeriesInstanceUID = h.series_uid
    ds.StudyID = h.accession[-6:]
    ds.SeriesNumber = h.series_number
    ds.FrameOfReferenceUID = h.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.LossyImageCompression = "00"
    ds.add_new("PixelData", "OW", b"")  # 16-bit pixels; the VR stays when the value changes per slice
    return ds


def _geometry(ds: Dataset, grid: Grid) -> None:
    ds.SliceThickness = ds_text(grid.spacing[0], 4)
    ds.PixelSpacing = [ds_text(grid.spacing[1], 6), ds_text(grid.spacing[2], 6)]
    ds.Rows, ds.Columns = len(grid.ys), len(grid.xs)


def _place(grid: Grid, k: int, h: SeriesHeader) -> dict[str, SliceValue]:
    """Slice k's identity and position (the varying elements every series has)."""
    return {"SOPInstanceUID": make_uid(*h.uid_seed, k), "InstanceNumber": k + 1,
            "ImagePositionPatient": [ds_text(grid.xs[0], 4), ds_text(grid.ys[0], 4), ds_text(grid.zs[k], 4)],
            "SliceLocation": ds_text(grid.zs[k], 4)}


def _write_series(folder: Path, ds: Dataset, slices: list[dict[str, SliceValue]], h: SeriesHeader) -> list[str]:
    """The files of one series (``ds`` as header, each slice's varying values), written into a temporary folder
    that then replaces ``folder`` (sonimage.io: the series appears whole or not at all); its SOPInstanceUIDs."""
    for keyword, value in slices[0].items():  # every varying element present, with its VR
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    encoder = SliceEncoder(ds, tuple(slices[0]))

    def write(tmp: Path) -> None:
        tmp.mkdir()
        for k, values in enumerate(slices):
            _write_file(os.path.join(tmp, _file_name(h, k)), encoder.file(values))
    write_directory_atomic(folder, write)
    return [str(v["SOPInstanceUID"]) for v in slices]


def _write_file(path: str, data: bytes) -> None:
    """``data`` as the new file ``path`` (in a series' temporary folder) with three system calls: what
    ``Path.write_bytes`` does without its buffered file object (~20 us a file, ~670 files a patient)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _file_name(h: SeriesHeader, k: int) -> str:
    return f"IM-{h.series_number:04d}-{k + 1:04d}.dcm"


def _radiopharmaceutical(acq: Acquisition) -> Dataset:
    rp = Dataset()
    rp.Radiopharmaceutical = RADIOPHARMACEUTICAL[acq.tracer]
    if acq.write_injection_time:
        rp.RadiopharmaceuticalStartTime = tm(acq.injection)
    if acq.write_injection_date:
        rp.RadiopharmaceuticalStartDateTime = da(acq.injection) + tm(acq.injection)
    rp.RadionuclideTotalDose = acq.dose_text
    rp.RadionuclideHalfLife = ds_text(F18_HALF_LIFE_S, 1)
    rp.RadionuclidePositronFraction = "0.9673"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-111A1", "SRT", "^18^Fluorine"
    rp.RadionuclideCodeSequence = Sequence([code])
    return rp


def _pet_header(ds: Dataset, acq: Acquisition, n_slices: int) -> None:
    p = acq.profile
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.Units = p.units
    ds.CountsSource = "EMISSION"
    ds.DecayCorrection = p.decay_correction
    corrected = ["NORM", "DTIM", "ATTN", "SCAT", "RAN"] + (["DECY"] if p.decay_correction != "NONE" else [])
    ds.CorrectedImage = corrected
    ds.RandomsCorrectionMethod = "DLYD"
    ds.AttenuationCorrectionMethod = "CT-based"
    ds.ReconstructionMethod = "OSEM 3i21s" if p.vendor == "Siemens" else "OSEM VPFX"
    ds.NumberOfSlices = n_slices
    ds.NumberOfTimeSlices = 1
    ds.ActualFrameDuration = acq.frame_ms
    ds.RadiopharmaceuticalInformationSequence = Sequence([_radiopharmaceutical(acq)])
    ds.PixelRepresentation = 0 if p.unsigned else 1
    ds.RescaleIntercept = "0"
    ds.RescaleType = p.units
    if p.ge_private_scan_time:
        ds.private_block(0x0009, GE_CREATOR, create=True).add_new(0x0D, "DT", da(acq.scan_start) + tm(acq.scan_start))
    if p.units == "CNTS":
        block = ds.private_block(0x7053, PHILIPS_CREATOR, create=True)
        if acq.suv_scale_text:
            block.add_new(0x00, "DS", acq.suv_scale_text)
        block.add_new(0x09, "DS", acq.activity_scale_text)


def _slope(values: np.ndarray, max_stored: int) -> tuple[str, float]:
    top = float(values.max())
    slope = top / max_stored * (1 + 1e-9) if top > 0 else 1.0
    text = f"{slope:.9e}"
    return text, float(text)


def write_pet_series(folder: Path, suv: np.ndarray, grid: Grid, acq: Acquisition, patient: Patient,
                     header: SeriesHeader) -> tuple[list[str], Dataset]:
    """One PET series (slice k of ``suv`` at ``grid.zs[k]``) as the folder ``folder`` (replaced whole): its
    SOPInstanceUIDs in slice order and the series' header (a dataset without pixel data)."""
    p = acq.profile
    ds = _base(patient, header, p, PET_STORAGE, "PT", acq.series)
    _pet_header(ds, acq, len(grid.zs))
    _geometry(ds, grid)
    ds.ContentDate, ds.ContentTime = da(acq.series), tm(acq.series, p.microseconds)
    dtype = np.uint16 if p.unsigned else np.int16
    values = suv / np.asarray(acq.factors, dtype=np.float64)[:, None, None]
    slopes = [_slope(v, p.max_stored) for v in values]
    stored = np.clip(np.round(values / np.array([s for _, s in slopes])[:, None, None]), 0, p.max_stored).astype(dtype)
    reference = acq.injection if p.decay_correction == "ADMIN" else acq.scan_start
    offset_s = mean_count_offset_s(acq.frame_ms / 1000.0)
    slices = []
    for k in range(len(grid.zs)):
        t = acq.slice_acquisition[k]
        slices.append({**_place(grid, k, header), "AcquisitionDate": da(t), "AcquisitionTime": tm(t, p.microseconds),
                       "FrameReferenceTime": ds_text(((t - reference).total_seconds() + offset_s) * 1000.0, 2),
                       "ImageIndex": k + 1, "RescaleSlope": slopes[k][0], "PixelData": stored[k].tobytes()})
    uids = _write_series(folder, ds, slices, header)
    del ds.PixelData
    return uids, ds


def write_ct_series(folder: Path, hu: np.ndarray, grid: Grid, profile: ScannerProfile, when: datetime,
                    patient: Patient, header: SeriesHeader) -> list[str]:
    """One low-dose CT series in HU (stored uint16 with intercept −1024) as the folder ``folder`` (replaced whole);
    returns the SOPInstanceUIDs."""
    ds = _base(patient, header, profile, CT_STORAGE, "CT", when)
    _geometry(ds, grid)
    ds.KVP = "120"
    ds.XRayTubeCurrent = 40
    ds.ConvolutionKernel = "B19f" if profile.vendor == "Siemens" else "STANDARD"
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.AcquisitionDate, ds.AcquisitionTime = da(when), tm(when, profile.microseconds)
    ds.ContentDate, ds.ContentTime = da(when), tm(when, profile.microseconds)
    stored = (hu.astype(np.int32) + 1024).astype(np.uint16)
    return _write_series(folder, ds, [{**_place(grid, k, header), "PixelData": stored[k].tobytes()}
                                      for k in range(len(grid.zs))], header)
