"""Laws kernels and their energy maps (IBSI 2, section 2.4.3; arXiv:2006.05470).

A kernel name such as ``E5L5S5`` gives the 1-D kernel along x, y and z (two kernels in 2D). The energy map is
the mean absolute response over a (2 delta + 1)-voxel neighbourhood; with rotation invariance the response is
pooled over the right-angle rotations first, then its energy taken.
"""

from __future__ import annotations

import re

import numpy as np

from sonimage.features.filters.common import check, energy, filter_axes, rotation_pooled, separable

KERNELS = {
    "L3": np.array([1, 2, 1]) / np.sqrt(6),
    "E3": np.array([-1, 0, 1]) / np.sqrt(2),
    "S3": np.array([-1, 2, -1]) / np.sqrt(6),
    "L5": np.array([1, 4, 6, 4, 1]) / np.sqrt(70),
    "E5": np.array([-1, -2, 0, 2, 1]) / np.sqrt(10),
    "S5": np.array([-1, 0, 2, 0, -1]) / np.sqrt(6),
    "W5": np.array([-1, 2, 0, -2, 1]) / np.sqrt(10),
    "R5": np.array([1, -4, 6, -4, 1]) / np.sqrt(70),
}


def parse(name: str, dims: str) -> list[np.ndarray]:
    """The 1-D kernels of a Laws kernel name, in x, y(, z) order."""
    parts = re.findall(r"[A-Z]\d", name.upper())
    n = 2 if dims == "2D" else 3
    if "".join(parts) != name.upper() or len(parts) != n or any(p not in KERNELS for p in parts):
        raise ValueError(f"Laws kernel {name!r}: expected {n} of {', '.join(KERNELS)} (e.g. {'L5E5E5'[:2 * n]})")
    return [KERNELS[p] for p in parts]


def apply(image: np.ndarray, spacing: tuple[float, float, float], *, kernel: str, boundary: str = "mirror",
          dims: str = "3D", rotation_invariant: bool = False, pooling: str = "max",
          energy_distance: int | None = None) -> np.ndarray:
    """Laws response (or energy map with ``energy_distance``) of ``image``."""
    check(boundary, dims)
    kernels = dict(zip(filter_axes(dims), parse(kernel, dims)))

    def response(x: np.ndarray) -> np.ndarray:
        return separable(x, kernels, boundary)

    out = rotation_pooled(image, response, dims, pooling) if rotation_invariant else response(image)
    return out if energy_distance is None else energy(out, energy_distance, dims, boundary)


def reach(spacing: tuple[float, float, float], *, kernel: str, dims: str = "3D", energy_distance: int | None = None,
          **_: object) -> tuple[int, ...]:
    """Voxels per axis (z, y, x) the response at a voxel depends on (any rotation)."""
    r = max(len(k) for k in parse(kernel, dims)) // 2 + (energy_distance or 0)
    return (0 if dims == "2D" else r, r, r)
