"""Local intensity features (IBSI 1, section 3.2): the local and the global intensity peak.

The peak sphere has volume ``settings.peak_volume_ml`` (1 cm³: radius 6.2035 mm); a voxel belongs to it when its
centre lies within the radius. All image voxels count, also those outside the mask. Where the sphere reaches
beyond the image (a lesion on the border of the field of view or of a cropped image), the mean is taken over the
voxels that exist; NaN voxels count as missing too. Sphere means of the whole crop come from one FFT convolution.
"""

from __future__ import annotations

import numpy as np

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.convolution import fft_convolve_same

FAMILY = "local_intensity"


def peak_radius_mm(volume_ml: float) -> float:
    """Radius (mm) of a sphere of ``volume_ml`` mL."""
    return float((3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0))


def peak_margin(spacing: tuple[float, float, float], volume_ml: float) -> tuple[int, int, int]:
    """Voxels the peak sphere reaches along each axis."""
    r = peak_radius_mm(volume_ml)
    return tuple(int(np.floor(r / s + 1e-9)) for s in spacing)


def sphere_kernel(spacing: tuple[float, float, float], volume_ml: float) -> np.ndarray:
    """Float kernel: 1 for voxel offsets whose centre lies within the peak radius."""
    r = peak_radius_mm(volume_ml)
    axes = [np.arange(-m, m + 1) * s for m, s in zip(peak_margin(spacing, volume_ml), spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return (zz**2 + yy**2 + xx**2 <= r * r * (1 + 1e-9)).astype(np.float64)


def sphere_means(image: np.ndarray, spacing: tuple[float, float, float], volume_ml: float) -> np.ndarray:
    """Mean of the existing (finite) voxels within the peak sphere around every voxel of ``image``."""
    finite = np.isfinite(image)
    kernel = sphere_kernel(spacing, volume_ml)
    total = fft_convolve_same(np.where(finite, image, 0.0).astype(np.float64), kernel)
    count = np.rint(fft_convolve_same(finite.astype(np.float64), kernel))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def peaks(roi: Roi, volume_ml: float) -> tuple[float, float]:
    """(local peak, global peak): the sphere mean at the hottest ROI voxel (highest on ties), the highest over the ROI."""
    means = sphere_means(roi.image, roi.spacing, volume_ml)[roi.mask]
    values = roi.values
    hottest = values == np.nanmax(values)
    return float(np.nanmax(means[hottest])), float(np.nanmax(means))


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """Local and global intensity peak (``dims`` ignored)."""
    local, glob = peaks(roi, settings.peak_volume_ml)
    return [Feature(FAMILY, "Local intensity peak", "VJGA", local),
            Feature(FAMILY, "Global intensity peak", "0F91", glob)]
