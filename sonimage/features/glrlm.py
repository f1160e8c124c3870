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


def run_stack(levels: Levels, direction: Offset, by_slice: bool) -> np.ndarray:
    """Run counts of one direction: shape (padded z of the run's first voxel, Ng, longest possible run)
    ``by_slice``, else (1, Ng, longest possible run).

    A run starts at a ROI voxel whose predecessor along ``direction`` differs (or lies outside the ROI) and
    ends at one whose successor differs. ``direction`` is lexicographically positive, so its first nonzero
    component (axis ``a``) is +1 and, along each line, C order is the order of the coordinate on ``a``:
    grouping starts and ends by line with a stable sort pairs them.
    """
    values, coords = levels.values, levels.coords
    is_start = levels.neighbour_values(tuple(-c for c in direction)) != values
    is_end = levels.neighbour_values(direction) != values
    axis = next(k for k, c in enumerate(direction) if c)
    size = max(levels.array.shape)
    # Line identity: the coordinates the line has where its coordinate on axis a is 0.
    line = np.zeros(values.size, dtype=np.int64)
    for c, d in zip(coords, direction, strict=True):
        line = line * (3 * size) + (c - coords[axis] * d + size)
    start_order = np.argsort(line[is_start], kind="stable")
    end_order = np.argsort(line[is_end], kind="stable")
    lengths = coords[axis][is_end][end_order] - coords[axis][is_start][start_order] + 1
    key = (values[is_start][start_order] - 1) * size + lengths - 1
    nz = levels.array.shape[0] if by_slice else 1
    if by_slice:
        key += levels.z[is_start][start_order] * levels.n_levels * size
    counts = np.bincount(key, minlength=nz * levels.n_levels * size)
    return counts.reshape(nz, levels.n_levels, size).astype(np.float64)


def _columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return matrix, np.arange(1, matrix.shape[1] + 1)


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLRLM features of ``roi`` for every IBSI aggregation of the requested ``dims`` (runs at distance 1)."""
    check_dims(dims)
    levels = grey_levels(roi, settings, margin=1)
    results = directional_aggregations(levels, dims, run_stack, emphasis_fn(TABLE, _columns))
    return records(FAMILY, TABLE, results, "runs")
