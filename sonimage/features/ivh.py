"""Intensity-volume histogram features (IBSI 1, section 3.5).

The IVH runs over a regular grid of intensities x_0 < x_1 < ... < x_K covering the ROI, absent intensities
included (as IBSI's digital phantom requires):

- ``ivh_bin_width`` set: bin centres of fixed-bin-size discretisation with that width (lower bound
  ``bin_lower_bound`` or the ROI minimum), in image units;
- else integer-valued intensities (CT, the phantom): the raw intensities, step 1;
- else the main discretisation: bin centres (fixed bin size, image units) or grey levels 1..N (fixed bin number).

Fraction ν_k = share of voxels with intensity ≥ x_k; intensity fraction γ_k = (x_k − x_0) / (x_K − x_0).
V_p = ν at the first grid point with γ ≥ p; I_q = the first grid intensity with ν ≤ q.
"""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.discretise import discretise
from sonimage.features.statistics import to_features

FAMILY = "ivh"

SPECS = (
    ("v10", "Volume at 10% intensity fraction", "BC2M"),
    ("v90", "Volume at 90% intensity fraction", "BC2M"),
    ("i10", "Intensity at 10% volume fraction", "GBPN"),
    ("i90", "Intensity at 90% volume fraction", "GBPN"),
    ("vfd", "Volume fraction difference between 10% and 90% intensity fractions", "DDTU"),
    ("ifd", "Intensity fraction difference between 10% and 90% volume fractions", "CNV2"),
)


def _grid_index(x: np.ndarray, settings: FeatureSettings) -> tuple[np.ndarray, float, float]:
    """Each voxel's index on the IVH grid, the grid's first intensity and its step."""
    width = settings.ivh_bin_width
    if width is None and np.allclose(x, np.rint(x)):
        index = np.rint(x - x.min()).astype(np.int64)
        return index, float(x.min()), 1.0
    if width is None and settings.bin_count is not None:
        levels = discretise(x, settings)
        return levels - 1, 1.0, 1.0
    if width is None and settings.bin_width is None:
        raise ValueError("non-integer intensities: set ivh_bin_width, bin_width or bin_count for the IVH")
    width = width or settings.bin_width
    lower = float(x.min()) if settings.bin_lower_bound is None else settings.bin_lower_bound
    bins = np.floor((x - lower) / width).astype(np.int64)
    first = int(bins.min())
    return bins - first, lower + (first + 0.5) * width, float(width)


def ivh_values(x: np.ndarray, settings: FeatureSettings) -> dict[str, float]:
    """V10, V90, I10, I90 and their differences for the intensities ``x``."""
    index, start, step = _grid_index(x, settings)
    counts = np.bincount(index)
    nu = np.cumsum(counts[::-1])[::-1] / x.size  # share of voxels at or above each grid intensity
    k = np.arange(counts.size)
    intensity = start + k * step
    if counts.size < 2:
        nan = float("nan")
        return dict.fromkeys(("v10", "v90", "i10", "i90", "vfd", "ifd"), nan)
    gamma = k / (counts.size - 1)
    v = {p: float(nu[np.argmax(gamma >= p)]) for p in (0.1, 0.9)}
    i = {q: float(intensity[np.argmax(nu <= q)]) if np.any(nu <= q) else float(intensity[-1] + step) for q in (0.1, 0.9)}
    return {"v10": v[0.1], "v90": v[0.9], "i10": i[0.1], "i90": i[0.9],
            "vfd": v[0.1] - v[0.9], "ifd": i[0.1] - i[0.9]}


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """IVH features of the ROI (``dims`` ignored)."""
    reason = "all voxels share one intensity: the intensity-volume histogram is undefined"
    return to_features(FAMILY, SPECS, ivh_values(roi.values, settings), dict.fromkeys(("v10", "v90", "i10", "i90", "vfd", "ifd"), reason))
