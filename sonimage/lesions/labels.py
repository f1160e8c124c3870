"""Lesion label maps: every ROI of an RTSTRUCT rasterised onto its image grid as one integer volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonimage.lesions.labelmap import MaskError
from sonimage.lesions.rtstruct import rasterise, roi_names
from sonimage.volumes.volume import Volume


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
    for k, name in enumerate(roi_names(path), start=1):
        try:
            mask = rasterise(path, grid, name)
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
