"""FFT convolution without scipy.signal: bit-identical to SciPy's, and what a lesion worker imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import fftconvolve

from sonimage.features.convolution import fft_convolve_same
from sonimage.features.local_intensity import sphere_kernel


@pytest.mark.parametrize("shape", [(7, 9, 11), (1, 13, 17), (20, 1, 5), (33, 40, 29), (1, 1, 9), (5, 6, 1)])
@pytest.mark.parametrize("kernel", [(3, 5, 5), (1, 3, 3), (5, 5, 1), (1, 1, 1), (9, 9, 9), (2, 4, 4)])
def test_equals_scipy_fftconvolve_same(shape: tuple[int, ...], kernel: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape) * 31 + sum(kernel))
    image, weights = rng.normal(3.0, 1.0, shape), (rng.random(kernel) > 0.3).astype(np.float64)
    assert np.array_equal(fft_convolve_same(image, weights), fftconvolve(image, weights, mode="same"))


def test_equals_scipy_on_the_peak_sphere() -> None:
    image = np.random.default_rng(5).gamma(2.0, 2.0, (24, 30, 30))
    kernel = sphere_kernel((2.0, 1.5, 1.5), 1.0)
    assert np.array_equal(fft_convolve_same(image, kernel), fftconvolve(image, kernel, mode="same"))
    with pytest.raises(ValueError, match="dimensionality"):
        fft_convolve_same(image, kernel[0])


def test_the_image_stages_import_no_analysis_stack() -> None:
    """What a Dask worker of the flow imports for conversion and lesions: no scipy.signal (~40 MB), no lifelines,
    scikit-survival or matplotlib (~43 MB); the analysis task imports them itself."""
    code = ("import sys, flows.tasks, sonimage.stages.extract, sonimage.stages.convert; "
            "print(sorted(m for m in ('scipy.signal', 'lifelines', 'sksurv', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
