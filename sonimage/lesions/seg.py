"""DICOM SEG (binary and fractional) onto the image grid it was drawn on.

Each frame is placed by its ImagePositionPatient: the frame must lie on the image's in-plane grid (same rows,
columns, pixel spacing, orientation and in-plane origin) and on one of its slices (nearest slice position within
half the slice spacing). A fractional frame counts a voxel inside when its value is at least half the
MaximumFractionalValue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from sonimage.volumes.volume import MaskError
from sonimage.dicom.rtstruct import slice_depths
from sonimage.volumes.volume import Volume


def _read(path: Path, pixels: bool) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
    except Exception as exc:  # any unreadable file is a mask error naming the file
        raise MaskError(f"{path}: not a readable DICOM file ({exc})") from exc
    if ds.get("Modality") != "SEG":
        raise MaskError(f"{path}: not a DICOM SEG (Modality {ds.get('Modality')!r})")
    return ds


def segments(path: Path) -> dict[int, str]:
    """Segment number → segment label of the SEG at ``path``."""
    return {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in _read(Path(path), False).SegmentSequence}


def _group(ds: pydicom.Dataset, frame: int, sequence: str) -> pydicom.Dataset | None:
    """The item of functional group ``sequence`` for ``frame``: per-frame first, else shared."""
    for groups in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")):
        if groups is None:
            continue
        item = groups[frame] if groups is ds.get("PerFrameFunctionalGroupsSequence") else groups[0]
        if sequence in item:
            return item[sequence].value[0]
    return None


def segment_number(path: Path, segment: str | int) -> int:
    """The number of ``segment`` (a number or a segment label) in the SEG at ``path``."""
    known = segments(path)
    if isinstance(segment, int) or str(segment).isdigit():
        if int(segment) in known:
            return int(segment)
    else:
        hits = [n for n, label in known.items() if label == segment]
        if len(hits) == 1:
            return hits[0]
    listing = ", ".join(f"{n}: {label!r}" for n, label in known.items())
    raise MaskError(f"{path}: no single segment {segment!r} (segments: {listing})")


def read_seg(path: Path, image: Volume, segment: str | int = 1) -> np.ndarray:
    """Boolean (z, y, x) mask of ``segment`` (number or label) of the SEG at ``path`` on ``image``'s grid."""
    path = Path(path)
    number = segment_number(path, segment)
    ds = _read(path, True)
    nz, ny, nx = image.array.shape
    if (int(ds.Rows), int(ds.Columns)) != (ny, nx):
        raise MaskError(f"{path}: frames are {ds.Rows}×{ds.Columns}, the image slices {ny}×{nx}")
    frames = ds.pixel_array.reshape(-1, ny, nx)
    fractional = str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL"
    threshold = 0.5 * float(ds.get("MaximumFractionalValue", 255)) if fractional else 0.5
    axes = np.asarray(image.direction).reshape(3, 3)
    depths = slice_depths(image)
    half = 0.5 * (float(np.median(np.diff(depths))) if nz > 1 else image.spacing[0])
    mask = np.zeros(image.array.shape, dtype=bool)
    for f in range(frames.shape[0]):
        ident = _group(ds, f, "SegmentIdentificationSequence")
        if ident is None or int(ident.ReferencedSegmentNumber) != number:
            continue
        plane = _group(ds, f, "PlanePositionSequence")
        if plane is None:
            raise MaskError(f"{path}: frame {f + 1} has no ImagePositionPatient")
        position = np.asarray(plane.ImagePositionPatient, dtype=np.float64)
        orient = _group(ds, f, "PlaneOrientationSequence")
        if orient is not None and not np.allclose(np.asarray(orient.ImageOrientationPatient, float),
                                                  np.r_[axes[:, 0], axes[:, 1]], atol=1e-4):
            raise MaskError(f"{path}: frame {f + 1} orientation differs from the image")
        measures = _group(ds, f, "PixelMeasuresSequence")
        if measures is not None and not np.allclose(np.asarray(measures.PixelSpacing, float), image.spacing[1:], atol=1e-3):
            raise MaskError(f"{path}: pixel spacing {list(measures.PixelSpacing)} differs from the image {image.spacing[1:]}")
        kji = image.physical_to_index(position[None])[0]
        if not np.allclose(kji[1:], 0.0, atol=0.01):
            raise MaskError(f"{path}: frame {f + 1} is shifted in-plane by {kji[2]:.2f}, {kji[1]:.2f} voxels")
        depth = float(position @ axes[:, 2])
        k = int(np.argmin(np.abs(depths - depth)))
        if abs(depths[k] - depth) > half + 1e-3:
            raise MaskError(f"{path}: frame {f + 1} at {depth:.2f} mm lies on no slice of the image")
        mask[k] |= frames[f] >= threshold
    return mask
