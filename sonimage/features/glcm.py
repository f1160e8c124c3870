"""Grey level co-occurrence matrix features (IBSI 1, section 3.6): symmetric, at Chebyshev distance ``glcm_distance``."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.kernels import glcm_values, pair_counts
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


def cooccurrences(levels: Levels, voxels: np.ndarray, offsets: list[Offset]) -> np.ndarray:
    """One-way co-occurrence matrices (k × P × P) of the ROI voxel pairs (voxel, voxel + offset) starting at
    ``voxels`` (flat indices), one per offset.

    Rows and columns are the P grey levels present in the ROI (``levels.present``), so memory follows the
    levels that occur, not the discretisation range. Counted one way; :func:`glcm_features` symmetrises
    (IBSI's symmetric GLCM counts both orders).
    """
    return pair_counts(levels.flat, voxels, levels.rank, levels.steps(offsets), levels.present.size)


def glcm_features_stack(counts: np.ndarray, grey: np.ndarray, ng: int) -> tuple[np.ndarray, np.ndarray]:
    """The 25 IBSI GLCM features (k × 25, in :data:`TABLE` order) of each one-way co-occurrence matrix of the stack
    ``counts`` (k × P × P) and which matrices are empty (one compiled pass per matrix: :func:`kernels.glcm_values`).

    Matrices are symmetrised; rows and columns are the grey levels ``grey`` (levels absent from a matrix
    add nothing); ``ng`` is the number of grey levels of the discretisation (the normalised inverse differences
    use it). The matrices are symmetric, so both marginals are equal (one mean, one variance) and the
    information correlations reduce to HXY1 = HXY2 = 2 HX.
    """
    return glcm_values(np.ascontiguousarray(counts, dtype=np.float64), np.asarray(grey, dtype=np.int64), float(ng))


def glcm_features(counts: np.ndarray, grey: np.ndarray, ng: int) -> FeatureValues | None:
    """:func:`glcm_features_stack` of one matrix, by IBSI code (None when it is empty)."""
    values, empty = glcm_features_stack(counts[None], grey, ng)
    return None if empty[0] else {code: float(v) for (code, _), v in zip(TABLE, values[0], strict=True)}


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
