"""Grey level distance zone matrix features (IBSI 1, section 3.9).

A zone's distance is the smallest distance of its voxels to the ROI edge, counted in 6-connected (3D) or
4-connected in-slice (2D) steps on the ROI mask, voxels on the edge at distance 1; outside the image counts
as outside the ROI. After re-segmentation the distances are taken on the morphological mask, as IBSI 1
recommends (section 3.9), so holes left by re-segmentation do not create edges.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import Levels, emphasis_table, entry_family, zone_entries

FAMILY = "gldzm"

TABLE = emphasis_table(
    (
        ("0GBI", "Small distance emphasis"),
        ("MB4I", "Large distance emphasis"),
        ("S1RA", "Low grey level zone emphasis"),
        ("K26C", "High grey level zone emphasis"),
        ("RUVG", "Small distance low grey level emphasis"),
        ("DKNJ", "Small distance high grey level emphasis"),
        ("A7WM", "Large distance low grey level emphasis"),
        ("KLTH", "Large distance high grey level emphasis"),
        ("VFT7", "Grey level non-uniformity"),
        ("7HP3", "Normalised grey level non-uniformity"),
        ("V294", "Zone distance non-uniformity"),
        ("IATH", "Normalised zone distance non-uniformity"),
        ("VIWW", "Zone percentage"),
        ("QK93", "Grey level variance"),
        ("7WT1", "Zone distance variance"),
        ("GBDU", "Zone distance entropy"),
    )
)


def edge_distance_map(mask: np.ndarray, planar: bool) -> np.ndarray:
    """Distance to the edge of ``mask`` (zero-padded: outside is outside) of every voxel (1 on the edge, 0
    outside), 6-connected, or 4-connected per slice."""
    structure = ndimage.generate_binary_structure(3, 1)
    if planar:
        structure[0] = structure[2] = False
    return ndimage.distance_transform_cdt(np.pad(mask, 1), metric=structure)[1:-1, 1:-1, 1:-1]


def _zone_distances(distance: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray]:
    """Column function of the zones: each zone's smallest edge distance (``distance`` per ROI voxel)."""

    def column(labels: np.ndarray, n: int) -> np.ndarray:
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=n))[:-1]))
        return np.minimum.reduceat(distance[order], starts)

    return column


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLDZM features of ``roi`` for each requested dimension (``3D``, ``2D`` averaged over slices, ``2.5D``)."""
    linkage = settings.zone_linkage

    def distances(levels: Levels, planar: bool) -> np.ndarray:
        if roi.morph_mask is None:
            return edge_distance_map(levels.array > 0, planar).ravel()[levels.roi]
        return edge_distance_map(roi.morph_mask, planar)[roi.mask]

    return entry_family(
        FAMILY, TABLE, roi, settings, dims, linkage,
        lambda levels, planar: zone_entries(levels, linkage, planar, _zone_distances(distances(levels, planar))),
        "zones",
    )  # fmt: skip
