"""Grey level distance zone matrix features (IBSI 1, section 3.9).

A zone's distance is the smallest distance of its voxels to the ROI edge, counted in 6-connected (3D) or
4-connected in-slice (2D) steps on the ROI mask, voxels on the edge at distance 1; outside the image counts
as outside the ROI.
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


def edge_distance(levels: Levels, planar: bool) -> np.ndarray:
    """Distance to the ROI edge of every ROI voxel (1 on the edge), 6-connected, or 4-connected per slice."""
    structure = ndimage.generate_binary_structure(3, 1)
    if planar:
        structure[0] = structure[2] = False
    distance = ndimage.distance_transform_cdt(levels.array > 0, metric=structure)
    return distance.ravel()[levels.roi]


def _zone_distances(levels: Levels, planar: bool) -> Callable[[np.ndarray, int], np.ndarray]:
    """Column function of the zones: each zone's smallest edge distance."""
    distance = edge_distance(levels, planar)

    def column(labels: np.ndarray, n: int) -> np.ndarray:
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=n))[:-1]))
        return np.minimum.reduceat(distance[order], starts)

    return column


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLDZM features of ``roi`` for each requested dimension (``3D``, ``2D`` averaged over slices, ``2.5D``)."""
    linkage = settings.zone_linkage
    return entry_family(
        FAMILY, TABLE, roi, settings, dims, linkage,
        lambda levels, planar: zone_entries(levels, linkage, planar, _zone_distances(levels, planar)), "zones",
    )  # fmt: skip
