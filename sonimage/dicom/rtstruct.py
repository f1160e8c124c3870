"""DICOM RTSTRUCT: list the ROIs, rasterise one ROI's closed planar contours (or all ROIs, as one label map) onto
an image grid.

Rasterisation rule (documented, deterministic):

- every contour point is mapped to continuous voxel indices of the image (LPS → index through the image's origin,
  spacing and direction); a contour must be parallel to the image slices (its points within 1 % of a slice
  spacing of one plane) and is assigned to the slice whose position (the true slice positions when the image
  carries them, so bed-junction jitter is honoured) is nearest, within half the slice spacing;
- within a slice, a voxel is inside when its centre is inside by the even–odd rule over all contours of the ROI
  on that slice, so a contour inside another one cuts a hole; a centre exactly on an edge counts as inside on the
  left and bottom edges and outside on the right and top edges (half-open scanline test);
- parts of contours outside the image plane are clipped; contours on slices the image does not have are an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from sonimage.volumes.volume import MaskError, Volume

CONTOUR_DATA = 0x30060050


def _read(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # any unreadable file is a mask error naming the file
        raise MaskError(f"{path}: not a readable DICOM file ({exc})") from exc
    if ds.get("Modality") != "RTSTRUCT":
        raise MaskError(f"{path}: not an RTSTRUCT (Modality {ds.get('Modality')!r})")
    return ds


def roi_names(path: Path) -> list[str]:
    """Names of the ROIs in the RTSTRUCT at ``path``, in file order."""
    return _roi_names(_read(Path(path)))


def _roi_names(ds: pydicom.Dataset) -> list[str]:
    return [str(r.ROIName) for r in ds.get("StructureSetROISequence", [])]


def _points(contour: pydicom.Dataset) -> np.ndarray:
    """ContourData as (N, 3) floats, parsed from the raw bytes (pydicom's per-value DS objects are slow)."""
    raw = contour.get_item(CONTOUR_DATA)
    value = raw.value if raw is not None else None
    if isinstance(value, bytes):
        return np.array(value.decode("ascii").strip(" \x00").split("\\"), dtype=np.float64).reshape(-1, 3)
    return np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)


def _contours(ds: pydicom.Dataset, path: Path, roi: str) -> list[np.ndarray]:
    """The (N, 3) LPS point arrays of the closed planar contours of ``roi``."""
    numbers = [int(r.ROINumber) for r in ds.get("StructureSetROISequence", []) if str(r.ROIName) == roi]
    if not numbers:
        names = ", ".join(repr(str(r.ROIName)) for r in ds.get("StructureSetROISequence", []))
        raise MaskError(f"{path}: no ROI named {roi!r} (ROIs: {names or 'none'})")
    contours = []
    for rc in ds.get("ROIContourSequence", []):
        if int(rc.ReferencedROINumber) not in numbers:
            continue
        for c in rc.get("ContourSequence", []):
            kind = str(c.get("ContourGeometricType", "CLOSED_PLANAR"))
            if kind == "POINT":
                continue
            if kind != "CLOSED_PLANAR":
                raise MaskError(f"{path}: ROI {roi!r} has a {kind} contour; only CLOSED_PLANAR can be filled")
            contours.append(_points(c))
    if not contours:
        raise MaskError(f"{path}: ROI {roi!r} has no contours")
    return contours


def slice_depths(image: Volume) -> np.ndarray:
    """Position of every slice along the slice normal (mm): the origin's, plus the true slice offsets where the
    image carries them (``slice_positions_mm``, absolute or from 0), else multiples of the slice spacing."""
    start = float(np.dot(image.origin, np.asarray(image.direction).reshape(3, 3)[:, 2]))
    positions = image.attrs.get("slice_positions_mm")
    if positions is not None and len(positions) == image.array.shape[0]:
        return start + np.asarray(positions, dtype=np.float64) - float(positions[0])
    return start + np.arange(image.array.shape[0]) * image.spacing[0]


