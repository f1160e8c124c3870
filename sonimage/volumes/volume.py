"""An image on a physical grid: the one in-memory currency between readers, stores and features (ground floor:
it imports no other stage), and the error of a mask that cannot be placed on such a grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk


class MaskError(ValueError):
    """A mask that cannot be placed on the image: unreadable, unknown ROI, another grid, off the grid."""


@dataclass(frozen=True)
class Volume:
    """A 3D image with its geometry, ITK conventions.

    ``array`` has shape (z, y, x): slice, row, column. ``spacing`` is (sz, sy, sx) in mm, matching the
    array axes. ``origin`` is the LPS position (x, y, z) in mm of the centre of voxel [0, 0, 0].
    ``direction`` is the 3x3 ITK direction matrix: its columns are the LPS unit vectors along increasing
    column (x), row (y) and slice (z) index. The physical point of voxel [k, j, i] is
    ``origin + direction @ (i * sx, j * sy, k * sz)``.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL."""
        return float(np.prod(self.spacing)) / 1000.0

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when both volumes share shape, spacing, origin and direction."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=1e-4)
        )

    def index_to_physical(self, kji: np.ndarray) -> np.ndarray:
        """LPS points (N, 3) of voxel indices (N, 3) given as (k, j, i)."""
        kji = np.asarray(kji, dtype=float)
        steps = kji[:, ::-1] * np.asarray(self.spacing[::-1])
        return np.asarray(self.origin) + steps @ np.asarray(self.direction).reshape(3, 3).T

    def physical_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (N, 3) as (k, j, i) of LPS points (N, 3)."""
        rel = np.asarray(xyz, dtype=float) - np.asarray(self.origin)
        ijk = rel @ np.asarray(self.direction).reshape(3, 3) / np.asarray(self.spacing[::-1])
        return ijk[:, ::-1]

    def to_sitk(self) -> sitk.Image:
        """The same image as a SimpleITK image."""
        img = sitk.GetImageFromArray(self.array)
        img.SetSpacing(tuple(float(s) for s in self.spacing[::-1]))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction))
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, attrs: dict[str, Any] | None = None) -> Volume:
        """A volume from a SimpleITK image."""
        return cls(
            array=sitk.GetArrayFromImage(img),
            spacing=tuple(float(s) for s in img.GetSpacing()[::-1]),
            origin=tuple(float(o) for o in img.GetOrigin()),
            direction=tuple(float(d) for d in img.GetDirection()),
            attrs=dict(attrs or {}),
        )
