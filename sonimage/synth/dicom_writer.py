"""Write PET and CT series as a scanner would: one file per slice, explicit VR little endian, vendor headers.

PET pixel data are stored per slice as integers with their own RescaleSlope (int16, uint16 for Philips), in
Bq/mL (Units BQML) or counts (CNTS); ``stored × slope × factor`` gives SUVbw back, with ``factor`` from
:func:`sonimage.synth.scanners.suv_factors` (kept in the ground truth). Every UID derives from the seed.
"""

from __future__ import annotations

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

from sonimage.io import write_bytes_atomic
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


class SliceEncoder:
    """Writes the slices of one series: elements that are the same on every slice are encoded once.

    Only the keywords in ``PER_SLICE`` may change between calls of :meth:`save` (explicit VR little endian).
    """

    PER_SLICE = ("SOPInstanceUID", "AcquisitionDate", "AcquisitionTime", "InstanceNumber", "ImagePositionPatient",
                 "SliceLocation", "RescaleSlope", "FrameReferenceTime", "ImageIndex", "PixelData")

    def __init__(self) -> None:
        self._fixed: list[tuple[int, bytes]] | None = None
        self._meta: list[tuple[int, bytes]] = []

    def save(self, ds: Dataset, path: Path) -> None:
        """Write ``ds`` (with file meta) to ``path`` atomically."""
        varying = [ds[k] for k in self.PER_SLICE if k in ds]
        instance = ds.file_meta["MediaStorageSOPInstanceUID"]
        if self._fixed is None:
            tags = {int(e.tag) for e in varying}
            self._fixed = _encoded([e for e in ds if int(e.tag) not in tags])
            # pydicom's file meta once (it adds the version and implementation elements), then per slice only the
            # instance UID and the group length: pydicom's writer cost ~5 ms a file, more than the rest together
            write_file_meta_info(DicomBytesIO(), ds.file_meta, enforce_standard=True)
            self._meta = _encoded([e for e in ds.file_meta if e.tag not in (GROUP_LENGTH, instance.tag)])
        meta = b"".join(chunk for _, chunk in sorted(self._meta + _encoded([instance])))
        body = b"".join(chunk for _, chunk in sorted(self._fixed + _encoded(varying)))
        group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta))
        write_bytes_atomic(path, b"\0" * 128 + b"DICM" + group_length + meta + body)


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


def _place(ds: Dataset, grid: Grid, k: int, h: SeriesHeader) -> None:
    ds.SOPInstanceUID = make_uid(*h.uid_seed, k)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [ds_text(grid.xs[0], 4), ds_text(grid.ys[0], 4), ds_text(grid.zs[k], 4)]
    ds.SliceLocation = ds_text(grid.zs[k], 4)
    ds.SliceThickness = ds_text(grid.spacing[0], 4)
    ds.PixelSpacing = [ds_text(grid.spacing[1], 6), ds_text(grid.spacing[2], 6)]
    ds.Rows, ds.Columns = len(grid.ys), len(grid.xs)


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
    """One PET series (slice k of ``suv`` at ``grid.zs[k]``): its SOPInstanceUIDs in slice order, a slice's header."""
    p = acq.profile
    folder.mkdir(parents=True, exist_ok=True)
    ds = _base(patient, header, p, PET_STORAGE, "PT", acq.series)
    _pet_header(ds, acq, len(grid.zs))
    dtype = np.uint16 if p.unsigned else np.int16
    uids = []
    encoder = SliceEncoder()
    ds.ContentDate, ds.ContentTime = da(acq.series), tm(acq.series, p.microseconds)
    for k in range(len(grid.zs)):
        _place(ds, grid, k, header)
        t = acq.slice_acquisition[k]
        ds.AcquisitionDate, ds.AcquisitionTime = da(t), tm(t, p.microseconds)
        reference = acq.injection if p.decay_correction == "ADMIN" else acq.scan_start
        mean_count_s = (t - reference).total_seconds() + mean_count_offset_s(acq.frame_ms / 1000.0)
        ds.FrameReferenceTime = ds_text(mean_count_s * 1000.0, 2)
        ds.ImageIndex = k + 1
        values = suv[k] / acq.factors[k]
        slope_text, slope = _slope(values, p.max_stored)
        ds.RescaleSlope = slope_text
        ds.PixelData = np.clip(np.round(values / slope), 0, p.max_stored).astype(dtype).tobytes()
        encoder.save(ds, folder / _file_name(header, k))
        uids.append(str(ds.SOPInstanceUID))
    del ds.PixelData
    return uids, ds


def write_ct_series(folder: Path, hu: np.ndarray, grid: Grid, profile: ScannerProfile, when: datetime,
                    patient: Patient, header: SeriesHeader) -> list[str]:
    """One low-dose CT series in HU (stored uint16 with intercept −1024); returns the SOPInstanceUIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = _base(patient, header, profile, CT_STORAGE, "CT", when)
    ds.KVP = "120"
    ds.XRayTubeCurrent = 40
    ds.ConvolutionKernel = "B19f" if profile.vendor == "Siemens" else "STANDARD"
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.AcquisitionDate, ds.AcquisitionTime = da(when), tm(when, profile.microseconds)
    ds.ContentDate, ds.ContentTime = da(when), tm(when, profile.microseconds)
    uids = []
    encoder = SliceEncoder()
    for k in range(len(grid.zs)):
        _place(ds, grid, k, header)
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype(np.uint16).tobytes()
        encoder.save(ds, folder / _file_name(header, k))
        uids.append(str(ds.SOPInstanceUID))
    return uids
