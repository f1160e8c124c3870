"""Lesion masks: RTSTRUCT rasterisation against IBSI's reference masks, SEG written with pydicom, label maps, image kinds."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sonimage.stages.inputs import lesion_names, mask_kind, read_image, read_mask
from sonimage.volumes.volume import MaskError
from sonimage.dicom.rtstruct import fill_even_odd, rasterise, roi_names
from sonimage.volumes.store import write_volume
from sonimage.volumes.volume import Volume
from tests.helpers import require

BORDER_CASES = ("STS_001", "STS_022", "STS_026", "STS_034", "STS_045", "STS_019")


def synthetic_volume() -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.gamma(2.0, 1.0, (6, 10, 12)).astype(np.float32), (3.0, 2.0, 2.5), origin=(-40.0, 12.5, -300.0))


def write_seg(path, image: Volume, masks: dict[int, np.ndarray], fractional: bool = False,
              shift_mm: float = 0.0) -> None:
    """A minimal but valid multi-frame DICOM SEG: one frame per slice and segment that holds voxels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "SEG"
    nz, ny, nx = image.array.shape
    ds.Rows, ds.Columns = ny, nx
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.SegmentationType = "FRACTIONAL" if fractional else "BINARY"
    bits = 8 if fractional else 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    if fractional:
        ds.SegmentationFractionalType, ds.MaximumFractionalValue = "PROBABILITY", 255
    ds.SegmentSequence = [Dataset() for _ in masks]
    for item, number in zip(ds.SegmentSequence, masks):
        item.SegmentNumber, item.SegmentLabel = number, f"lesion {number}"
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    axes = np.asarray(image.direction).reshape(3, 3)
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [float(v) for v in np.r_[axes[:, 0], axes[:, 1]]]
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [image.spacing[1], image.spacing[2]]
    shared.PixelMeasuresSequence[0].SliceThickness = image.spacing[0]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames, groups = [], []
    for number, mask in masks.items():
        for k in np.flatnonzero(mask.reshape(nz, -1).any(axis=1)):
            frame = mask[k].astype(np.float64)
            frames.append(np.rint(frame * 200).astype(np.uint8) if fractional else frame.astype(np.uint8))
            g = Dataset()
            g.SegmentIdentificationSequence = [Dataset()]
            g.SegmentIdentificationSequence[0].ReferencedSegmentNumber = number
            g.PlanePositionSequence = [Dataset()]
            pos = image.index_to_physical(np.array([[k, 0, 0]]))[0] + np.array([shift_mm, 0, 0])
            g.PlanePositionSequence[0].ImagePositionPatient = [float(v) for v in pos]
            groups.append(g)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds.NumberOfFrames = len(frames)
    stack = np.stack(frames)
    ds.PixelData = stack.tobytes() if fractional else pack_bits(stack)
    ds.save_as(path, enforce_file_format=True)


def test_rtstruct_sts001_gtv_mass(shared_data):
    """GTV_Mass on the real GE series: 5095 voxels by voxel centres, SUVmax ≈ 7.91."""
    folder = require(shared_data / "sts-001-fdg-pet")
    image = read_image(folder / "dicom")
    rs = folder / "rtstruct" / "1-1.dcm"
    assert roi_names(rs) == ["GTV_Mass", "GTV_Edema"]
    mask = read_mask(rs, image, "GTV_Mass")
    assert int(mask.sum()) == 5095
    assert float(image.array[mask].max()) == pytest.approx(7.91, abs=0.005)


@pytest.mark.parametrize("case", BORDER_CASES)
def test_rtstruct_matches_ibsi_nifti_masks(shared_data, case):
    """Voxel-for-voxel agreement with IBSI's reference rasterisation (incl. tumours touching the border)."""
    rs = require(shared_data / "ibsi-sts-pet" / case / "PET" / "mask" / "RS.dcm")
    image = read_image(shared_data / "ibsi-sts-pet" / case / "PET" / "image")
    reference = read_mask(require(shared_data / "ibsi-sts-pet-nifti" / case / "PET_mask.nii.gz"), image)
    mask = read_mask(rs, image)
    assert int(mask.sum()) == int(reference.sum()) > 0
    assert np.array_equal(mask, reference)


