"""Automatic lesion delineation for MTV and TLG, recorded with every volume.

Methods (:class:`sonimage.settings.Method`, ``kind``):

- ``contour``: the reader's contour (RTSTRUCT, SEG, label map) as drawn.
- ``fixed``: SUV ≥ a fixed value, 2.5 by default (the threshold in common use for FDG MTV; any user value).
- ``relative``: ≥ a fraction of the lesion's SUVmax, 41 % or 50 % (EANM procedure guidelines for tumour imaging
  v2.0, Boellaard et al., Eur J Nucl Med Mol Imaging 2015;42:328–354). Without a background term these fail at
  low lesion-to-background contrast: once the fraction of SUVmax falls below the surrounding uptake (a 15 mm bone
  lesion of recovered FDG SUVmax 2.2 on marrow of SUV 1.3: 41 % is 0.9) the component fills the search region
  (``touches_region``): its MTV would be the region's, not the lesion's, and is NaN (:func:`delineation_row`).
- ``adaptive``: ≥ local background + a fraction of (SUVmax − background), 50 % by default: the background-adapted
  isocontour "A50" of the Netherlands protocol for quantitative FDG PET in multicentre trials (Boellaard et al.,
  Eur J Nucl Med Mol Imaging 2008;35:2320–2333), also in the EANM 2015 guideline. The local background is the
  median SUV of the search box (contour box + ``margin_mm``) outside the contour grown by one voxel.
- ``percist``: ≥ 1.5 × liver SULmean + 2 SD of the normal liver (PERCIST 1.0, Wahl et al., J Nucl Med
  2009;50 Suppl 1:122S–150S), with the automatic right-lobe liver VOI of :mod:`sonimage.lesions.liver`. On the
  SUL (lean body mass, Janmahasatian by default) scale; the same voxels as on the SUV scale, so the threshold is
  applied as 1.5 × liver SUVmean + 2 SD and reported on both scales.

Every threshold mask is the 3D (26-)connected component of above-threshold voxels that holds the seed, the
hottest voxel of the reader contour (or of the seed region given), searched either inside the reader contour's
bounding box grown by ``margin_mm`` (``region="box"``) or over the whole image (``region="whole-body"``; the
component may then run into neighbouring physiological uptake, flagged by ``touches_region``). SUVmax for the
relative thresholds is the seed's value. MTV = voxel count × voxel volume (mL), TLG = SUVmean × MTV, as for the
reader contour (:mod:`sonimage.features.pet`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sonimage.settings import DelineationSettings, Method

CONNECTIVITY = np.ones((3, 3, 3), bool)  # 26-connected


DEFAULT_METHODS = DelineationSettings().methods


def grown_box(mask: np.ndarray, spacing: tuple[float, float, float], margin_mm: float) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin_mm`` on every side (clipped to the array)."""
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - int(np.ceil(margin_mm / s)), 0), min(int(i.max()) + 1 + int(np.ceil(margin_mm / s)), n))
                 for i, s, n in zip(idx, spacing, mask.shape))


def local_background(image: np.ndarray, contour: np.ndarray, box: tuple[slice, ...]) -> float:
    """Median SUV inside ``box`` outside ``contour`` grown by one voxel (26-connected)."""
    outside = ~ndimage.binary_dilation(contour[box], CONNECTIVITY)
    if not outside.any():
        raise ValueError("no local background around the contour (the search box holds the contour only)")
    return float(np.median(image[box][outside]))


def connected_above(image: np.ndarray, threshold: float, seed: tuple[int, int, int],
                    region: np.ndarray | None = None) -> np.ndarray:
    """Voxels ≥ ``threshold`` (inside ``region``) 26-connected to ``seed``; empty when the seed is below."""
    above = image >= threshold
    if region is not None:
        above &= region
    if not above[seed]:
        return np.zeros(image.shape, bool)
    labels, _ = ndimage.label(above, CONNECTIVITY)
    return labels == labels[seed]


