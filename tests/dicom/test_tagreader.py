"""The index's minimal tag reader gives exactly the records of a full pydicom parse, or hands the file to pydicom."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from sonimage.dicom.index import list_files, read_instance, read_instance_pydicom
from sonimage.dicom.pseudonym import Pseudonymiser
from sonimage.dicom.tagreader import read_header
from tests.helpers import require


PSEUDO = Pseudonymiser(b"test-key")


def _same_records(root: Path) -> int:
    """Assert both readers agree on every file below ``root``; the number of files the tag reader handled."""
    fast = 0
    for path in list_files(root):
        assert read_instance(path, root, PSEUDO) == read_instance_pydicom(path, root, PSEUDO), path
        fast += read_header(path) is not None
    return fast


@pytest.mark.parametrize("folder", ["sts-001-fdg-pet", "suv-dro"])
def test_real_and_reference_series_read_alike(shared_data: Path, folder: str) -> None:
    """GE (sts-001) and the SUV DRO's vendor variants (privates, sequences): same records, tag reader used."""
    root = require(shared_data / folder)
    dicom_files = sum(1 for p in list_files(root) if p.suffix == ".dcm")
    assert _same_records(root) >= dicom_files - 17  # at most the RTSTRUCTs go to pydicom


def _pet_slice(syntax: str, undefined_lengths: bool) -> Dataset:
    """A small PET slice with nested sequences (explicit or implicit lengths) and a private block."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.128", ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "PT", "ORIGINAL-ID "
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.AcquisitionDate, ds.AcquisitionTime = "20200101", "101500.25"
    code = Dataset()
    code.CodeMeaning = "18F"
    drug = Dataset()
    drug.RadiopharmaceuticalStartTime, drug.RadionuclideTotalDose = "093000", "3.7e8"
    drug.RadionuclideCodeSequence = Sequence([code])
    ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
    ds.private_block(0x0009, "GEMS_PETD_01", create=True).add_new(0x0D, "DT", "20200101101000")
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-10.0, -12.5, 30.25], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.Rows, ds.Columns = [2.0, 2.0], 4, 3
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept, ds.FrameReferenceTime, ds.ActualFrameDuration = "0.5", "0", "0", "180000"
    ds.PixelData = np.arange(12, dtype="<i2").tobytes()
    if undefined_lengths:
        for seq in (ds.RadiopharmaceuticalInformationSequence, drug.RadionuclideCodeSequence):
            seq.is_undefined_length = True
            for item in seq:
                item.is_undefined_length_sequence_item = True
    return ds


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
@pytest.mark.parametrize("undefined_lengths", [False, True])
def test_sequences_privates_and_both_vr_encodings(tmp_path: Path, syntax: str, undefined_lengths: bool) -> None:
    ds = _pet_slice(syntax, undefined_lengths)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    assert read_header(tmp_path / "a.dcm") is not None
    assert _same_records(tmp_path) == 1
    record = read_instance(tmp_path / "a.dcm", tmp_path, PSEUDO)
    offset, length, dtype = record.pixels
    pixels = np.fromfile(tmp_path / "a.dcm", dtype=dtype, count=12, offset=offset)
    assert (length, pixels.tolist()) == (24, list(range(12)))
    assert "ORIGINAL-ID" not in repr(record) and record.timing.slope == 0.5


def _variants(tmp_path: Path) -> dict[str, Path]:
    """Files the tag reader must leave to pydicom, each written into its own folder."""
    base = _pet_slice(ExplicitVRLittleEndian, True)
    out = {}

    def save(name: str, ds: Dataset, **kwargs) -> None:
        (tmp_path / name).mkdir()
        ds.save_as(tmp_path / name / "x.dcm", **kwargs)
        out[name] = tmp_path / name / "x.dcm"

    big = copy.deepcopy(base)
    big.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    big.PixelData = np.arange(12, dtype=">i2").tobytes()
    save("big-endian", big, enforce_file_format=True)
    latin = copy.deepcopy(base)
    latin.SpecificCharacterSet, latin.PatientID = "ISO_IR 100", "Müller"
    save("latin-1", latin, enforce_file_format=True)
    multi = copy.deepcopy(base)
    multi.add_new(0x00281053, "DS", ["1", "2"])
    save("multi-valued-slope", multi, enforce_file_format=True)
    rtstruct = copy.deepcopy(base)
    rtstruct.Modality = "RTSTRUCT"
    save("rtstruct", rtstruct, enforce_file_format=True)
    save("no-preamble", copy.deepcopy(base), enforce_file_format=True)
    (tmp_path / "no-preamble" / "x.dcm").write_bytes((tmp_path / "no-preamble" / "x.dcm").read_bytes()[132:])
    save("truncated", copy.deepcopy(base), enforce_file_format=True)
    (tmp_path / "truncated" / "x.dcm").write_bytes((tmp_path / "truncated" / "x.dcm").read_bytes()[:300])
    return out


def test_everything_else_goes_to_pydicom_with_the_same_result(tmp_path: Path) -> None:
    for name, path in _variants(tmp_path).items():
        assert read_header(path) is None or name == "rtstruct", name
        assert _same_records(path.parent) == (name == "rtstruct"), name
