"""Intensity-volume histogram features (IBSI 1, section 3.5).

The IVH runs over a regular grid of intensities x_0 < x_1 < ... < x_K covering the ROI, absent intensities
included (as IBSI's digital phantom requires):

- ``ivh_bin_width`` set: bin centres of fixed-bin-size discretisation with that width (lower bound
  ``bin_lower_bound``, else the re-segmentation minimum, else the ROI minimum), in image units;
- ``ivh_bin_count`` set: grey levels 1..N of fixed-bin-number discretisation with N bins;
- else integer-valued intensities (CT, the phantom): the raw intensities, step 1;
- else the main discretisation: bin centres (fixed bin size, image units) or grey levels 1..N (fixed bin number).

With a re-segmentation range the grid runs from its lower to its upper bound (IBSI 1, section 3.5: the range
limits, where set, define the intensity fraction), else over the intensities present.

Fraction ν_k = share of voxels with intensity ≥ x_k; intensity fraction γ_k = (x_k − x_0) / (x_K − x_0).
V_p = ν at the first grid point with γ ≥ p; I_q = the first grid intensity with ν ≤ q.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.discretise import bin_lower_bound, discretise
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


def _grid_index(x: np.ndarray, settings: FeatureSettings) -> tuple[np.ndarray, float, float, int]:
    """Each voxel's index on the IVH grid, the grid's first intensity, its step and its length."""
    lo, hi = settings.resegment_min, settings.resegment_max
    width, count = settings.ivh_bin_width, settings.ivh_bin_count
    if width is None and count is None and np.allclose(x, np.rint(x)):
        start = float(x.min()) if lo is None else float(np.ceil(lo))
        index = np.rint(x - start).astype(np.int64)
        stop = float(x.max()) if hi is None else float(np.floor(hi))
        return index, start, 1.0, int(stop - start) + 1
    if width is None and (count or settings.bin_count) is not None:
        n = count or settings.bin_count
        levels = discretise(x, replace(settings, bin_width=None, bin_count=n))
        return levels - 1, 1.0, 1.0, n
    if width is None and settings.bin_width is None:
        raise ValueError("non-integer intensities: set ivh_bin_width, ivh_bin_count, bin_width or bin_count for the IVH")
    width = width or settings.bin_width
    lower = bin_lower_bound(x, settings)
    bins = np.floor((x - lower) / width).astype(np.int64)
    first = int(bins.min()) if lo is None else int(np.floor((lo - lower) / width))
    last = int(bins.max()) if hi is None else int(np.floor((hi - lower) / width))
    return bins - first, lower + (first + 0.5) * width, float(width), last - first + 1


def ivh_values(x: np.ndarray, settings: FeatureSettings) -> dict[str, float]:
    """V10, V90, I10, I90 and their differences for the intensities ``x``."""
    index, start, step, size = _grid_index(x, settings)
    counts = np.bincount(index, minlength=size)
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
