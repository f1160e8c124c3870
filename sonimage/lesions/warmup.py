"""Compile the feature families' Numba kernels into their on-disk cache once, before any worker needs them.

Numba compiles a kernel on its first call and caches the machine code (:mod:`sonimage.features.kernels`). On a
cold cache every worker process compiled every kernel itself: ~18 CPU s each, and the compiler's memory stayed
with the worker (a worker's peak ~170 MB higher than with a warm cache; ``bench/README.md``). ``make install``
therefore runs ``python -m sonimage.lesions.warmup`` once after installing, as one would ship a warm cache in a
container image; later processes load the kernels from the cache (~0.3 CPU s).

The warm-up computes every family on two small synthetic lesions with the argument types the lesion stage passes
(:func:`sonimage.lesions.jobs.lesion_features`: float64 SUV, boolean mask, float spacing, an SUL ratio), so the
signatures compiled are the ones the pipeline calls.
"""

from __future__ import annotations

import numpy as np

from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.families import ALL_FAMILIES, extract_features
from sonimage.settings import PIPELINE_FEATURES


def warm_kernels(settings: FeatureSettings = PIPELINE_FEATURES) -> int:
    """Every family's features on two synthetic lesions (ellipsoids of gamma-distributed SUV), compiling and
    caching the kernels they call: one inside a margin and one touching its array's faces, since a lesion's
    cropped arrays are strided views in the first case and contiguous in the second, and Numba compiles each
    layout apart. The number of features computed."""
    z, y, x = np.mgrid[:14, :14, :14]
    lesion = (z - 7.0) ** 2 + (y - 7.0) ** 2 + ((x - 6.5) / 1.2) ** 2 < 30.0
    rng = np.random.default_rng(0)
    count = 0
    for mask in (lesion, (z - 6.5) ** 2 + (y - 6.5) ** 2 + (x - 6.5) ** 2 < 50.0):
        image = rng.gamma(3.0, 1.0, mask.shape)
        count += len(extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), settings, ALL_FAMILIES, sul_ratio=0.8))
    return count


if __name__ == "__main__":
    print(f"sonimage: feature kernels compiled and cached ({warm_kernels()} features of two synthetic lesions)")
