"""Grey level run length matrix features (IBSI 1, section 3.7): runs along the 13 (3D) or 4 (2D) directions."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import (
    Levels,
    Offset,
    check_dims,
    directional_aggregations,
    emphasis_stack_fn,
    emphasis_table,
    feature_records,
    grey_levels,
    half_offsets,
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


def runs(levels: Levels, direction: Offset) -> tuple[np.ndarray, np.ndarray]:
    """(slice of the first voxel, index into the P × longest-run matrix) of every run along ``direction``.

    Rows are the P grey levels present in the ROI (``levels.present``). See :func:`all_runs`.
    """
    return all_runs(levels, (direction,))[direction]


def all_runs(levels: Levels, directions: tuple[Offset, ...]) -> dict[Offset, tuple[np.ndarray, np.ndarray]]:
    """:func:`runs` of each of ``directions``, found in one pass over all of them.

    Each direction is lexicographically positive, so its flat step ``k`` is positive and each line of the
    direction is a class of flat indices modulo ``k`` in increasing order; a line leaves the box only through
    the zero margin, so runs never wrap. Laying the flat array out as rows of ``k`` and reading it column by
    column puts every line in one sequence ending in a zero; the sequences of all directions, joined, are cut
    into runs at once: the maximal segments of one nonzero grey level.
    """
    size = levels.flat.size
    steps = [levels.step(d) for d in directions]
    rows = [-(-size // k) + 1 for k in steps]  # at least one row of zeros ends every column
    dtype = np.min_scalar_type(levels.n_levels)
    sequences = []
    for k, r in zip(steps, rows):
        grid = np.zeros(r * k, dtype=dtype)
        grid[:size] = levels.flat
        sequences.append(grid.reshape(r, k).T.ravel())
    sequence = np.concatenate(sequences)
    bases = np.cumsum([0] + [s.size for s in sequences])
    first = np.concatenate(([0], np.flatnonzero(sequence[1:] != sequence[:-1]) + 1))
    lengths = np.diff(np.append(first, sequence.size))
    level = sequence[first].astype(np.int64)
    run = level > 0
    first, lengths, level = first[run], lengths[run], level[run]
    cut = np.searchsorted(first, bases)
    index = levels.rank[level] * _longest(levels) + lengths - 1
    plane = levels.array.shape[1] * levels.array.shape[2]
    out = {}
    for d, k, r, base, lo, hi in zip(directions, steps, rows, bases, cut[:-1], cut[1:]):
        position = first[lo:hi] - base
        out[d] = ((position % r) * k + position // r) // plane, index[lo:hi]
    return out


def _longest(levels: Levels) -> int:
    """Longest possible run: the largest box extent."""
    return max(levels.array.shape)


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLRLM features of ``roi`` for every IBSI aggregation of the requested ``dims`` (runs at distance 1)."""
    check_dims(dims)
    levels = grey_levels(roi, settings, margin=1)
    shape = (levels.present.size, _longest(levels))
    lengths = np.arange(1, shape[1] + 1)
    features = emphasis_stack_fn(TABLE, levels.present, lengths)
    found = all_runs(levels, tuple(half_offsets(1, "3D" not in dims))) if levels.n_voxels else {}
    results = directional_aggregations(levels, dims, lambda _, direction: found[direction], shape, features)
    return feature_records(FAMILY, TABLE, results, "runs")
