"""Grey level co-occurrence matrix features (IBSI 1, section 3.6): symmetric, at Chebyshev distance ``glcm_distance``."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import (
    FeatureValues,
    Levels,
    Offset,
    check_dims,
    directional_aggregations,
    feature_records,
    grey_levels,
)

FAMILY = "glcm"

TABLE: tuple[tuple[str, str], ...] = (
    ("GYBY", "Joint maximum"),
    ("60VM", "Joint average"),
    ("UR99", "Joint variance"),
    ("TU9B", "Joint entropy"),
    ("TF7R", "Difference average"),
    ("D3YU", "Difference variance"),
    ("NTRS", "Difference entropy"),
    ("ZGXS", "Sum average"),
    ("OEEB", "Sum variance"),
    ("P6QZ", "Sum entropy"),
    ("8ZQL", "Angular second moment"),
    ("ACUI", "Contrast"),
    ("8S9J", "Dissimilarity"),
    ("IB1Z", "Inverse difference"),
    ("NDRX", "Normalised inverse difference"),
    ("WF0Z", "Inverse difference moment"),
    ("1QCO", "Normalised inverse difference moment"),
    ("E8JP", "Inverse variance"),
    ("NI2N", "Correlation"),
    ("QWB0", "Autocorrelation"),
    ("DG8W", "Cluster tendency"),
    ("7NFM", "Cluster shade"),
    ("AE86", "Cluster prominence"),
    ("R8DG", "Information correlation 1"),
    ("JN9H", "Information correlation 2"),
)


def cooccurrences(levels: Levels, offset: Offset) -> tuple[np.ndarray, np.ndarray]:
    """(slice, index into the P × P matrix) of every ROI voxel pair (voxel, voxel + ``offset``).

    Rows and columns are the P grey levels present in the ROI (``levels.present``), so memory follows the
    levels that occur, not the discretisation range. Counted one way; :func:`glcm_features` symmetrises
    (IBSI's symmetric GLCM counts both orders).
    """
    neighbour = levels.neighbour_values(offset)
    pair = neighbour > 0
    return levels.z[pair], levels.rank[levels.values[pair]] * levels.present.size + levels.rank[neighbour[pair]]


def _entropy(p: np.ndarray) -> np.float64:
    """Shannon entropy (bits); a numpy float, so a zero entropy divides to NaN/inf rather than raising."""
    nonzero = p[p > 0]
    return -(nonzero * np.log2(nonzero)).sum()


def _distribution(k: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``k`` that occur and the probability of each (p_{x-y} or p_{x+y} of IBSI)."""
    weights = np.bincount(k.ravel().astype(np.int64), weights=p.ravel())
    values = np.flatnonzero(weights)
    return values.astype(np.float64), weights[values]


def glcm_features(counts: np.ndarray, grey: np.ndarray, ng: int) -> FeatureValues | None:
    """The 25 IBSI GLCM features of one-way co-occurrence counts, None when empty.

    ``counts`` (symmetrised here) has a row and column per grey level in ``grey``; ``ng`` is the number of
    grey levels of the discretisation (the normalised inverse differences use it). The matrix is symmetric,
    so both marginals are equal (one mean, one variance) and the information correlations reduce to
    HXY1 = HXY2 = 2 HX.
    """
    counts = counts + counts.T
    total = counts.sum()
    if total == 0:
        return None
    present = counts.sum(axis=1) > 0  # absent grey levels add nothing: compute on the present ones only
    p = counts[np.ix_(present, present)] / total
    levels = np.asarray(grey, dtype=np.float64)[present]
    i, j = levels[:, None], levels[None, :]
    px = p.sum(axis=1)
    mu = float(levels @ px)
    variance = float(((levels - mu) ** 2) @ px)
    k_diff, p_diff = _distribution(np.abs(i - j), p)
    k_sum, p_sum = _distribution(i + j, p)
    mu_diff, mu_sum = float(k_diff @ p_diff), float(k_sum @ p_sum)
    autocorrelation = float(levels @ p @ levels)
    cluster = k_sum - 2 * mu
    hxy, hx = _entropy(p), _entropy(px)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "GYBY": float(p.max()),
            "60VM": mu,
            "UR99": variance,
            "TU9B": float(hxy),
            "TF7R": mu_diff,
            "D3YU": float(((k_diff - mu_diff) ** 2) @ p_diff),
            "NTRS": float(_entropy(p_diff)),
            "ZGXS": mu_sum,
            "OEEB": float(((k_sum - mu_sum) ** 2) @ p_sum),
            "P6QZ": float(_entropy(p_sum)),
            "8ZQL": float((p**2).sum()),
            "ACUI": float(k_diff**2 @ p_diff),
            "8S9J": mu_diff,
            "IB1Z": float(p_diff @ (1 / (1 + k_diff))),
            "NDRX": float(p_diff @ (1 / (1 + k_diff / ng))),
            "WF0Z": float(p_diff @ (1 / (1 + k_diff**2))),
            "1QCO": float(p_diff @ (1 / (1 + k_diff**2 / ng**2))),
            "E8JP": float((p_diff[k_diff > 0] / k_diff[k_diff > 0] ** 2).sum()),
            "NI2N": float((autocorrelation - mu**2) / np.float64(variance)),
            "QWB0": autocorrelation,
            "DG8W": float(cluster**2 @ p_sum),
            "7NFM": float(cluster**3 @ p_sum),
            "AE86": float(cluster**4 @ p_sum),
            "R8DG": float((hxy - 2 * hx) / hx),
            "JN9H": float(np.sqrt(1 - np.exp(-2 * (2 * hx - hxy)))) if 2 * hx >= hxy else np.nan,
        }


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLCM features of ``roi`` for every IBSI aggregation of the requested ``dims``."""
    check_dims(dims)
    distance = settings.glcm_distance
    levels = grey_levels(roi, settings, margin=distance)
    shape = (levels.present.size, levels.present.size)
    results = directional_aggregations(
        levels, dims, cooccurrences, shape, lambda counts, _: glcm_features(counts, levels.present, levels.n_levels),
        distance,
    )  # fmt: skip
    return feature_records(FAMILY, TABLE, results, "voxel pairs at the GLCM distance")
