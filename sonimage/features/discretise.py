"""Intensity discretisation (IBSI 1, section 2.7): fixed bin size and fixed bin number."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import FeatureSettings


def bin_lower_bound(values: np.ndarray, settings: FeatureSettings) -> float:
    """Lower bound of the first fixed-size bin: the setting, else the re-segmentation minimum, else the ROI minimum."""
    for bound in (settings.bin_lower_bound, settings.resegment_min):
        if bound is not None:
            return float(bound)
    return float(np.nanmin(values))


def discretise(values: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Grey levels (int, from 1) of ``values`` under ``settings``.

    Fixed bin size: ``floor((x - lower) / w) + 1`` with ``lower`` the bin lower bound (when unset: the
    re-segmentation range's lower bound, as IBSI 1 section 2.7 prescribes, else the ROI minimum).
    Fixed bin number: ``floor(N (x - min) / (max - min)) + 1``, the maximum going to bin N.
    With neither, values must already be integer grey levels.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    if settings.bin_width is not None:
        lower = bin_lower_bound(x, settings)
        return (np.floor((x - lower) / settings.bin_width) + 1).astype(np.int64)
    if settings.bin_count is not None:
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        if hi == lo:
            return np.ones(x.shape, dtype=np.int64)
        levels = np.floor(settings.bin_count * (x - lo) / (hi - lo)) + 1
        return np.minimum(levels, settings.bin_count).astype(np.int64)
    rounded = np.rint(x)
    if not np.allclose(rounded, x):
        raise ValueError("intensities are not integer grey levels: set bin_width or bin_count")
    return rounded.astype(np.int64)


def discretised_image(image: np.ndarray, mask: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Image of grey levels: discretised inside ``mask`` (bounds from the ROI), 0 outside."""
    levels = np.zeros(image.shape, dtype=np.int64)
    levels[mask] = discretise(image[mask], settings)
    return levels
