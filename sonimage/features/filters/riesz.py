"""Riesz transform of a filter's response (IBSI 2, section 2.4.8; arXiv:2006.05470).

The Riesz transform of order l = (l_x, l_y, l_z) multiplies the image's spectrum by
sqrt(|l|! / (l_x! l_y! l_z!)) prod_d (-i w_d / |w|)^(l_d); applied to a Laplacian-of-Gaussian or Simoncelli
response it gives their directional (steerable) variants. Computed by FFT on the image padded by the boundary
condition (periodic: not padded).
"""

from __future__ import annotations

from math import factorial

import numpy as np

from sonimage.features.filters import log, simoncelli
from sonimage.features.filters.common import check, filter_axes, fourier_filter


def transfer(frequencies: list[np.ndarray], order: tuple[int, ...]) -> np.ndarray:
    """The Riesz multiplier of ``order`` (x, y(, z)) on a frequency grid given in the same order."""
    norm = np.sqrt(sum(f * f for f in frequencies))
    safe = np.where(norm > 0, norm, 1.0)
    out = np.full(np.broadcast_shapes(*(f.shape for f in frequencies)), 1.0 + 0j)
    for f, n in zip(frequencies, order):
        out = out * (-1j * f / safe) ** n
    scale = np.sqrt(factorial(sum(order)) / np.prod([factorial(n) for n in order]))
    return np.where(norm > 0, scale * out, 0.0)


def check_order(order: tuple[int, ...], dims: str) -> tuple[int, ...]:
    """``order`` as a tuple of non-negative integers, one per filter axis, not all zero."""
    order = tuple(int(n) for n in order)
    if len(order) != len(filter_axes(dims)) or min(order) < 0 or sum(order) == 0:
        raise ValueError(f"Riesz order {order}: expected {len(filter_axes(dims))} non-negative integers, "
                         "not all zero (x, y(, z) order)")
    return order


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, order: tuple[int, ...], base: str = "log",
          boundary: str = "mirror", dims: str = "3D", sigma_mm: float | None = None, truncate: float = 4.0,
          level: int = 1) -> np.ndarray:
    """Riesz-transformed response of ``base`` ('log' with ``sigma_mm``, or 'simoncelli' with ``level``)."""
    check(boundary, dims)
    order = check_order(order, dims)
    margin = simoncelli.margin(level)
    if base == "log":
        if sigma_mm is None:
            raise ValueError("Riesz-transformed LoG needs sigma_mm")
        source = log.apply(image, spacing, sigma_mm=sigma_mm, truncate=truncate, boundary=boundary, dims=dims)
        return fourier_filter(source, lambda f: transfer(f, order), dims, boundary, margin)
    if base == "simoncelli":
        return fourier_filter(image, lambda f: simoncelli.transfer(f, level) * transfer(f, order), dims, boundary,
                              margin)
    raise ValueError(f"Riesz base filter must be 'log' or 'simoncelli', got {base!r}")


def reach(spacing: tuple[float, float, float], *, dims: str = "3D", **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on: the whole image (FFT)."""
    return simoncelli.reach(spacing, dims=dims)
