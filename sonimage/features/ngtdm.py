"""Neighbourhood grey tone difference matrix features (IBSI 1, section 3.10).

The neighbourhood of a voxel is every ROI voxel within Chebyshev ``ngtdm_distance`` (in-slice in 2D), the
centre excluded. Voxels without any neighbour in the ROI take no part (IBSI's ``N_v,c`` and ``n_i``).
"""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import (
    Entries,
    FeatureValues,
    Levels,
    Row,
    SlicedEntries,
    check_dims,
    counted_unique,
    feature_records,
    grey_levels,
    volumetric_aggregations,
)

FAMILY = "ngtdm"

TABLE: tuple[tuple[str, str], ...] = (
    ("QCDE", "Coarseness"),
    ("65HE", "Contrast"),
    ("NQ30", "Busyness"),
    ("HDEZ", "Complexity"),
    ("1X9X", "Strength"),
)


def tone_differences(levels: Levels, distance: int, planar: bool) -> SlicedEntries:
    """Entries (grey level, |level − neighbourhood mean|) of the ROI voxels with neighbours, with their slice."""
    count, total, _ = levels.neighbour_sums(distance, planar)
    has = count > 0
    difference = np.abs(levels.values[has] - total[has] / count[has])
    return levels.z[has], (levels.values[has], difference)


COMPLEXITY_BLOCK = 1024  # grey levels per block of the pairwise complexity sum (memory bound)


def ngtdm_features(entries: Entries) -> FeatureValues | None:
    """The five IBSI NGTDM features from entries (grey level, tone difference), None when there are none.

    Sums over pairs of present grey levels use closed forms (contrast, strength) or sorting (busyness); only
    complexity is pairwise, summed in blocks, so memory stays linear in the number of grey levels.
    """
    level, difference = entries
    if level.size == 0:
        return None
    grey, index = counted_unique(level)
    i = grey.astype(np.float64)
    p = np.bincount(index) / level.size
    s = np.bincount(index, weights=difference)
    n_present, ps, s_total = i.size, p * s, s.sum()
    m1, m2 = float(p @ i), float(p @ i**2)  # moments of the grey-level distribution
    pairwise_p_sq = 2 * (m2 - m1**2)  # sum_ij p_i p_j (i - j)^2
    pairwise_sq = 2 * (n_present * m2 - 2 * m1 * i.sum() + i @ i)  # sum_ij (p_i + p_j) (i - j)^2
    ip = np.sort(i * p)
    abs_ip = 2 * float(ip @ (2 * np.arange(n_present) - n_present + 1))  # sum_ij |i p_i - j p_j|
    complexity = sum(
        float((np.abs(i[k : k + COMPLEXITY_BLOCK, None] - i) * (ps[k : k + COMPLEXITY_BLOCK, None] + ps)
               / (p[k : k + COMPLEXITY_BLOCK, None] + p)).sum())
        for k in range(0, n_present, COMPLEXITY_BLOCK)
    )  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "QCDE": float(1 / ps.sum()),
            "65HE": float(pairwise_p_sq / np.float64(n_present * (n_present - 1)) * s_total / level.size),
            "NQ30": float(ps.sum() / np.float64(abs_ip)),
            "HDEZ": complexity / level.size,
            "1X9X": float(pairwise_sq / s_total),
        }


def _row(values: FeatureValues | None) -> Row:
    """``values`` in :data:`TABLE` order."""
    return None if values is None else np.array([values[code] for code, _ in TABLE])


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """NGTDM features of ``roi`` for each requested dimension (``3D``, ``2D`` averaged over slices, ``2.5D``)."""
    check_dims(dims)
    distance = settings.ngtdm_distance
    levels = grey_levels(roi, settings, margin=distance)
    results = volumetric_aggregations(
        levels,
        dims,
        lambda lv, planar: tone_differences(lv, distance, planar),
        lambda entries, _: _row(ngtdm_features(entries)),
    )
    return feature_records(FAMILY, TABLE, results, "voxels with neighbours")
