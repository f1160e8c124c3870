"""Laplacian of Gaussian (IBSI 2, section 2.4.2; arXiv:2006.05470).

The kernel is the sampled analytic LoG, g(x) = -1/sigma^2 (1/(sigma sqrt(2 pi)))^D (D - |x|^2/sigma^2)
exp(-|x|^2 / (2 sigma^2)), with sigma in voxels (sigma_mm / spacing), cut at ``truncate`` sigma. It equals
the sum over axes d of g''(x_d) prod_{e != d} g(x_e), so it is applied as D separable convolutions.
"""

from __future__ import annotations

import numpy as np

from sonimage.features.filters.common import check, filter_axes, separable


def gaussian_1d(sigma: float, truncate: float) -> tuple[np.ndarray, np.ndarray]:
    """The sampled 1-D Gaussian and its second derivative, ``sigma`` in voxels, radius
    floor(truncate * sigma + 0.5)."""
    r = int(np.floor(truncate * sigma + 0.5))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-x * x / (2 * sigma * sigma)) / (sigma * np.sqrt(2 * np.pi))
    return g, (x * x / sigma**4 - 1 / sigma**2) * g


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, sigma_mm: float, truncate: float = 4.0,
          boundary: str = "mirror", dims: str = "3D") -> np.ndarray:
    """LoG response of ``image``; ``sigma_mm`` in mm, per axis converted with ``spacing`` (z, y, x)."""
    check(boundary, dims)
    axes = filter_axes(dims)
    kernels = {a: gaussian_1d(sigma_mm / spacing[a], truncate) for a in axes}
    out = np.zeros(np.shape(image))
    for d in axes:
        out += separable(image, {a: kernels[a][1 if a == d else 0] for a in axes}, boundary)
    return out


def reach(spacing: tuple[float, float, float], *, sigma_mm: float, truncate: float = 4.0, dims: str = "3D",
          **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on."""
    r = [int(np.floor(truncate * sigma_mm / s + 0.5)) for s in spacing]
    return (0, r[1], r[2]) if dims == "2D" else tuple(r)
