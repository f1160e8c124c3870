"""Lesion contours as a reader delivers them: a DICOM RTSTRUCT on the FDG PET, one ROI per lesion.

Contour rule: on every PET slice a lesion touches, ``skimage.measure.find_contours`` traces the lesion's voxel
mask at level 0.5 (mask padded by one voxel, so contours close). Each polygon vertex lies halfway between a voxel
centre inside the lesion and one outside, so rasterising the CLOSED_PLANAR polygons by voxel centres
(point in polygon, even-odd over a slice's polygons) gives back exactly the reader's mask voxels (which differ from
the true lesion: :func:`sonimage.synth.generate.reader_contours`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from skimage.measure import find_contours

from sonimage.synth.anatomy import Grid
from sonimage.synth.dicom_writer import PET_STORAGE, Patient, SeriesHeader, da, ds_text, make_uid, save_atomic, tm
from sonimage.synth.render import LesionMask

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
COLOURS = ([230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180])


def slice_polygons(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (N, 2) as (row, column) voxel indices around the ``True`` voxels of one slice."""
    padded = np.pad(mask2d.astype(np.float32), 1)
    return [c[:-1] - 1.0 for c in find_contours(padded, 0.5)]


def _image_ref(sop_uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = PET_STORAGE
    ref.ReferencedSOPInstanceUID = sop_uid
    return ref


def _contours(mask: LesionMask, grid: Grid, pet_uids: list[str]) -> list[Dataset]:
    out = []
    z0, y0, x0 = (s.start for s in mask.box)
    dy, dx = grid.spacing[1], grid.spacing[2]
    for kk in range(mask.mask.shape[0]):
        k = z0 + kk
        for poly in slice_polygons(mask.mask[kk]):
            rows, cols = poly[:, 0] + y0, poly[:, 1] + x0
            xyz = np.column_stack([grid.xs[0] + cols * dx, grid.ys[0] + rows * dy, np.full(len(rows), grid.zs[k])])
            item = Dataset()
            item.ContourImageSequence = Sequence([_image_ref(pet_uids[k])])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(xyz)
            item.ContourData = [ds_text(v, 4) for v in xyz.ravel()]
            out.append(item)
    return out


def write_rtstruct(path: Path, names: list[str], masks: list[LesionMask], grid: Grid, pet: Dataset,
                   pet_uids: list[str], patient: Patient, header: SeriesHeader, when: datetime,
                   numbers: list[int] | None = None) -> str:
    """The RTSTRUCT file at ``path`` for lesion ``masks`` on the PET series ``pet`` (a slice's dataset as template).

    ``numbers``: the ROI numbers (the lesion numbers of the record form; 1..n when not given)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    ds.file_meta.TransferSyntaxUID = pet.file_meta.TransferSyntaxUID
    for keyword in ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "Manufacturer",
                    "InstitutionName", "ReferringPhysicianName", "StudyDescription", "PatientName", "PatientID",
                    "PatientBirthDate", "PatientSex", "PatientAge", "StudyInstanceUID", "StudyID"):
        setattr(ds, keyword, pet.get(keyword))
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = make_uid(*header.uid_seed, "rtstruct")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = header.series_uid
    ds.SeriesNumber = header.series_number
    ds.SeriesDescription = header.series_description
    ds.SeriesDate, ds.SeriesTime = da(when), tm(when)
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "LESIONS"
    ds.StructureSetName = "Lesions (reader)"
    ds.StructureSetDate, ds.StructureSetTime = da(when), tm(when)

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = str(pet.SeriesInstanceUID)
    series_ref.ContourImageSequence = Sequence([_image_ref(u) for u in pet_uids])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, customary)
    study_ref.ReferencedSOPInstanceUID = str(pet.StudyInstanceUID)
    study_ref.RTReferencedSeriesSequence = Sequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = str(pet.FrameOfReferenceUID)
    frame_ref.RTReferencedStudySequence = Sequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_ref])

    rois, contours, observations = [], [], []
    for number, name, mask in zip(numbers or range(1, len(names) + 1), names, masks):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = str(pet.FrameOfReferenceUID)
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        con = Dataset()
        con.ROIDisplayColor = COLOURS[(number - 1) % len(COLOURS)]
        con.ReferencedROINumber = number
        con.ContourSequence = Sequence(_contours(mask, grid, pet_uids))
        contours.append(con)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "GTV"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(ds, path)
    return str(ds.SOPInstanceUID)
