"""Intensity-based statistical features (IBSI 1, section 3.3), on the raw intensities inside the mask."""

from __future__ import annotations

import math

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi, record_templates
from sonimage.features.kernels import sample_summary

FAMILY = "statistics"

# The 16 descriptors that intensity statistics and the intensity histogram share, in IBSI order.
SHARED = ("mean", "variance", "skewness", "kurtosis", "median", "minimum", "p10", "p90", "maximum",
          "iqr", "range", "mad", "rmad", "medad", "cov", "qcod")

SPECS = (
    ("mean", "Mean intensity", "Q4LE"),
    ("variance", "Intensity variance", "ECT3"),
    ("skewness", "Intensity skewness", "KE2A"),
    ("kurtosis", "(Excess) intensity kurtosis", "IPH6"),
    ("median", "Median intensity", "Y12H"),
    ("minimum", "Minimum intensity", "1GSF"),
    ("p10", "10th intensity percentile", "QG58"),
    ("p90", "90th intensity percentile", "8DWT"),
    ("maximum", "Maximum intensity", "84IY"),
    ("iqr", "Intensity interquartile range", "SALO"),
    ("range", "Intensity range", "2OJQ"),
    ("mad", "Intensity-based mean absolute deviation", "4FUA"),
    ("rmad", "Intensity-based robust mean absolute deviation", "1128"),
    ("medad", "Intensity-based median absolute deviation", "N72L"),
    ("cov", "Intensity-based coefficient of variation", "7TET"),
    ("qcod", "Intensity-based quartile coefficient of dispersion", "9S40"),
    ("energy", "Intensity-based energy", "N8CA"),
    ("rms", "Root mean square intensity", "5ZWQ"),
)

REASONS = {
    "skewness": "zero variance: skewness undefined",
    "kurtosis": "zero variance: kurtosis undefined",
    "rmad": "no intensity between the 10th and 90th percentiles (too few voxels)",
    "cov": "mean intensity is zero: coefficient of variation undefined",
    "qcod": "25th + 75th percentile is zero: quartile coefficient undefined",
}


def describe(x: np.ndarray, presorted: bool = False) -> dict[str, float]:
    """The shared descriptors of a 1-D sample (IBSI definitions: biased moments, linear percentiles), and the
    sum of squares (``energy``), from one compiled pass over a sorted copy (:func:`kernels.sample_summary`);
    ``presorted``: ``x`` is sorted already.

    Undefined ratios (zero variance, zero mean) come out as NaN; :data:`REASONS` says why.
    """
    x = np.asarray(x, dtype=np.float64)
    mean, s2, s3, s4, p10, p25, median, p75, p90, low, high, mad, rmad, medad, energy = (
        float(v) for v in sample_summary(x if presorted else np.sort(x)))
    m2 = s2 / x.size
    nan = float("nan")
    return {
        "mean": mean,
        "variance": m2,
        "skewness": s3 / x.size / m2**1.5 if m2 > 0 else nan,
        "kurtosis": s4 / x.size / m2**2 - 3.0 if m2 > 0 else nan,
        "median": median,
        "minimum": low,
        "p10": p10,
        "p90": p90,
        "maximum": high,
        "iqr": p75 - p25,
        "range": high - low,
        "mad": mad,
        "rmad": rmad,
        "medad": medad,
        "cov": np.sqrt(m2) / mean if mean != 0 else nan,
        "qcod": (p75 - p25) / (p75 + p25) if (p75 + p25) != 0 else nan,
        "energy": energy,
    }


def to_features(family: str, specs: tuple[tuple[str, str, str], ...], values: dict[str, float],
                reasons: dict[str, str]) -> list[Feature]:
    """Feature records for ``specs`` (key, IBSI name, code) from ``values``; NaNs get their reason."""
    out = []
    for (key, _, _), template in zip(specs, record_templates(family, specs, "", 2, 1)):
        v = float(values[key])
        out.append(Feature.from_template(template, v, reasons.get(key, "undefined for this ROI") if math.isnan(v)
                                         else ""))
    return out


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """Intensity statistics of the voxels inside the mask (``dims`` is ignored: these are 3D by nature)."""
    x = np.sort(roi.image[roi.mask])  # in the image's type (float32 sorts twice as fast); exact in float64
    values = describe(x, presorted=True)
    values["rms"] = float(np.sqrt(values["energy"] / x.size))
    return to_features(FAMILY, SPECS, values, REASONS)
