"""Grey level co-occurrence matrix features (IBSI 1, section 3.6): symmetric, at Chebyshev distance ``glcm_distance``."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.kernels import pair_counts
from sonimage.features.texture import (
    FeatureValues,
    Levels,
    Offset,
    check_dims,
    directional_aggregations,
    entropy,
    feature_records,
    grey_levels,
    unstack,
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


def cooccurrences(levels: Levels, voxels: np.ndarray, offsets: list[Offset]) -> np.ndarray:
    """One-way co-occurrence matrices (k × P × P) of the ROI voxel pairs (voxel, voxel + offset) starting at
    ``voxels`` (flat indices), one per offset.

    Rows and columns are the P grey levels present in the ROI (``levels.present``), so memory follows the
    levels that occur, not the discretisation range. Counted one way; :func:`glcm_features` symmetrises
    (IBSI's symmetric GLCM counts both orders).
    """
    return pair_counts(levels.flat, voxels, levels.rank, levels.steps(offsets), levels.present.size)


def _distribution(k: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values 0..max(k) and, per matrix of the stack ``p``, the probability of each (p_{x-y} or p_{x+y} of IBSI).

    ``k`` (one integer per matrix cell) is shared by the stack; values that do not occur get probability 0.
    """
    n, size = len(p), int(k.max()) + 1
    index = (np.arange(n)[:, None] * size + k.ravel()[None, :]).ravel()
    weights = np.bincount(index, weights=p.ravel(), minlength=n * size).reshape(n, size)
    return np.arange(size, dtype=np.float64), weights


def glcm_features_stack(counts: np.ndarray, grey: np.ndarray, ng: int) -> list[FeatureValues | None]:
    """The 25 IBSI GLCM features of each one-way co-occurrence matrix of the stack ``counts`` (k × P × P), None
    for an empty one.

    Matrices are symmetrised here; rows and columns are the grey levels ``grey`` (levels absent from a matrix
    add nothing); ``ng`` is the number of grey levels of the discretisation (the normalised inverse differences
    use it). The matrices are symmetric, so both marginals are equal (one mean, one variance) and the
    information correlations reduce to HXY1 = HXY2 = 2 HX.
    """
    counts = counts + np.swapaxes(counts, -1, -2)
    total = counts.sum(axis=(-2, -1))
    empty = total == 0
    p = counts / np.where(empty, 1.0, total)[:, None, None]
    levels = np.asarray(grey, dtype=np.float64)
    whole = np.asarray(grey, dtype=np.int64)
    px = p.sum(axis=-1)
    mu = px @ levels
    variance = ((levels[None, :] - mu[:, None]) ** 2 * px).sum(axis=-1)
    k_diff, p_diff = _distribution(np.abs(whole[:, None] - whole[None, :]), p)
    k_sum, p_sum = _distribution(whole[:, None] + whole[None, :], p)
    mu_diff, mu_sum = p_diff @ k_diff, p_sum @ k_sum
    autocorrelation = levels @ p @ levels
    cluster = k_sum[None, :] - 2 * mu[:, None]
    hxy, hx = entropy(p, axis=(-2, -1)), entropy(px)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "GYBY": p.max(axis=(-2, -1)),
            "60VM": mu,
            "UR99": variance,
            "TU9B": hxy,
            "TF7R": mu_diff,
            "D3YU": ((k_diff[None, :] - mu_diff[:, None]) ** 2 * p_diff).sum(axis=-1),
            "NTRS": entropy(p_diff),
            "ZGXS": mu_sum,
            "OEEB": ((k_sum[None, :] - mu_sum[:, None]) ** 2 * p_sum).sum(axis=-1),
            "P6QZ": entropy(p_sum),
            "8ZQL": (p**2).sum(axis=(-2, -1)),
            "ACUI": p_diff @ k_diff**2,
            "8S9J": mu_diff,
            "IB1Z": p_diff @ (1 / (1 + k_diff)),
            "NDRX": p_diff @ (1 / (1 + k_diff / ng)),
            "WF0Z": p_diff @ (1 / (1 + k_diff**2)),
            "1QCO": p_diff @ (1 / (1 + k_diff**2 / ng**2)),
            "E8JP": p_diff[:, 1:] @ (1 / k_diff[1:] ** 2),
            "NI2N": (autocorrelation - mu**2) / variance,
            "QWB0": autocorrelation,
            "DG8W": (cluster**2 * p_sum).sum(axis=-1),
            "7NFM": (cluster**3 * p_sum).sum(axis=-1),
            "AE86": (cluster**4 * p_sum).sum(axis=-1),
            "R8DG": (hxy - 2 * hx) / hx,
            "JN9H": np.where(2 * hx >= hxy, np.sqrt(1 - np.exp(-2 * (2 * hx - hxy))), np.nan),
        }
    return unstack(values, empty)


def glcm_features(counts: np.ndarray, grey: np.ndarray, ng: int) -> FeatureValues | None:
    """:func:`glcm_features_stack` of one matrix."""
    return glcm_features_stack(counts[None], grey, ng)[0]


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLCM features of ``roi`` for every IBSI aggregation of the requested ``dims``."""
    check_dims(dims)
    distance = settings.glcm_distance
    levels = grey_levels(roi, settings, margin=distance)
    results = directional_aggregations(
        levels, dims, lambda voxels, offsets: cooccurrences(levels, voxels, offsets),
        lambda stack, _: glcm_features_stack(stack, levels.present, levels.n_levels), distance,
    )  # fmt: skip
    return feature_records(FAMILY, TABLE, results, "voxel pairs at the GLCM distance")
