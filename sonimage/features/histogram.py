"""Intensity histogram features (IBSI 1, section 3.4), on the discretised grey levels inside the mask.

The histogram runs over grey levels 1..Ng (Ng = the bin count for fixed bin number, else the highest level
present), so empty bins between and above the levels present count in the gradients, as in IBSI.
IBSI codes follow the IBSI source and MIRP: 10th percentile GPMT, 90th percentile OZ0C. The printed IBSI 1 manual
(arXiv:1612.07003, table of the intensity histogram family) misprints them as 1PR8 (the minimum's code) and GPMT;
the feature dictionary notes this (:data:`MANUAL_MISPRINTS`).
"""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.discretise import discretise
from sonimage.features.statistics import REASONS, describe, to_features

FAMILY = "histogram"

SPECS = (
    ("mean", "Mean discretised intensity", "X6K6"),
    ("variance", "Discretised intensity variance", "CH89"),
    ("skewness", "Discretised intensity skewness", "88K1"),
    ("kurtosis", "(Excess) discretised intensity kurtosis", "C3I7"),
    ("median", "Median discretised intensity", "WIFQ"),
    ("minimum", "Minimum discretised intensity", "1PR8"),
    ("p10", "10th discretised intensity percentile", "GPMT"),
    ("p90", "90th discretised intensity percentile", "OZ0C"),
    ("maximum", "Maximum discretised intensity", "3NCY"),
    ("mode", "Intensity histogram mode", "AMMC"),
    ("iqr", "Discretised intensity interquartile range", "WR0O"),
    ("range", "Discretised intensity range", "5Z3W"),
    ("mad", "Intensity histogram mean absolute deviation", "D2ZX"),
    ("rmad", "Intensity histogram robust mean absolute deviation", "WRZB"),
    ("medad", "Intensity histogram median absolute deviation", "4RNL"),
    ("cov", "Intensity histogram coefficient of variation", "CWYJ"),
    ("qcod", "Intensity histogram quartile coefficient of dispersion", "SLWD"),
    ("entropy", "Discretised intensity entropy", "TLU2"),
    ("uniformity", "Discretised intensity uniformity", "BJ5W"),
    ("max_gradient", "Maximum histogram gradient", "12CE"),
    ("max_gradient_level", "Maximum histogram gradient intensity", "8E6O"),
    ("min_gradient", "Minimum histogram gradient", "VQB3"),
    ("min_gradient_level", "Minimum histogram gradient intensity", "RHQZ"),
)

# Code as used here -> the code the printed IBSI 1 manual gives the same feature.
MANUAL_MISPRINTS = {"GPMT": "1PR8", "OZ0C": "GPMT"}


def histogram_values(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """All histogram descriptors of integer grey ``levels`` on the histogram 1..``n_levels``."""
    first = min(1, int(levels.min()))
    grid = np.arange(first, max(n_levels, int(levels.max())) + 1)
    tally = np.bincount(levels - first, minlength=grid.size)
    values = describe(np.repeat(grid, tally), presorted=True)  # the levels sorted by counting
    counts = tally.astype(np.float64)
    p = counts / counts.sum()
    top = np.flatnonzero(counts == counts.max())
    values["mode"] = float(grid[top[np.argmin(np.abs(grid[top] - values["mean"]))]])
    nz = p[p > 0]
    values["entropy"] = float(-np.sum(nz * np.log2(nz)))
    values["uniformity"] = float(np.sum(p**2))
    grad = np.gradient(counts) if counts.size > 1 else np.zeros(1)
    values["max_gradient"] = float(grad.max())
    values["max_gradient_level"] = float(grid[np.argmax(grad)])
    values["min_gradient"] = float(grad.min())
    values["min_gradient_level"] = float(grid[np.argmin(grad)])
    return values


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """Intensity histogram features of the ROI's discretised intensities (``dims`` ignored)."""
    levels = discretise(roi.values, settings)
    n_levels = settings.bin_count or int(levels.max())
    return to_features(FAMILY, SPECS, histogram_values(levels, n_levels), REASONS)
