"""Label-map masks (NIfTI and any format SimpleITK reads) on an image grid, and the grid check all masks share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sonimage.nifti import is_nifti, read_nifti
from sonimage.volumes.volume import MaskError, Volume


def check_grid(mask: Volume, image: Volume, source: Path) -> None:
    """Raise :class:`MaskError` naming ``source`` unless ``mask`` lies on ``image``'s grid."""
    problems = []
    if mask.array.shape != image.array.shape:
        problems.append(f"shape {mask.array.shape} vs image {image.array.shape}")
    if not np.allclose(mask.spacing, image.spacing, atol=1e-3):
        problems.append(f"spacing {tuple(round(s, 4) for s in mask.spacing)} vs image "
                        f"{tuple(round(s, 4) for s in image.spacing)} mm")
    if not np.allclose(mask.origin, image.origin, atol=1e-2):
        problems.append(f"origin {tuple(round(o, 3) for o in mask.origin)} vs image "
                        f"{tuple(round(o, 3) for o in image.origin)} mm")
    if not np.allclose(mask.direction, image.direction, atol=1e-4):
        problems.append("direction differs")
    if problems:
        raise MaskError(f"{source}: mask is not on the image grid ({'; '.join(problems)}); resample it first")


def labels_on_grid(labels: Volume, image: Volume, source: Path, label: int = 1) -> np.ndarray:
    """Boolean mask of voxels equal to ``label`` after checking the grid."""
    check_grid(labels, image, source)
    return np.asarray(labels.array) == label


def read_labelmap(path: Path, image: Volume, label: int = 1) -> np.ndarray:
    """Voxels of ``label`` in the label map at ``path`` as a boolean (z, y, x) mask on ``image``'s grid."""
    path = Path(path)
    try:
        labels = read_nifti(path) if is_nifti(path) else Volume.from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        raise MaskError(f"{path}: not a readable label map ({str(exc).strip().splitlines()[-1]})") from exc
    return labels_on_grid(labels, image, path, label)
