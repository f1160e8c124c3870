"""Read any image and any lesion mask a site delivers, dispatching on the kind of file.

Images: a NIfTI (or other SimpleITK-readable) file, a DICOM series folder (PET as SUVbw), or a sonimage Zarr
store (a directory holding ``zarr.json``). Masks: a DICOM RTSTRUCT (ROI by name), a DICOM SEG (segment by label
or number), a label map file or a sonimage Zarr label store (label value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from sonimage.dicom.reader import read_dicom_volume
from sonimage.dicom.rtstruct import rasterise, roi_names
from sonimage.lesions.labelmap import labels_on_grid, read_labelmap
from sonimage.lesions.seg import read_seg, segments
from sonimage.nifti import is_nifti, read_nifti
from sonimage.volumes.volume import MaskError, Volume
from sonimage.volumes.store import open_store, read_volume


def is_zarr_store(path: Path) -> bool:
    """True for a directory that is a Zarr v3 store."""
    return Path(path).is_dir() and (Path(path) / "zarr.json").exists()


def read_image(path: Path) -> Volume:
    """The image at ``path``: Zarr store, DICOM series folder, or an image file (NIfTI, NRRD, MHA)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image")
    if is_zarr_store(path):
        return read_volume(path)
    if path.is_dir():
        return read_dicom_volume(path)
    try:
        if is_nifti(path):
            return read_nifti(path)
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a readable image ({str(exc).strip().splitlines()[-1]})") from exc
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected a 3D single-channel image")
    return Volume.from_sitk(img)


def mask_kind(path: Path) -> str:
    """``rtstruct``, ``seg``, ``zarr`` or ``labelmap`` for the mask at ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such mask")
    if is_zarr_store(path):
        return "zarr"
    if path.is_file() and is_nifti(path):
        return "labelmap"
    if path.is_file():
        try:
            modality = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality")
        except Exception:  # not DICOM: a label map file
            return "labelmap"
        if modality in ("RTSTRUCT", "SEG"):
            return modality.lower()
        raise MaskError(f"{path}: DICOM {modality} is not a mask (expected RTSTRUCT or SEG)")
    raise MaskError(f"{path}: a mask must be a file (NIfTI, RTSTRUCT, SEG) or a Zarr store")


def _store_rois(path: Path) -> dict[str, int]:
    """ROI name → label of a sonimage label store (its ``rois`` attribute), empty when it has none."""
    return {str(r["name"]): int(r["label"]) for r in open_store(path).attrs.get("rois", [])}


def lesion_names(path: Path) -> list[str]:
    """Names of the lesions a mask holds: RTSTRUCT ROI names, SEG segment labels, the ROIs a sonimage label store
    records; empty for plain label maps."""
    kind = mask_kind(path)
    if kind == "rtstruct":
        return roi_names(path)
    if kind == "seg":
        return list(segments(path).values())
    if kind == "zarr":
        return list(_store_rois(path))
    return []


def read_mask(path: Path, image: Volume, roi: str | None = None, label: int = 1) -> np.ndarray:
    """Boolean (z, y, x) lesion mask on ``image``'s grid.

    RTSTRUCT: ROI ``roi`` (may be omitted when the file holds one ROI). SEG: segment ``roi`` (label), else number
    ``label``. Zarr label store: the label of ROI ``roi`` (from the store's ``rois`` record), else ``label``.
    Label map: voxels equal to ``label``.
    """
    path = Path(path)
    kind = mask_kind(path)
    if kind == "rtstruct":
        if roi is None:
            names = roi_names(path)
            if len(names) != 1:
                raise MaskError(f"{path}: {len(names)} ROIs ({', '.join(map(repr, names))}); choose one with roi")
            roi = names[0]
        return rasterise(path, image, roi)
    if kind == "seg":
        return read_seg(path, image, roi if roi is not None else label)
    if kind == "zarr":
        if roi is not None:
            known = _store_rois(path)
            if roi not in known:
                raise MaskError(f"{path}: no ROI named {roi!r} in the label store (ROIs: {', '.join(map(repr, known))})")
            label = known[roi]
        return labels_on_grid(read_volume(path), image, path, label)
    return read_labelmap(path, image, label)