def delineate(image: np.ndarray, contour: np.ndarray, spacing: tuple[float, float, float], method: Method,
              percist_threshold_suv: float = float("nan")) -> tuple[np.ndarray, float, bool]:
    """The mask of ``method`` for the lesion whose reader contour (or seed region) is ``contour``, the absolute
    SUV threshold used (NaN for the contour itself) and whether the mask reaches the search region's border
    (the threshold did not close the lesion off: possible leak into neighbouring uptake).

    ``image`` is the SUV image the contour lies on (a window of it, for ``region="box"`` at least the contour's
    box plus the margin; the whole scan for ``region="whole-body"``).
    """
    contour = np.asarray(contour, bool)
    if not contour.any():
        raise ValueError("empty reader contour: no seed for delineation")
    if method.kind == "contour":
        return contour, float("nan"), False
    inside = np.where(contour, image, -np.inf)
    seed = np.unravel_index(int(np.argmax(inside)), image.shape)
    near = grown_box(contour, spacing, method.margin_mm)
    if method.kind == "fixed":
        threshold = method.value
    elif method.kind == "relative":
        threshold = method.value * float(image[seed])
    elif method.kind == "adaptive":
        background = local_background(image, contour, near)
        threshold = background + method.value * (float(image[seed]) - background)
    else:
        if not np.isfinite(percist_threshold_suv):
            raise ValueError("PERCIST delineation needs the liver reference (none found on this scan)")
        threshold = float(percist_threshold_suv)
    box = near if method.region == "box" else tuple(slice(0, n) for n in image.shape)
    region = np.zeros(image.shape, bool)
    region[box] = True
    mask = connected_above(image, threshold, seed, region)
    inner = mask[box]
    touches = any(np.take(inner, i, axis=a).any() for a in range(3) for i in (0, -1))
    return mask, threshold, touches


def delineation_row(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float], method: Method,
                    threshold: float, touches: bool, sul_ratio: float | None = None) -> dict:
    """MTV, TLG and uptake of one delineation with its method and parameters (one row of ``delineations``).

    A mask that reaches its search region's border (``touches``) was not closed off by the threshold: its voxels
    are the region's, not the lesion's, so MTV, TLG and SUVmean are NaN (the voxel count is kept). An empty mask
    (SUVmax below a fixed or PERCIST threshold) has MTV 0: no voxel is metabolically active by that definition."""
    values = image[mask].astype(np.float64)
    mtv = values.size * float(np.prod(spacing)) / 1000.0 if not touches else float("nan")
    mean = float(values.mean()) if values.size and not touches else float("nan")
    ratio = float("nan") if sul_ratio is None else float(sul_ratio)
    return {"method": method.kind, "label": method.label, "parameters": method.parameters,
            "region": "reader contour" if method.kind == "contour" else
            (f"contour box + {method.margin_mm:g} mm" if method.region == "box" else "whole image"),
            "threshold_suv": threshold, "threshold_sul": threshold * ratio, "n_voxels": int(values.size),
            "mtv_ml": mtv, "suvmean": mean, "suvmax": float(values.max()) if values.size else float("nan"),
           "tlg": mean * mtv if values.size or touches else 0.0, "touches_region": touches}


def delineation_rows(image: np.ndarray, contour: np.ndarray, spacing: tuple[float, float, float],
                     settings: DelineationSettings, percist_threshold_suv: float,
                     sul_ratio: float | None) -> list[dict]:
    """One row per delineation method of one lesion (``error`` says why a method gave nothing)."""
    rows = []
    for method in settings.methods:
        try:
            mask, threshold, touches = delineate(image, contour, spacing, method, percist_threshold_suv)
            rows.append({**delineation_row(image, mask, spacing, method, threshold, touches, sul_ratio),
                         "sul_lbm_formula": settings.lbm_formula, "error": ""})
        except ValueError as exc:
            rows.append({"method": method.kind, "label": method.label, "parameters": method.parameters,
                         "mtv_ml": float("nan"), "tlg": float("nan"), "suvmean": float("nan"), "error": str(exc)})
    return rows
