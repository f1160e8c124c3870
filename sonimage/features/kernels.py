"""Compiled loops of the feature families (Numba): one pass over a lesion's voxels where NumPy needs one call per
direction or offset, each with a fixed cost that dominates on lesion-sized arrays.

Functions are compiled on first use and cached on disk (Numba's ``cache=True``: ``NUMBA_CACHE_DIR``, else the
package's ``__pycache__``, else the user's cache directory). Where none of these is writable they are compiled
once per process instead (about 1 s each time).

The texture loops read grey levels from the flat, zero-padded array of :class:`sonimage.features.texture.Levels`:
a neighbour of a ROI voxel at a flat step within the margin is always inside the array, and 0 outside the ROI.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np


def jit(fn: Callable) -> Callable:
    """``numba.njit`` with an on-disk cache, without it where no cache location is writable."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(fn)


@jit
def pair_counts(flat: np.ndarray, voxels: np.ndarray, rank: np.ndarray, steps: np.ndarray, n_present: int
                ) -> np.ndarray:
    """One-way co-occurrence counts (k × P × P, float): per flat step, pairs (voxel, voxel + step) of ROI voxels,
    rows and columns the ranks of their grey levels."""
    out = np.zeros((steps.size, n_present, n_present))
    for v in voxels:
        row = rank[flat[v]]
        for d in range(steps.size):
            neighbour = flat[v + steps[d]]
            if neighbour > 0:
                out[d, row, rank[neighbour]] += 1.0
    return out


@jit
def run_counts(flat: np.ndarray, voxels: np.ndarray, rank: np.ndarray, steps: np.ndarray, n_present: int,
               longest: int) -> np.ndarray:
    """Run-length counts (k × P × ``longest``, float): per positive flat step, the runs of equal grey level that
    start at one of ``voxels`` (the voxel one step back holds another level), by level rank and length − 1."""
    out = np.zeros((steps.size, n_present, longest))
    for v in voxels:
        level = flat[v]
        for d in range(steps.size):
            step = steps[d]
            if flat[v - step] == level:
                continue
            end = v + step
            while flat[end] == level:
                end += step
            out[d, rank[level], (end - v) // step - 1] += 1.0
    return out


@jit
def neighbour_sums(flat: np.ndarray, voxels: np.ndarray, steps: np.ndarray, alpha: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per voxel over its neighbours at ``steps``: how many lie in the ROI, the sum of their grey levels, and
    1 + how many of them differ from the voxel's level by at most ``alpha`` (NGLDM's dependence count)."""
    n = voxels.size
    count = np.zeros(n, dtype=np.int64)
    total = np.zeros(n)
    dependence = np.ones(n, dtype=np.int64)
    for i in range(n):
        v = voxels[i]
        level = flat[v]
        inside, dependent, levels = 0, 1, 0
        for step in steps:
            neighbour = flat[v + step]
            if neighbour > 0:
                inside += 1
                levels += neighbour
                if abs(neighbour - level) <= alpha:
                    dependent += 1
        count[i], total[i], dependence[i] = inside, levels, dependent
    return count, total, dependence
