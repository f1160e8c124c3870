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
    SlicedEntries,
    check_dims,
    feature_records,
    grey_levels,
    neighbourhood,
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
    total = np.zeros(levels.n_voxels, dtype=np.float64)
    count = np.zeros(levels.n_voxels, dtype=np.int64)
    for offset in neighbourhood(distance, planar):
        neighbour = levels.neighbour_values(offset)
        total += neighbour
        count += neighbour > 0
    has = count > 0
    difference = np.abs(levels.values[has] - total[has] / count[has])
    return levels.z[has], (levels.values[has], difference)


def ngtdm_features(entries: Entries, n_levels: int) -> FeatureValues | None:
    """The five IBSI NGTDM features from entries (grey level, tone difference), None when there are none."""
    level, difference = entries
    if level.size == 0:
        return None
    s = np.bincount(level - 1, weights=difference, minlength=n_levels)
    n = np.bincount(level - 1, minlength=n_levels)
    present = n > 0
    i = np.arange(1, n_levels + 1, dtype=np.float64)[present]
    p, s = n[present] / level.size, s[present]
    n_present = i.size
    di = i[:, None] - i[None, :]
    ps, s_total = p * s, s.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "QCDE": float(1 / ps.sum()),
            "65HE": float((p[:, None] * p[None, :] * di**2).sum() / (n_present * (n_present - 1)) * s_total / level.size),
            "NQ30": float(ps.sum() / np.abs((i * p)[:, None] - (i * p)[None, :]).sum()),
            "HDEZ": float((np.abs(di) * (ps[:, None] + ps[None, :]) / (p[:, None] + p[None, :])).sum() / level.size),
            "1X9X": float(((p[:, None] + p[None, :]) * di**2).sum() / s_total),
        }


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """NGTDM features of ``roi`` for each requested dimension (``3D``, ``2D`` averaged over slices, ``2.5D``)."""
    check_dims(dims)
    distance = settings.ngtdm_distance
    levels = grey_levels(roi, settings, margin=distance)
    results = volumetric_aggregations(
        levels,
        dims,
        lambda lv, planar: tone_differences(lv, distance, planar),
        lambda entries, _: ngtdm_features(entries, levels.n_levels),
    )
    return feature_records(FAMILY, TABLE, results, "voxels with neighbours")
