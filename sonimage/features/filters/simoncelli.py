"""Non-separable Simoncelli wavelet and its decomposition levels (IBSI 2, section 2.4.7; arXiv:2006.05470).

An isotropic band-pass filter defined in the Fourier domain: psi(w) = cos(pi/2 log2(2 |w| / pi)) for
pi/4 <= |w| <= pi, else 0 (w the angular frequency in radians per voxel); level j uses psi(2^(j-1) w). It is
applied by FFT, hence periodic; other boundary conditions pad the image first.
"""

from __future__ import annotations

import numpy as np

from sonimage.features.filters.common import WHOLE, check, fourier_filter


def transfer(frequencies: list[np.ndarray], level: int) -> np.ndarray:
    """The level-``level`` Simoncelli band-pass on a frequency grid."""
    w = np.sqrt(sum(f * f for f in frequencies)) * 2.0 ** (level - 1)
    band = (w >= np.pi / 4) & (w <= np.pi)
    with np.errstate(divide="ignore"):
        return np.where(band, np.cos(np.pi / 2 * np.log2(np.where(band, 2 * w / np.pi, 1.0))), 0.0)


def margin(level: int) -> int:
    """Padding for non-periodic boundaries, in voxels: twice the band-pass kernel's effective radius (8 voxels
    at level 1 hold > 99.9 % of its energy), doubling with each level."""
    return 16 * 2 ** (level - 1)


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, level: int = 1, boundary: str = "periodic",
          dims: str = "3D") -> np.ndarray:
    """Simoncelli response of ``image`` at decomposition ``level``."""
    check(boundary, dims)
    if level < 1:
        raise ValueError(f"decomposition level must be at least 1, got {level}")
    return fourier_filter(image, lambda f: transfer(f, level), dims, boundary, margin(level))


def reach(spacing: tuple[float, float, float], *, level: int = 1, dims: str = "3D", **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on: the whole image, since the filter runs by
    FFT on the image (its frequency grid depends on the image size)."""
    return (0 if dims == "2D" else WHOLE, WHOLE, WHOLE)
