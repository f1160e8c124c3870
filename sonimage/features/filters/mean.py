"""Mean filter (IBSI 2, section 2.4.1; arXiv:2006.05470): the average over a cube (square in 2D) of
``support`` voxels per side."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sonimage.features.filters.common import NDIMAGE_MODES, check


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, support: int = 15, boundary: str = "mirror",
          dims: str = "3D") -> np.ndarray:
    """Mean-filtered ``image``; ``support`` is an odd number of voxels (IBSI 2 gives it in voxels)."""
    check(boundary, dims)
    if support < 1 or support % 2 == 0:
        raise ValueError(f"mean filter support must be an odd number of voxels, got {support}")
    size = (1 if dims == "2D" else support, support, support)
    return ndimage.uniform_filter(np.asarray(image, dtype=np.float64), size=size, mode=NDIMAGE_MODES[boundary])


def reach(spacing: tuple[float, float, float], *, support: int = 15, dims: str = "3D", **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on."""
    return (0 if dims == "2D" else support // 2, support // 2, support // 2)
