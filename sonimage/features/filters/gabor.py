"""Gabor filter (IBSI 2, section 2.4.4; arXiv:2006.05470).

The 2-D kernel h(x, y) = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) exp(i 2 pi x' / lambda),
with x' = x cos(theta) + y sin(theta), y' = -x sin(theta) + y cos(theta) and x, y, sigma, lambda in voxels; the
response is the modulus of the complex convolution. It works in a plane: the axial plane, or in 3D (IBSI 2)
averaged over the three orthogonal planes. Rotation invariance pools the responses of the orientations
theta = 0, dtheta, ..., 2 pi - dtheta. The convolution runs by FFT on the image padded by the kernel's radius.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

from sonimage.features.filters.common import POOLING, check, pad

PLANES = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}  # numpy (row, column) axes: (y, x), (z, x), (z, y)


def kernel(sigma: float, lam: float, gamma: float, theta: float, radius: int) -> np.ndarray:
    """The complex Gabor kernel on a (2 radius + 1)^2 grid, rows y and columns x (voxel units)."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    xr = x * np.cos(theta) + y * np.sin(theta)
    yr = -x * np.sin(theta) + y * np.cos(theta)
    envelope = np.exp(-(xr * xr + gamma * gamma * yr * yr) / (2 * sigma * sigma))
    return envelope * np.exp(1j * 2 * np.pi * xr / lam)


def kernel_radius(sigma: float, gamma: float, truncate: float) -> int:
    """Kernel radius in voxels: ``truncate`` times the envelope's larger standard deviation."""
    return int(np.ceil(truncate * sigma * max(1.0, 1.0 / gamma)))


def plane_response(image: np.ndarray, spacing: float, axes: tuple[int, int], sigma_mm: float, lambda_mm: float,
                   gamma: float, thetas: list[float], pooling: str, boundary: str, truncate: float) -> np.ndarray:
    """Pooled modulus responses of the 2-D kernels in the plane of numpy ``axes`` (isotropic in-plane spacing).

    The image is padded by the kernel radius and transformed once; each orientation costs one inverse FFT."""
    sigma, lam = sigma_mm / spacing, lambda_mm / spacing
    radius = kernel_radius(sigma, gamma, truncate)
    width = [0, 0, 0]
    for a in axes:
        width[a] = radius
    padded = pad(np.asarray(image, dtype=np.float64), width, boundary)
    size = [sp_fft.next_fast_len(padded.shape[a] + 2 * radius) for a in axes]
    spectrum = sp_fft.fftn(padded, s=size, axes=axes)
    crop = [slice(None)] * 3
    for a in axes:
        crop[a] = slice(2 * radius, 2 * radius + image.shape[a])
    shape = [1, 1, 1]
    shape[axes[0]] = shape[axes[1]] = 2 * radius + 1
    out = None
    for theta in thetas:
        k = sp_fft.fftn(kernel(sigma, lam, gamma, theta, radius).reshape(shape), s=size, axes=axes)
        r = np.abs(sp_fft.ifftn(spectrum * k, axes=axes)[tuple(crop)])
        out = r if out is None else POOLING[pooling](out, r)
    return out / len(thetas) if pooling in ("average", "mean") else out


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, sigma_mm: float, lambda_mm: float,
          gamma: float = 1.0, theta: float = 0.0, boundary: str = "mirror", dims: str = "3D",
          rotation_invariant: bool = False, delta_theta: float = np.pi / 4, pooling: str = "average",
          truncate: float = 4.0) -> np.ndarray:
    """Gabor modulus response; ``theta`` and ``delta_theta`` in radians. ``dims='2D'``: axial plane only;
    ``'3D'``: the average of the axial, coronal and sagittal responses."""
    check(boundary, dims)
    if rotation_invariant:
        n = int(round(2 * np.pi / delta_theta))
        if not np.isclose(n * delta_theta, 2 * np.pi):
            raise ValueError(f"delta_theta must divide 2 pi, got {delta_theta}")
        # theta + pi conjugates the kernel, so its modulus response is theta's: half the turns give the same
        # average, maximum and minimum when they fall on the grid.
        half = n % 2 == 0 and pooling != "sum"
        thetas = [theta + i * delta_theta for i in range(n // 2 if half else n)]
    else:
        thetas = [theta]
    planes = ["axial"] if dims == "2D" else list(PLANES)
    out = np.zeros(np.shape(image))
    for p in planes:
        axes = PLANES[p]
        if not np.isclose(spacing[axes[0]], spacing[axes[1]]):
            raise ValueError(f"Gabor filter needs equal spacing in the {p} plane, got {spacing}")
        out += plane_response(image, spacing[axes[1]], axes, sigma_mm, lambda_mm, gamma, thetas, pooling,
                              boundary, truncate)
    return out / len(planes)


def reach(spacing: tuple[float, float, float], *, sigma_mm: float, gamma: float = 1.0, dims: str = "3D",
          truncate: float = 4.0, **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on."""
    r = [kernel_radius(sigma_mm / s, gamma, truncate) for s in spacing]
    return (0, r[1], r[2]) if dims == "2D" else tuple(r)
