"""Neighbouring grey level dependence matrix features (IBSI 1, section 3.11).

A voxel's dependence count is 1 plus the number of ROI voxels within Chebyshev ``ngldm_distance`` (in-slice in
2D) whose grey level differs from its own by at most ``ngldm_alpha``.
"""

from __future__ import annotations


from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import Levels, SlicedEntries, emphasis_table, entry_family

FAMILY = "ngldm"

TABLE = emphasis_table(
    (
        ("SODN", "Low dependence emphasis"),
        ("IMOQ", "High dependence emphasis"),
        ("TL9H", "Low grey level count emphasis"),
        ("OAE7", "High grey level count emphasis"),
        ("EQ3F", "Low dependence low grey level emphasis"),
        ("JA6D", "Low dependence high grey level emphasis"),
        ("NBZI", "High dependence low grey level emphasis"),
        ("9QMG", "High dependence high grey level emphasis"),
        ("FP8K", "Grey level non-uniformity"),
        ("5SPA", "Normalised grey level non-uniformity"),
        ("Z87G", "Dependence count non-uniformity"),
        ("OKJI", "Normalised dependence count non-uniformity"),
        ("6XV8", "Dependence count percentage"),
        ("1PFV", "Grey level variance"),
        ("DNX2", "Dependence count variance"),
        ("FCBV", "Dependence count entropy"),
        ("CAS9", "Dependence count energy"),
    )
)


def dependences(levels: Levels, distance: int, alpha: int, planar: bool) -> SlicedEntries:
    """Entries (grey level, dependence count) of every ROI voxel, with its slice."""
    _, _, count = levels.neighbour_sums(distance, planar, alpha)
    return levels.z, (levels.values, count)


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """NGLDM features of ``roi`` for each requested dimension (``3D``, ``2D`` averaged over slices, ``2.5D``)."""
    distance, alpha = settings.ngldm_distance, settings.ngldm_alpha
    return entry_family(
        FAMILY, TABLE, roi, settings, dims, distance,
        lambda levels, planar: dependences(levels, distance, alpha, planar), "voxels",
    )  # fmt: skip
