"""The records every feature family shares: the ROI it reads, the settings it obeys, the values it returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class FeatureSettings:
    """How a feature value was made; travels with every output row.

    Discretisation is by fixed bin size (``bin_width``, lower bound ``bin_lower_bound``, which defaults to
    the re-segmentation range's lower bound, else the ROI minimum) or by fixed bin number (``bin_count``);
    exactly one of the two may be set. With neither, the intensities must already be integer grey levels (as in
    the IBSI digital phantom). The intensity-volume histogram has its own ``ivh_bin_width`` / ``ivh_bin_count``.

    ``spatial_autocorrelation`` off leaves Moran's I and Geary's C (morphology) NaN with a reason: exact over all
    voxel pairs, they are the costliest morphological features.

    Image processing before the features (IBSI 1, sections 2.4 to 2.6; all off by default, see
    :mod:`sonimage.features.processing`): ``voxel_size`` (mm) resamples to isotropic voxels (in-plane only with
    ``interpolate_in_plane``) by ``interpolation`` "linear" (trilinear) or "cubic" (tricubic spline), the mask
    by trilinear interpolation kept where its partial volume is at least ``mask_partial_volume``;
    ``round_intensities`` rounds the interpolated image to integers (CT). Re-segmentation keeps the voxels with
    intensities in [``resegment_min``, ``resegment_max``] and, with ``outlier_sd``, within mean ± k SD.
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
    ivh_bin_count: int | None = None
    peak_volume_ml: float = 1.0
    spatial_autocorrelation: bool = True
    voxel_size: float | None = None
    interpolation: str = "linear"
    interpolate_in_plane: bool = False
    mask_partial_volume: float = 0.5
    round_intensities: bool = False
    resegment_min: float | None = None
    resegment_max: float | None = None
    outlier_sd: float | None = None

    def __post_init__(self) -> None:
        if self.bin_width is not None and self.bin_count is not None:
            raise ValueError("choose fixed bin size (bin_width) or fixed bin number (bin_count), not both")
        if self.bin_width is not None and self.bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {self.bin_width}")
        if self.bin_count is not None and self.bin_count < 1:
            raise ValueError(f"bin_count must be at least 1, got {self.bin_count}")
        if self.ivh_bin_width is not None and self.ivh_bin_count is not None:
            raise ValueError("choose ivh_bin_width or ivh_bin_count, not both")
        if self.voxel_size is not None and not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be positive, got {self.voxel_size}")
        if self.interpolation not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', got {self.interpolation!r}")
        if not 0 < self.mask_partial_volume <= 1:
            raise ValueError(f"mask_partial_volume must lie in (0, 1], got {self.mask_partial_volume}")
        if self.outlier_sd is not None and not self.outlier_sd > 0:
            raise ValueError(f"outlier_sd must be positive, got {self.outlier_sd}")
        if None not in (self.resegment_min, self.resegment_max) and self.resegment_min > self.resegment_max:
            raise ValueError(f"resegment_min {self.resegment_min} exceeds resegment_max {self.resegment_max}")

    def as_dict(self) -> dict[str, float | int | None]:
        """Settings as a flat dict, for output rows and JSON."""
        return asdict(self)


@dataclass(frozen=True)
class Roi:
    """One lesion on its image: intensities (z, y, x), a boolean mask of the same shape, spacing (sz, sy, sx) mm.

    ``mask`` is IBSI's intensity mask; ``morph_mask`` the morphological mask where re-segmentation made the two
    differ (None: the same as ``mask``).
    """

    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    morph_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image.shape != self.mask.shape:
            raise ValueError(f"mask shape {self.mask.shape} differs from image shape {self.image.shape}")
        if self.image.ndim != 3:
            raise ValueError(f"expected a 3D image, got {self.image.ndim}D")
        if self.morph_mask is not None and self.morph_mask.shape != self.mask.shape:
            raise ValueError(f"morphological mask shape {self.morph_mask.shape} differs from {self.mask.shape}")

    @property
    def shape_mask(self) -> np.ndarray:
        """The morphological mask (the intensity mask unless re-segmentation removed voxels from it)."""
        return self.mask if self.morph_mask is None else self.morph_mask

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

    @classmethod
    def from_template(cls, template: dict[str, str | float], value: float, reason: str) -> Feature:
        """``Feature(**template, value=value, reason=reason)`` for a :func:`record_templates` entry, built by one
        dict copy, without the frozen dataclass's ``object.__setattr__`` per field (a lesion has hundreds)."""
        fields = template.copy()
        fields["value"], fields["reason"] = value, reason
        feature = object.__new__(cls)
        object.__setattr__(feature, "__dict__", fields)
        return feature


@lru_cache(maxsize=256)
def record_templates(family: str, table: tuple[tuple, ...], aggregation: str, code_at: int, name_at: int
                     ) -> tuple[dict[str, str | float], ...]:
    """The fields of the records of the rows of ``table`` (IBSI code at ``code_at``, name at ``name_at``) of
    ``family`` and ``aggregation``, value NaN and no reason, for :meth:`Feature.from_template` (the same for every
    lesion: cached)."""
    return tuple({"family": family, "name": row[name_at], "code": row[code_at], "value": math.nan,
                  "aggregation": aggregation, "reason": ""} for row in table)
