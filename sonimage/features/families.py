"""One lesion, every requested feature family: validate, crop, dispatch to the family modules by name."""

from __future__ import annotations

import importlib
import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.filters import FilterSpec, filtered_statistics
from sonimage.features.kernels import bounding_box, count_nonfinite, mask_box
from sonimage.features.local_intensity import peak_margin
from sonimage.features.processing import process

NON_TEXTURE = ("morphology", "local_intensity", "statistics", "histogram", "ivh", "pet")
TEXTURE = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
ALL_FAMILIES = NON_TEXTURE + TEXTURE


class FeatureInputError(ValueError):
    """A lesion whose features cannot be computed (empty mask, NaN inside the mask, unknown family)."""


def family_module(name: str):
    """The module of feature family ``name`` (``sonimage.features.<name>``)."""
    if name not in ALL_FAMILIES:
        raise FeatureInputError(f"unknown feature family {name!r}; choose from {', '.join(ALL_FAMILIES)}")
    return importlib.import_module(f"sonimage.features.{name}")


def crop(roi: Roi, margin: tuple[int, int, int], mask_bounds: np.ndarray | None = None) -> Roi:
    """The ROI cut to the (morphological) mask's bounding box plus ``margin`` voxels per axis (clipped to the
    image); ``mask_bounds``: that mask's :func:`kernels.mask_box` when known."""
    box = bounding_box(roi.shape_mask, margin, mask_bounds)
    morph = None if roi.morph_mask is None else np.ascontiguousarray(roi.morph_mask[box])
    return Roi(np.ascontiguousarray(roi.image[box]), np.ascontiguousarray(roi.mask[box]), roi.spacing, morph)


def check_roi(roi: Roi) -> np.ndarray:
    """Raise :class:`FeatureInputError` for a lesion no feature can be computed on; else return the intensity
    mask's voxel count and bounding box (:func:`kernels.mask_box`)."""
    bounds = mask_box(roi.mask)
    n = int(bounds[0])
    if n == 0:
        raise FeatureInputError("empty mask: the lesion has no voxels on this image grid"
                                + (" after re-segmentation" if roi.morph_mask is not None else ""))
    box = bounding_box(roi.mask, box=bounds)
    bad = count_nonfinite(roi.image[box], roi.mask[box])
    if bad:
        raise FeatureInputError(f"{bad} of {n} lesion voxels are NaN or infinite in the image")
    if not all(s > 0 for s in roi.spacing):
        raise FeatureInputError(f"voxel spacing must be positive, got {roi.spacing}")
    return bounds


def extract_features(roi: Roi, settings: FeatureSettings, families: tuple[str, ...] = ALL_FAMILIES,
                     dims: tuple[str, ...] = ("3D",), sul_ratio: float | None = None,
                     filters: tuple[FilterSpec, ...] = ()) -> list[Feature]:
    """Features of one lesion for ``families`` (module names) and texture ``dims``, in family order, then the
    intensity statistics of each IBSI-2 filter's response (on the lesion's box plus the filter's reach).

    The ROI is validated (:class:`FeatureInputError` on an empty mask or NaN inside it; NaN outside the mask
    only shrinks the peak spheres), processed as ``settings`` ask (interpolation, re-segmentation: see
    :mod:`sonimage.features.processing`; validated again) and cropped to the mask's bounding box plus the reach
    of the peak sphere, so cost and memory follow the lesion, not the image.
    """
    modules = [family_module(f) for f in families]
    roi = Roi(roi.image, np.asarray(roi.mask, dtype=bool), tuple(float(s) for s in roi.spacing))
    bounds = check_roi(roi)
    processed = process(roi, settings)
    if processed is not roi:
        roi = processed
        bounds = check_roi(roi)
    if roi.morph_mask is not None:  # the crop follows the morphological mask
        bounds = None
    filtered = [f for spec in filters for f in filtered_statistics(crop(roi, spec.reach(roi.spacing), bounds), spec)]
    roi = crop(roi, peak_margin(roi.spacing, settings.peak_volume_ml), bounds)
    out: list[Feature] = []
    for name, module in zip(families, modules):
        if name == "pet":
            out += module.compute(roi, settings, dims, sul_ratio=sul_ratio)
        else:
            out += module.compute(roi, settings, dims)
    return out + filtered
