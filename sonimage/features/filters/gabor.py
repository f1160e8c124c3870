"""Gabor filter (IBSI 2, section 2.4.4; arXiv:2006.05470).

The 2-D kernel h(x, y) = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) exp(i 2 pi x' / lambda),
with x' = x cos(theta) + y sin(theta), y' = -x sin(theta) + y cos(theta) and x, y, sigma, lambda in voxels; the
response is the modulus of the complex convolution. It works in a plane: the axial plane, or in 3D (IBSI 2)
averaged over the three orthogonal planes. Rotation invariance pools the responses of the orientations
theta = 0, dtheta, ..., 2 pi - dtheta. The convolution runs by FFT on the image padded by the kernel's radius.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from sonimage.features.filters.common import POOLING, check, pad, unpad

PLANES = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}  # numpy (row, column) axes: (y, x), (z, x), (z, y)


def kernel(sigma: float, lam: float, gamma: float, theta: float, radius: int) -> np.ndarray:
    """The complex Gabor kernel on a (2 radius + 1)^2 grid, rows y and columns x (voxel units)."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    xr = x * np.cos(theta) + y * np.sin(theta)
    yr = -x * np.sin(theta) + y * np.cos(theta)
    envelope = np.exp(-(xr * xr + gamma * gamma * yr * yr) / (2 * sigma * sigma))
    return envelope * np.exp(1j * 2 * np.pi * xr / lam)


def plane_response(image: np.ndarray, spacing: float, axes: tuple[int, int], sigma_mm: float, lambda_mm: float,
                   gamma: float, thetas: list[float], pooling: str, boundary: str, truncate: float) -> np.ndarray:
    """Pooled modulus responses of the 2-D kernels in the plane of numpy ``axes`` (isotropic in-plane spacing)."""
    sigma, lam = sigma_mm / spacing, lambda_mm / spacing
    radius = int(np.ceil(truncate * sigma * max(1.0, 1.0 / gamma)))
    width = [0, 0, 0]
    for a in axes:
        width[a] = radius
    padded = pad(np.asarray(image, dtype=np.float64), width, boundary)
    shape = [1, 1, 1]
    shape[axes[0]] = shape[axes[1]] = 2 * radius + 1
    out = None
    for theta in thetas:
        k = kernel(sigma, lam, gamma, theta, radius).reshape(shape)
        r = np.abs(unpad(signal.fftconvolve(padded, k, mode="same", axes=axes), width))
        out = r if out is None else POOLING[pooling](out, r)
    return out / len(thetas) if pooling in ("average", "mean") else out


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, sigma_mm: float, lambda_mm: float,
          gamma: float = 1.0, theta: float = 0.0, boundary: str = "mirror", dims: str = "2D",
          rotation_invariant: bool = False, delta_theta: float = np.pi / 4, pooling: str = "average",
          truncate: float = 4.0) -> np.ndarray:
    """Gabor modulus response; ``theta`` and ``delta_theta`` in radians. ``dims='2D'``: axial plane only;
    ``'3D'``: the average of the axial, coronal and sagittal responses."""
    check(boundary, "3D")
    if dims not in ("2D", "3D"):
        raise ValueError(f"dims must be '3D' or '2D', got {dims!r}")
    if rotation_invariant:
        n = int(round(2 * np.pi / delta_theta))
        thetas = [theta + i * delta_theta for i in range(n)]
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
