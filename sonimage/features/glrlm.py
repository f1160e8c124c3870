"""Grey level run length matrix features (IBSI 1, section 3.7): runs along the 13 (3D) or 4 (2D) directions."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import (
    Levels,
    Offset,
    check_dims,
    directional_aggregations,
    emphasis_fn,
    emphasis_table,
    grey_levels,
    records,
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


def run_stack(levels: Levels, direction: Offset) -> np.ndarray:
    """Run counts of one direction per slice of the run's first voxel: shape (padded z, Ng, longest possible run).

    A run starts at a ROI voxel whose predecessor along ``direction`` differs (or lies outside the ROI) and
    ends at one whose successor differs. ``direction`` is lexicographically positive, so its first nonzero
    component ``a`` is +1 and the coordinate along axis ``a`` orders each line; sorting starts and ends by
    (line, position) pairs them.
    """
    shape = levels.array.shape
    values = levels.values
    starts = levels.roi[levels.neighbour_values(tuple(-c for c in direction)) != values]
    ends = levels.roi[levels.neighbour_values(direction) != values]
    axis = next(k for k, c in enumerate(direction) if c)
    size, extent = max(shape), max(shape) + 1

    def line_key(flat: np.ndarray) -> np.ndarray:
        coords = np.unravel_index(flat, shape)
        t = coords[axis]
        key = np.zeros(flat.size, dtype=np.int64)
        for c, d in zip(coords, direction, strict=True):
            key = key * (3 * size) + (c - t * d + size)
        return key * extent + t

    start_key, end_key = line_key(starts), line_key(ends)
    order = np.argsort(start_key, kind="stable")
    lengths = np.sort(end_key) - start_key[order] + 1
    first = starts[order]
    n_levels, nz = levels.n_levels, shape[0]
    z = first // (shape[1] * shape[2])
    key = (z * n_levels + levels.flat[first] - 1) * size + lengths - 1
    counts = np.bincount(key, minlength=nz * n_levels * size)
    return counts.reshape(nz, n_levels, size).astype(np.float64)


def _columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return matrix, np.arange(1, matrix.shape[1] + 1)


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLRLM features of ``roi`` for every IBSI aggregation of the requested ``dims`` (runs at distance 1)."""
    check_dims(dims)
    levels = grey_levels(roi, settings, margin=1)
    results = directional_aggregations(levels, dims, run_stack, emphasis_fn(TABLE, _columns))
    return records(FAMILY, TABLE, results, "runs")
