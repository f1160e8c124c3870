"""Features of every lesion of one scan, from whatever image and mask files a site delivers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.families import ALL_FAMILIES, extract_features
from sonimage.features.filters import FilterSpec
from sonimage.features.table import LesionFeatures
from sonimage.stages.inputs import lesion_names, read_image, read_mask


def scan_lesions(image_path: Path, mask_path: Path, settings: FeatureSettings,
                 families: tuple[str, ...] = ALL_FAMILIES, dims: tuple[str, ...] = ("3D",),
                 rois: tuple[str, ...] | None = None, label: int = 1, sul_ratio: float | str | None = None,
                 ids: dict[str, Any] | None = None, filters: tuple[FilterSpec, ...] = ()) -> list[LesionFeatures]:
    """Features of every lesion of one scan: the image read once, one record per ROI (all ROIs of an RTSTRUCT or
    SEG unless ``rois`` names some; ``label`` of a label map), plus the intensity statistics of each IBSI-2
    ``filters`` response. A lesion that fails carries its error instead of
    stopping the others. ``sul_ratio`` "auto" takes the image's Janmahasatian lean-body-mass ratio.
    Pure and picklable: a Dask task per scan.
    """
    image = read_image(image_path)
    if sul_ratio == "auto":
        sul_ratio = image.attrs.get("ratio_sul_janma")
        if sul_ratio is None:
            raise ValueError(f"{image_path}: sul_ratio auto, but the image has no lean-body-mass ratio "
                             "(height or weight missing)")
    names = list(rois or lesion_names(mask_path) or [None])
    scale = {} if sul_ratio is None else {"sul_ratio": float(sul_ratio)}
    out = []
    for name in names:
        row_ids = {**(ids or {}), "roi": name if name is not None else f"label {label}", **scale}
        try:
            mask = read_mask(mask_path, image, name, label)
            roi = Roi(image.array, mask, image.spacing)
            features = extract_features(roi, settings, families, dims, sul_ratio, filters)
            out.append(LesionFeatures({**row_ids, "voxels": int(mask.sum())}, features))
        except ValueError as exc:
            out.append(LesionFeatures({**row_ids, "voxels": np.nan}, error=str(exc)))
    return out
