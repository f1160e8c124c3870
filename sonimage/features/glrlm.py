"""Grey level run length matrix features (IBSI 1, section 3.7): runs along the 13 (3D) or 4 (2D) directions."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.kernels import run_counts
from sonimage.features.texture import (
    Levels,
    Offset,
    check_dims,
    directional_aggregations,
    emphasis_stack_fn,
    emphasis_table,
    feature_records,
    grey_levels,
)

FAMILY = "glrlm"

TABLE = emphasis_table(
    (
        ("22OV", "Short runs emphasis"),
        ("W4KF", "Long runs emphasis"),
        ("V3SW", "Low grey level run emphasis"),
        ("G3QZ", "High grey level run emphasis"),
        ("HTZT", "Short run low grey level emphasis"),
        ("GD3A", "Short run high grey level emphasis"),
        ("IVPO", "Long run low grey level emphasis"),
        ("3KUM", "Long run high grey level emphasis"),
        ("R5YN", "Grey level non-uniformity"),
        ("OVBL", "Normalised grey level non-uniformity"),
        ("W92Y", "Run length non-uniformity"),
        ("IC23", "Normalised run length non-uniformity"),
        ("9ZK5", "Run percentage"),
        ("8CE5", "Grey level variance"),
        ("SXLW", "Run length variance"),
        ("HJ9O", "Run entropy"),
    )
)


def runs(levels: Levels, voxels: np.ndarray, directions: list[Offset]) -> np.ndarray:
    """Run length matrices (k × P × longest run), one per direction, of the runs starting at ``voxels``.

    Rows are the P grey levels present in the ROI (``levels.present``), columns run lengths 1, 2, ... Each
    direction is lexicographically positive and a run leaves the box only through the zero margin, so a run
    starts where the voxel one step back holds another level and ends before the first such voxel ahead.
    """
    return run_counts(levels.flat, voxels, levels.rank, levels.steps(directions), levels.present.size,
                      _longest(levels))


def _longest(levels: Levels) -> int:
    """Longest possible run: the largest box extent."""
    return max(levels.array.shape)


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLRLM features of ``roi`` for every IBSI aggregation of the requested ``dims`` (runs at distance 1)."""
    check_dims(dims)
    levels = grey_levels(roi, settings, margin=1)
    features = emphasis_stack_fn(TABLE, levels.present, np.arange(1, _longest(levels) + 1))
    results = directional_aggregations(levels, dims, lambda voxels, directions: runs(levels, voxels, directions),
                                       features)
    return feature_records(FAMILY, TABLE, results, "runs")
