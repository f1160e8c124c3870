"""N-dimensional convolution by FFT, cropped to the first input's shape (``mode="same"``).

The same arithmetic as SciPy's ``scipy.signal.fftconvolve(in1, in2, mode="same")`` for real inputs (SciPy 1.17:
real FFTs of each axis padded to ``next_fast_len`` of the full size, axes where either input has length 1
multiplied by broadcasting, the centre cropped), so results are bit-identical, without importing
``scipy.signal``: that package imports ``scipy.stats``, ``optimize`` and ``interpolate`` and adds ~40 MB to every
process that reads lesions (each Dask worker), for one function.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft


def fft_convolve_same(in1: np.ndarray, in2: np.ndarray) -> np.ndarray:
    """Convolution of the real arrays ``in1`` and ``in2`` (same number of dimensions), the centre of the full
    result with ``in1``'s shape."""
    in1, in2 = np.asarray(in1, dtype=np.float64), np.asarray(in2, dtype=np.float64)
    if in1.ndim != in2.ndim:
        raise ValueError(f"in1 and in2 should have the same dimensionality ({in1.ndim} and {in2.ndim})")
    s1, s2 = in1.shape, in2.shape
    axes = [a for a in range(in1.ndim) if s1[a] != 1 and s2[a] != 1]
    shape = [s1[a] + s2[a] - 1 if a in axes else max(s1[a], s2[a]) for a in range(in1.ndim)]
    if axes:
        fshape = [sp_fft.next_fast_len(shape[a], True) for a in axes]
        full = sp_fft.irfftn(sp_fft.rfftn(in1, fshape, axes=axes) * sp_fft.rfftn(in2, fshape, axes=axes), fshape,
                             axes=axes)[tuple(slice(n) for n in shape)]
    else:
        full = in1 * in2
    start = [(c - n) // 2 for c, n in zip(full.shape, s1)]
    return full[tuple(slice(b, b + n) for b, n in zip(start, s1))].copy()
