"""Grey level size zone matrix features (IBSI 1, section 3.8): zones linked at Chebyshev ``zone_linkage``."""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.texture import emphasis_table, entry_family, zone_entries

FAMILY = "glszm"

TABLE = emphasis_table(
    (
        ("5QRC", "Small zone emphasis"),
        ("48P8", "Large zone emphasis"),
        ("XMSY", "Low grey level zone emphasis"),
        ("5GN9", "High grey level zone emphasis"),
        ("5RAI", "Small zone low grey level emphasis"),
        ("HW1V", "Small zone high grey level emphasis"),
        ("YH51", "Large zone low grey level emphasis"),
        ("J17V", "Large zone high grey level emphasis"),
        ("JNSA", "Grey level non-uniformity"),
        ("Y1RO", "Normalised grey level non-uniformity"),
        ("4JP3", "Zone size non-uniformity"),
        ("VB3A", "Normalised zone size non-uniformity"),
        ("P30P", "Zone percentage"),
        ("BYLV", "Grey level variance"),
        ("3NSA", "Zone size variance"),
        ("GU8N", "Zone size entropy"),
    )
)


def _zone_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Column function of the zones: each zone's voxel count."""
    return np.bincount(labels, minlength=n)


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """GLSZM features of ``roi`` for each requested dimension (``3D``, ``2D`` averaged over slices, ``2.5D``)."""
    linkage = settings.zone_linkage
    return entry_family(
        FAMILY, TABLE, roi, settings, dims, linkage,
        lambda levels, planar: zone_entries(levels, linkage, planar, _zone_sizes), "zones",
    )  # fmt: skip