def fill_even_odd(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Voxel-centre even–odd fill of polygons given as (N, 2) arrays of (column i, row j) continuous indices."""
    ny, nx = shape
    toggles = np.zeros((ny, nx + 1), dtype=np.int64)
    for poly in polygons:
        x0, y0 = poly[:, 0], poly[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        first, stop = np.ceil(lo).astype(np.int64), np.ceil(hi).astype(np.int64)  # rows with lo <= j < hi
        counts = np.clip(stop - first, 0, None)
        edge = np.repeat(np.arange(x0.size), counts)
        rows = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        xs = x0[edge] + (rows - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
        keep = (rows >= 0) & (rows < ny)
        cols = np.clip(np.ceil(xs[keep]).astype(np.int64), 0, nx)
        np.add.at(toggles, (rows[keep], cols), 1)
    return (np.cumsum(toggles, axis=1)[:, :nx] % 2).astype(bool)


def rasterise(path: Path, image: Volume, roi: str, ds: pydicom.Dataset | None = None) -> np.ndarray:
    """Boolean (z, y, x) mask of ROI ``roi`` of the RTSTRUCT at ``path`` on ``image``'s grid (rule: module doc);
    ``ds``: the file already read (one read for all its ROIs)."""
    path = Path(path)
    contours = _contours(_read(path) if ds is None else ds, path, roi)
    depths = slice_depths(image)
    normal = np.asarray(image.direction).reshape(3, 3)[:, 2]
    steps = np.diff(depths)
    half = 0.5 * (float(np.median(steps)) if steps.size else image.spacing[0])
    by_slice: dict[int, list[np.ndarray]] = {}
    for points in contours:
        depth = points @ normal
        if np.ptp(depth) > 0.01 * 2 * half + 1e-3:
            raise MaskError(f"{path}: ROI {roi!r} has a contour not parallel to the image slices")
        k = int(np.argmin(np.abs(depths - depth.mean())))
        if abs(depths[k] - depth.mean()) > half + 1e-3:
            raise MaskError(f"{path}: ROI {roi!r} has a contour at {depth.mean():.2f} mm along the slice normal, "
                            f"on no slice of the image ({depths.min():.2f} to {depths.max():.2f} mm)")
        kji = image.physical_to_index(points)
        by_slice.setdefault(k, []).append(kji[:, [2, 1]])
    mask = np.zeros(image.array.shape, dtype=bool)
    for k, polygons in by_slice.items():
        mask[k] = fill_even_odd(polygons, image.array.shape[1:])
    return mask


@dataclass(frozen=True)
class LabelResult:
    """The label map (label k = k-th ROI of the file) and the ROIs that could not be rasterised, with why."""

    volume: Volume
    failed: dict[str, str]


def rtstruct_labels(path: Path, grid: Volume) -> LabelResult:
    """All ROIs of the RTSTRUCT at ``path`` on ``grid``; overlapping voxels keep the first ROI and are counted."""
    labels = np.zeros(grid.array.shape, dtype=np.int16)
    rois, failed = [], {}
    overlap = 0
    ds = _read(Path(path))
    for k, name in enumerate(_roi_names(ds), start=1):
        try:
            mask = rasterise(path, grid, name, ds)
        except MaskError as exc:
            failed[name] = str(exc)
            continue
        if not mask.any():
            failed[name] = "no voxel centre inside the contours on this grid"
            continue
        overlap += int(np.count_nonzero(mask & (labels > 0)))
        labels[mask & (labels == 0)] = k
        rois.append({"label": k, "name": name, "n_voxels": int(np.count_nonzero(labels == k))})
    attrs = {**grid.attrs, "quantity": "label", "rois": rois, "overlap_voxels": overlap}
    return LabelResult(Volume(labels, grid.spacing, grid.origin, grid.direction, attrs), failed)