def test_rtstruct_errors_name_the_file_and_roi(shared_data, tmp_path):
    folder = require(shared_data / "sts-001-fdg-pet")
    image = read_image(folder / "dicom")
    rs = folder / "rtstruct" / "1-1.dcm"
    with pytest.raises(MaskError, match=r"1-1\.dcm: no ROI named 'Liver'.*GTV_Mass"):
        read_mask(rs, image, "Liver")
    with pytest.raises(MaskError, match="2 ROIs"):
        read_mask(rs, image)
    ds = pydicom.dcmread(rs)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    points = np.asarray(contour.ContourData, float).reshape(-1, 3)
    points[:, 2] += 2000.0
    contour.ContourData = [f"{v:.3f}" for v in points.ravel()]
    moved = tmp_path / "moved.dcm"
    ds.save_as(moved)
    with pytest.raises(MaskError, match=r"moved\.dcm: ROI 'GTV_Mass' has a contour at .* on no slice"):
        rasterise(moved, image, "GTV_Mass")


def test_even_odd_fill_cuts_holes_and_uses_voxel_centres():
    outer = np.array([[-0.5, -0.5], [9.5, -0.5], [9.5, 9.5], [-0.5, 9.5]])
    inner = np.array([[2.5, 2.5], [6.5, 2.5], [6.5, 6.5], [2.5, 6.5]])
    filled = fill_even_odd([outer, inner], (12, 12))
    assert filled.sum() == 100 - 16
    assert not filled[3:7, 3:7].any() and filled[0, 0] and filled[9, 9] and not filled[10, 10]
    # a centre exactly on the left/bottom edge is inside, on the right/top edge outside
    edge = fill_even_odd([np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])], (5, 5))
    assert np.argwhere(edge).tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]


@pytest.mark.parametrize("fractional", [False, True])
def test_seg_frames_map_to_slices_by_position(tmp_path, fractional):
    image = synthetic_volume()
    one = np.zeros(image.array.shape, bool)
    one[1:4, 2:6, 3:8] = True
    two = np.zeros(image.array.shape, bool)
    two[4, 5:9, 1:3] = True
    path = tmp_path / "seg.dcm"
    write_seg(path, image, {1: one, 2: two}, fractional=fractional)
    assert mask_kind(path) == "seg"
    assert lesion_names(path) == ["lesion 1", "lesion 2"]
    assert np.array_equal(read_mask(path, image, label=1), one)
    assert np.array_equal(read_mask(path, image, "lesion 2"), two)
    with pytest.raises(MaskError, match="no single segment 'lesion 3'"):
        read_mask(path, image, "lesion 3")


def test_seg_off_the_image_grid_is_an_error(tmp_path):
    image = synthetic_volume()
    mask = np.zeros(image.array.shape, bool)
    mask[2, 3:5, 3:5] = True
    path = tmp_path / "shifted.dcm"
    write_seg(path, image, {1: mask}, shift_mm=1.0)
    with pytest.raises(MaskError, match=r"shifted\.dcm: frame 1 is shifted in-plane"):
        read_mask(path, image)


def test_labelmap_label_and_grid_checks(tmp_path):
    image = synthetic_volume()
    labels = np.zeros(image.array.shape, np.uint8)
    labels[2:4, 2:5, 2:6] = 1
    labels[5, 0:2, 0:2] = 2
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(Volume(labels, image.spacing, image.origin).to_sitk(), str(path))
    assert read_mask(path, image).sum() == 24 and read_mask(path, image, label=2).sum() == 4
    other = Volume(image.array, (3.0, 2.0, 2.0), image.origin)
    with pytest.raises(MaskError, match=r"labels\.nii\.gz: mask is not on the image grid \(spacing"):
        read_mask(path, other)
    shifted = Volume(image.array[:, :, :-1], image.spacing, image.origin)
    with pytest.raises(MaskError, match="shape"):
        read_mask(path, shifted)


def test_read_image_three_kinds_agree(shared_data, tmp_path):
    """The same PET as DICOM folder, NIfTI file and Zarr store reads to the same voxels and geometry."""
    dicom = read_image(require(shared_data / "ibsi-sts-pet" / "STS_002" / "PET" / "image"))
    nifti = tmp_path / "pet.nii.gz"
    sitk.WriteImage(dicom.to_sitk(), str(nifti))
    store = write_volume(dicom, tmp_path / "pet.zarr", "suv")
    for other in (read_image(nifti), read_image(store)):
        assert other.same_grid(dicom)
        np.testing.assert_allclose(other.array, dicom.array)
    reference = read_image(shared_data / "ibsi-sts-pet-nifti" / "STS_002" / "PET_image.nii.gz")
    assert reference.same_grid(dicom)
    np.testing.assert_allclose(reference.array, dicom.array, atol=1e-3)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.nii.gz")
