"""Separable wavelets, undecimated (stationary, a trous), and their decomposition levels (IBSI 2, sections
2.4.5-2.4.6; arXiv:2006.05470).

The response map named by a set such as ``LHL`` filters x with the low-pass, y with the high-pass and z with the
low-pass decomposition filter of the wavelet (coefficients from PyWavelets: ``haar``, ``db2``, ``coif1``, ...),
convolved with the tap of index N // 2 at the voxel (N taps).
Level j > 1 filters the level j - 1 all-low-pass (``LLL``) map with the filters dilated by 2^(j-1) (zeros
inserted after each tap). Rotation invariance averages the maps of the right-angle rotations of the image.
"""

from __future__ import annotations

import numpy as np
import pywt

from sonimage.features.filters.common import check, filter_axes, rotation_pooled, separable


def filters(wavelet: str) -> dict[str, np.ndarray]:
    """The low- and high-pass decomposition filters of ``wavelet`` (a PyWavelets name)."""
    try:
        w = pywt.Wavelet(wavelet)
    except ValueError:
        raise ValueError(f"unknown wavelet {wavelet!r}; use a PyWavelets name such as haar, db2, coif1") from None
    return {"L": np.asarray(w.dec_lo, dtype=np.float64), "H": np.asarray(w.dec_hi, dtype=np.float64)}


def dilate(k: np.ndarray, level: int) -> np.ndarray:
    """``k`` with 2^(level-1) - 1 zeros after each tap (so the centre tap N // 2 stays the centre)."""
    step = 2 ** (level - 1)
    out = np.zeros(len(k) * step)
    out[::step] = k
    return out


def decompose(image: np.ndarray, taps: dict[str, np.ndarray], bands: str, level: int, axes: tuple[int, ...],
              boundary: str) -> np.ndarray:
    """The undecimated response map ``bands`` (one letter per axis) at ``level``."""
    x = image
    for j in range(1, level + 1):
        letters = bands if j == level else "L" * len(axes)
        x = separable(x, {a: dilate(taps[c], j) for a, c in zip(axes, letters)}, boundary)
    return x


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, wavelet: str, bands: str, level: int = 1,
          boundary: str = "mirror", dims: str = "3D", rotation_invariant: bool = False,
          pooling: str = "average") -> np.ndarray:
    """Undecimated separable wavelet response map ``bands`` (letters L/H in x, y(, z) order) at ``level``."""
    check(boundary, dims)
    axes = filter_axes(dims)
    bands = bands.upper()
    if len(bands) != len(axes) or set(bands) - {"L", "H"}:
        raise ValueError(f"wavelet set {bands!r}: expected {len(axes)} letters L or H (x, y(, z) order)")
    if level < 1:
        raise ValueError(f"decomposition level must be at least 1, got {level}")
    taps = filters(wavelet)
    x = np.asarray(image, dtype=np.float64)

    def response(v: np.ndarray) -> np.ndarray:
        return decompose(v, taps, bands, level, axes, boundary)

    return rotation_pooled(x, response, dims, pooling) if rotation_invariant else response(x)


def reach(spacing: tuple[float, float, float], *, wavelet: str, level: int = 1, dims: str = "3D",
          **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on (any rotation, every level)."""
    n = max(len(k) for k in filters(wavelet).values())
    r = sum(n // 2 * 2 ** (j - 1) for j in range(1, level + 1))  # a dilated filter spans N // 2 * 2^(j-1) a side
    return (0 if dims == "2D" else r, r, r)
