"""The records every feature family shares: the ROI it reads, the settings it obeys, the values it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureSettings:
    """How a feature value was made; travels with every output row.

    Discretisation is by fixed bin size (``bin_width``, lower bound ``bin_lower_bound``, which defaults to
    the ROI minimum) or by fixed bin number (``bin_count``); exactly one of the two may be set. With
    neither, the intensities must already be integer grey levels (as in the IBSI digital phantom).
    """

    bin_width: float | None = None
    bin_lower_bound: float | None = None
    bin_count: int | None = None
    glcm_distance: int = 1
    glrlm_distance: int = 1
    ngtdm_distance: int = 1
    ngldm_distance: int = 1
    ngldm_alpha: int = 0
    zone_linkage: int = 1
    ivh_bin_width: float | None = None
    peak_volume_ml: float = 1.0

    def __post_init__(self) -> None:
        if self.bin_width is not None and self.bin_count is not None:
            raise ValueError("choose fixed bin size (bin_width) or fixed bin number (bin_count), not both")
        if self.bin_width is not None and self.bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {self.bin_width}")
        if self.bin_count is not None and self.bin_count < 1:
            raise ValueError(f"bin_count must be at least 1, got {self.bin_count}")

    def as_dict(self) -> dict[str, float | int | None]:
        """Settings as a flat dict, for output rows and JSON."""
        return asdict(self)


@dataclass(frozen=True)
class Roi:
    """One lesion on its image: intensities (z, y, x), a boolean mask of the same shape, spacing (sz, sy, sx) mm."""

    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.image.shape != self.mask.shape:
            raise ValueError(f"mask shape {self.mask.shape} differs from image shape {self.image.shape}")
        if self.image.ndim != 3:
            raise ValueError(f"expected a 3D image, got {self.image.ndim}D")

    @property
    def values(self) -> np.ndarray:
        """Intensities of the voxels inside the mask (float64)."""
        return self.image[self.mask].astype(np.float64)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³."""
        return float(np.prod(self.spacing))


@dataclass(frozen=True)
class Feature:
    """One feature value with its IBSI identity. ``reason`` says why a value is NaN."""

    family: str
    name: str
    code: str
    value: float
    aggregation: str = ""
    reason: str = ""
