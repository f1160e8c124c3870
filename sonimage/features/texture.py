"""Shared machinery of the IBSI-1 texture families (IBSI 1, sections 3.6 to 3.11).

The discretised ROI is cropped to its bounding box with a zero margin and held as a flat array, so every
neighbour of a ROI voxel up to the margin is one fixed flat offset away; outside the ROI the level is 0.
Slices are z planes. The 2D/2.5D/3D aggregations of IBSI 1 (section 3.1.2):

- directional families (GLCM, GLRLM): one matrix per direction (13 in 3D, 4 in-plane in 2D) and slice;
  ``3D, averaged`` / ``3D, merged``, ``2D, averaged`` (per slice and direction) / ``2D, slice-merged``
  (directions merged per slice), ``2.5D, direction-merged`` (slices merged per direction) / ``2.5D, merged``;
- the other families: ``3D`` (volume), ``2D`` (per slice, averaged over slices), ``2.5D`` (slices merged).

Slices without ROI voxels are skipped; a slice or direction whose matrix is empty is left out of an average,
and a feature undefined for one slice or direction (NaN) is averaged over the others. Matrix rows are the grey
levels present in the ROI (empty rows change no IBSI feature), so memory follows the ROI, not the bin range;
``Ng`` (normalised inverse differences) is the bin count for fixed bin number, else the highest grey level.
Spacing is not used: IBSI expects texture on isotropic voxels (resampling, if wanted, comes before: see
:mod:`sonimage.features.processing`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi, record_templates
from sonimage.features.discretise import discretise
from sonimage.features.kernels import (
    binned_levels, bounding_box, dense_unique, emphasis_values, neighbour_sums, zones,
)

DIMS = ("2D", "2.5D", "3D")
DIRECTIONAL_AGGREGATIONS = {
    "3D": ("3D, averaged", "3D, merged"),
    "2D": ("2D, averaged", "2D, slice-merged"),
    "2.5D": ("2.5D, direction-merged", "2.5D, merged"),
}
EMPTY_REASON = "empty {family} matrix: the ROI (or slice) has no {what}"
UNDEFINED_REASON = "undefined for this ROI: zero denominator (e.g. a single grey level)"

Offset = tuple[int, int, int]
FeatureValues = dict[str, float]
# The feature values of one matrix in the order of its family's table (float64), None when the matrix is empty.
Row = np.ndarray | None
# A feature function maps (matrix, voxel count) to its row.
FeatureFn = Callable[[Any, int], Row]
# A stack feature function maps a stack of matrices (k, rows, columns) with a voxel count each (k,) to their values
# (k × features, in table order) and which matrices are empty (k,; their values are NaN).
StackFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def half_offsets(distance: int, planar: bool) -> list[Offset]:
    """Lexicographically positive offsets (dz, dy, dx) of Chebyshev norm 1..``distance`` (dz = 0 when ``planar``).

    With their negatives they cover the whole neighbourhood; at distance 1 they are IBSI's 13 (3D) or 4 (2D)
    directions.
    """
    r = range(-distance, distance + 1)
    return [
        (dz, dy, dx)
        for dz in ([0] if planar else r)
        for dy in r
        for dx in r
        if (dz, dy, dx) > (0, 0, 0)
    ]


def neighbourhood(distance: int, planar: bool) -> list[Offset]:
    """All offsets within Chebyshev ``distance`` except the centre (26 in 3D, 8 in 2D at distance 1)."""
    half = half_offsets(distance, planar)
    return half + [(-dz, -dy, -dx) for dz, dy, dx in half]


@dataclass(frozen=True)
class Levels:
    """Grey levels (1..``n_levels``, 0 outside the ROI) cropped to the ROI box with a zero ``margin``."""

    array: np.ndarray
    n_levels: int
    margin: int

    @cached_property
    def flat(self) -> np.ndarray:
        return self.array.ravel()

    @cached_property
    def roi(self) -> np.ndarray:
        """Flat indices of the ROI voxels, in C order."""
        return np.flatnonzero(self.flat)

    @cached_property
    def values(self) -> np.ndarray:
        """Grey level of each ROI voxel."""
        return self.flat[self.roi]

    @cached_property
    def present(self) -> np.ndarray:
        """The grey levels that occur in the ROI, ascending."""
        return counted_unique(self.values)[0]

    @cached_property
    def rank(self) -> np.ndarray:
        """Position of each grey level among :attr:`present`, indexed by grey level (compact matrices)."""
        rank = np.zeros(self.n_levels + 1, dtype=np.int64)
        rank[self.present] = np.arange(self.present.size)
        return rank

    @cached_property
    def ranked(self) -> np.ndarray:
        """Position of each ROI voxel's grey level among :attr:`present`."""
        return self.rank[self.values]

    @cached_property
    def z(self) -> np.ndarray:
        """Slice (padded z index) of each ROI voxel."""
        return self.roi // (self.array.shape[1] * self.array.shape[2])

    @cached_property
    def slice_counts(self) -> np.ndarray:
        """ROI voxels per padded z index."""
        return np.bincount(self.z, minlength=self.array.shape[0])

    @cached_property
    def slices(self) -> np.ndarray:
        """Padded z indices of the slices that hold ROI voxels."""
        return np.flatnonzero(self.slice_counts)

    @property
    def n_voxels(self) -> int:
        return int(self.roi.size)

    def steps(self, offsets: Sequence[Offset]) -> np.ndarray:
        """Flat index steps (int64) of ``offsets``; valid from ROI voxels for offsets up to the margin."""
        o = np.array(offsets, dtype=np.int64).reshape(-1, 3)
        if o.size and int(np.abs(o).max()) > self.margin:
            raise ValueError(f"offset {tuple(o[np.abs(o).max(axis=1).argmax()])} exceeds the crop margin {self.margin}")
        _, ny, nx = self.array.shape
        return o @ np.array([ny * nx, nx, 1], dtype=np.int64)

    @cached_property
    def _sums(self) -> dict[tuple[int, bool], tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        return {}

    def neighbour_sums(self, distance: int, planar: bool, alpha: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per ROI voxel over its neighbours within Chebyshev ``distance`` (in-slice when ``planar``): how many lie
        in the ROI, the sum of their grey levels and the NGLDM dependence count for ``alpha``
        (:func:`kernels.neighbour_sums`), read-only. Computed once per neighbourhood for NGTDM and NGLDM (a
        call without ``alpha`` takes any cached one's counts and sums)."""
        cached = self._sums.get((distance, planar))
        if cached is None or (alpha is not None and cached[0] != alpha):
            a = 0 if alpha is None else alpha
            sums = neighbour_sums(self.flat, self.roi, self.steps(neighbourhood(distance, planar)), a)
            for array in sums:
                array.setflags(write=False)
            cached = self._sums[(distance, planar)] = (a, sums)
        return cached[1]


# The last ROI's grey levels: the texture families of one ROI share them (and their cached voxel indices).
_LAST: list = []


def grey_levels(roi: Roi, settings: FeatureSettings, margin: int) -> Levels:
    """Discretise ``roi`` and crop it to its bounding box padded by ``margin`` zero voxels.

    The result for the same ``roi`` object, settings and margin is computed once (a one-entry cache holding the
    ROI, so its identity cannot be reused): :class:`Levels` is read-only.
    """
    if _LAST and _LAST[0] is roi and _LAST[1] == settings and _LAST[2] == margin:
        return _LAST[3]
    levels = _grey_levels(roi, settings, margin)
    _LAST[:] = [roi, settings, margin, levels]
    return levels


def _grey_levels(roi: Roi, settings: FeatureSettings, margin: int) -> Levels:
    mask = np.asarray(roi.mask, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return Levels(np.zeros((1, 1, 1), dtype=np.int64), 0, margin)
    inside = mask[box]
    lower = next((float(b) for b in (settings.bin_lower_bound, settings.resegment_min) if b is not None), None)
    if settings.bin_width is not None and lower is not None:  # the common case in one compiled pass
        padded, lowest, highest, bad = binned_levels(roi.image[box], inside, lower, float(settings.bin_width), margin)
    else:
        values = np.asarray(roi.image[box], dtype=np.float64)[inside]
        bad = int(values.size - np.isfinite(values).sum())
        if not bad:
            levels = discretise(values, settings)
            lowest, highest = int(levels.min()), int(levels.max())
            padded = np.zeros(tuple(n + 2 * margin for n in inside.shape), dtype=np.int64)
            padded[tuple(slice(margin, margin + n) for n in inside.shape)][inside] = levels
    if bad:
        raise ValueError("texture features: the ROI holds non-finite intensities (NaN or inf)")
    if lowest < 1:
        raise ValueError(
            f"texture features: grey levels must start at 1, got {lowest} (bin_lower_bound above the ROI minimum?)"
        )
    padded.setflags(write=False)
    return Levels(padded, max(settings.bin_count or 0, int(highest)), margin)


def zone_labels(levels: Levels, linkage: int, planar: bool) -> tuple[np.ndarray, int]:
    """Zones: groups of linked ROI voxels of equal grey level (Chebyshev ``linkage``; 26-/8-connected at 1).

    Returns the zone label of every ROI voxel (0..n-1) and n, by union-find (:func:`kernels.zones`); with
    ``planar`` zones never cross slices. ``levels`` needs a margin of at least ``linkage``.
    """
    return zones(levels.flat, levels.roi, levels.steps(half_offsets(linkage, planar)))


Entries = tuple[np.ndarray, np.ndarray]  # (grey level, column value) of each zone or voxel
# Entries of the non-directional families with the slice (padded z) of each: (z, entries).
SlicedEntries = tuple[np.ndarray, Entries]


def zone_entries(
    levels: Levels, linkage: int, planar: bool, column_of_zones: Callable[[np.ndarray, int], np.ndarray]
) -> SlicedEntries:
    """Zones as entries (grey level, ``column_of_zones(labels, n)``) with the slice of each."""
    labels, n = zone_labels(levels, linkage, planar)
    level, z = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    level[labels], z[labels] = levels.values, levels.z
    return z, (level, column_of_zones(labels, n))


def counted_unique(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)`` of non-negative integers, by counting instead of sorting when the
    largest value is at most a few times the size (grey levels, zone sizes, counts)."""
    x = np.asarray(x)
    if x.size and x.dtype.kind in "iu" and x.ndim == 1:
        present, inverse, counted = dense_unique(x)
        if counted:
            return present, inverse
    return np.unique(x, return_inverse=True)


def compact(levels: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts matrix (grey level × column value) of entries (``levels``, ``columns``), with the grey levels and
    column values that occur (rows and columns of the matrix)."""
    grey, row = counted_unique(levels)
    values, column = counted_unique(columns)
    counts = np.bincount(row * values.size + column, minlength=grey.size * values.size)
    return counts.reshape(grey.size, values.size).astype(np.float64), grey, values


Table = Sequence[tuple[str, str, str]]  # (IBSI code, readable name, emphasis kind)
EMPHASIS_KINDS = (
    "small", "large", "low", "high", "small_low", "small_high", "large_low", "large_high",
    "level_nonuniformity", "level_nonuniformity_norm", "column_nonuniformity", "column_nonuniformity_norm",
    "percentage", "level_variance", "column_variance", "entropy", "energy",
)  # fmt: skip


def emphasis_table(rows: Sequence[tuple[str, str]]) -> Table:
    """(code, name) rows in the order of :data:`EMPHASIS_KINDS` (IBSI's order) as a table with their kinds."""
    return tuple((code, name, kind) for (code, name), kind in zip(rows, EMPHASIS_KINDS[: len(rows)], strict=True))


def emphasis_fn(
    table: Table, counts_of: Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> FeatureFn:
    """Feature function of an emphasis family: ``counts_of(matrix)`` gives (counts, row grey levels, column values)."""

    def features(matrix: Any, n_voxels: int) -> Row:
        counts, grey, columns = counts_of(matrix)
        values, empty = emphasis_stack_fn(table, grey, columns)(counts[None], np.array([n_voxels]))
        return None if empty[0] else values[0]

    return features


def emphasis_stack_fn(table: Table, grey: np.ndarray, columns: np.ndarray) -> StackFn:
    """Feature function of an emphasis family over stacks of matrices with rows ``grey`` and columns ``columns``
    (all positive), one compiled pass per matrix (:func:`kernels.emphasis_values`).

    Kinds (:data:`EMPHASIS_KINDS`): small/large (1/j², j²), low/high (1/i², i²) and their products,
    non-uniformity of levels and of columns (plain and normalised), percentage (count / voxels), variances,
    entropy, energy. Empty rows and columns add nothing to any kind; an empty matrix is flagged empty.
    """

    grey, columns = np.asarray(grey, dtype=np.float64), np.asarray(columns, dtype=np.float64)
    index = [EMPHASIS_KINDS.index(kind) for _, _, kind in table]

    def features(stack: np.ndarray, n_voxels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stack = np.ascontiguousarray(stack, dtype=np.float64)
        values = emphasis_values(stack, grey, columns, np.asarray(n_voxels, dtype=np.float64))
        return values[:, index], stack.sum(axis=(-2, -1)) == 0

    return features


def _mean(values: np.ndarray) -> Row:
    """Feature-wise mean over the rows of ``values`` (the defined matrices' rows; NaN entries ignored per
    feature), None when there are none."""
    if values.size == 0:
        return None
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite, values, 0.0).sum(axis=0) / counts
    return np.where(counts > 0, means, np.nan)


def _defined(rows: Sequence[Row]) -> np.ndarray:
    """The rows that are not None, stacked."""
    return np.array([r for r in rows if r is not None], dtype=np.float64)


def by_slice(levels: Levels, z: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    """``values`` split by their slice ``z``, one part per ROI slice in the order of ``levels.slices``."""
    order = np.argsort(z, kind="stable")
    return np.split(values[order], np.searchsorted(z[order], levels.slices, side="right")[:-1])


# Counts of one set of ROI voxels (flat indices) along each of a list of directions: a stack (k, rows, columns).
CountsFn = Callable[[np.ndarray, list[Offset]], np.ndarray]


def directional_aggregations(
    levels: Levels,
    dims: Sequence[str],
    counts_fn: CountsFn,
    features: StackFn,
    distance: int = 1,
) -> dict[str, Row]:
    """IBSI aggregations of a directional family (GLCM, GLRLM).

    ``counts_fn(voxels, directions)`` gives the matrices of the pairs or runs starting at ``voxels`` along each
    direction; in-plane directions never cross slices, so the voxels of one slice (a contiguous part of
    ``levels.roi``, which is in C order) give its 2D matrices. The matrices of one volume's or one slice's
    directions are evaluated as one stack (memory: 13 matrices at a time). ``features(stack, n_voxels)`` receives
    the ROI voxel count times the number of merged directions (IBSI's rule for merged percentages).
    """
    if levels.n_voxels == 0:
        return {agg: None for dim in DIMS if dim in dims for agg in DIRECTIONAL_AGGREGATIONS[dim]}

    def directions(planar: bool) -> list[Offset]:
        return [(distance * dz, distance * dy, distance * dx) for dz, dy, dx in half_offsets(1, planar)]

    def each_and_merged(ms: np.ndarray, n: int) -> tuple[np.ndarray, Row]:
        # one stack: the matrices and, last, their sum (merged); the rows of the defined matrices, and the merged
        values, empty = features(np.concatenate((ms, ms.sum(axis=0)[None])),
                                 np.append(np.full(len(ms), n), n * len(ms)))
        return values[:-1][~empty[:-1]], None if empty[-1] else values[-1]

    n, out = levels.n_voxels, {}
    if "3D" in dims:
        each, out["3D, merged"] = each_and_merged(counts_fn(levels.roi, directions(False)), n)
        out["3D, averaged"] = _mean(each)
    if "2D" in dims:
        averaged, slice_merged = [], []
        ends = np.cumsum(levels.slice_counts)
        for z in levels.slices:
            count = int(levels.slice_counts[z])
            each, merged = each_and_merged(counts_fn(levels.roi[ends[z] - count : ends[z]], directions(True)), count)
            averaged.append(each)
            slice_merged.append(merged)
        out["2D, averaged"] = _mean(np.concatenate(averaged))
        out["2D, slice-merged"] = _mean(_defined(slice_merged))
    if "2.5D" in dims:
        each, out["2.5D, merged"] = each_and_merged(counts_fn(levels.roi, directions(True)), n)
        out["2.5D, direction-merged"] = _mean(each)
    return {agg: out[agg] for dim in DIMS if dim in dims for agg in DIRECTIONAL_AGGREGATIONS[dim]}


def volumetric_aggregations(
    levels: Levels,
    dims: Sequence[str],
    entries_fn: Callable[[Levels, bool], SlicedEntries],
    features: FeatureFn,
) -> dict[str, Row]:
    """IBSI aggregations ``3D``, ``2D`` and ``2.5D`` of a non-directional family.

    ``entries_fn(levels, planar)`` gives the entries of the whole ROI with the slice of each; with ``planar``
    neighbourhoods stay within slices, so those entries merged are the 2.5D matrix and split by slice the 2D ones.
    """
    out: dict[str, Row] = {}
    if levels.n_voxels == 0:
        return {dim: None for dim in DIMS if dim in dims}
    if "3D" in dims:
        out["3D"] = features(entries_fn(levels, False)[1], levels.n_voxels)
    if "2D" in dims or "2.5D" in dims:
        z, entries = entries_fn(levels, True)
        if "2D" in dims:
            per_slice = zip(*(by_slice(levels, z, e) for e in entries), strict=True)
            counts = levels.slice_counts[levels.slices]
            out["2D"] = _mean(_defined([features(m, int(c)) for m, c in zip(per_slice, counts, strict=True)]))
        if "2.5D" in dims:
            out["2.5D"] = features(entries, levels.n_voxels)
    return out


def feature_records(family: str, table: Sequence[tuple[str, str, Any]], results: dict[str, Row], empty_what: str
                    ) -> list[Feature]:
    """Feature records of every (aggregation, feature) in ``results`` (rows in ``table`` order), NaN with a reason
    where undefined."""
    out = []
    for aggregation, values in results.items():
        templates = record_templates(family, table, aggregation, 0, 1)
        if values is None:
            empty = EMPTY_REASON.format(family=family.upper(), what=empty_what)
            out += [Feature.from_template(template, math.nan, empty) for template in templates]
            continue
        for template, value in zip(templates, values.tolist(), strict=True):
            finite = math.isfinite(value)
            out.append(Feature.from_template(template, value if finite else math.nan,
                                             "" if finite else UNDEFINED_REASON))
    return out


def entry_family(
    family: str,
    table: Table,
    roi: Roi,
    settings: FeatureSettings,
    dims: Sequence[str],
    margin: int,
    entries_fn: Callable[[Levels, bool], SlicedEntries],
    empty_what: str,
) -> list[Feature]:
    """Records of a non-directional emphasis family (GLSZM, GLDZM, NGLDM) whose matrices are entries."""
    check_dims(dims)
    levels = grey_levels(roi, settings, margin)
    features = emphasis_fn(table, lambda entries: compact(*entries))
    return feature_records(family, table, volumetric_aggregations(levels, dims, entries_fn, features), empty_what)


def check_dims(dims: Sequence[str]) -> None:
    """Raise ValueError for a dimension outside 2D, 2.5D and 3D."""
    unknown = set(dims) - set(DIMS)
    if unknown:
        raise ValueError(f"unknown texture dimension(s) {sorted(unknown)}; choose from {DIMS}")
