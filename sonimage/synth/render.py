"""Activity (SUV) and CT images of the phantom: physiological uptake, spherical lesions, PSF blur and noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sonimage.synth.anatomy import HU, Grid, Tissue, index_range

PSF_FWHM_MM = 6.5
NOISE_COV = 0.15  # noise SD = NOISE_COV * sqrt(SUV) per voxel (Poisson-like), spatially correlated
NOISE_CORRELATION_VOXELS = 0.8
CT_NOISE_HU = 12.0
LESION_HU = {"bone": 1000.0, "lung": 40.0, "liver": 25.0, "lymph_node": 45.0}

# Typical SUV per tissue; per-patient variation in :func:`physiology`.
_FDG = {Tissue.FAT: 0.35, Tissue.SOFT: 0.9, Tissue.BRAIN: 8.0, Tissue.LUNG: 0.45, Tissue.HEART: 4.0,
        Tissue.LIVER: 2.5, Tissue.GALLBLADDER: 1.2, Tissue.BOWEL: 1.8, Tissue.BLADDER: 15.0, Tissue.BONE: 1.3,
        Tissue.KIDNEY: 3.0, Tissue.SPLEEN: 2.0}
_FES = {Tissue.FAT: 0.3, Tissue.SOFT: 0.8, Tissue.BRAIN: 0.6, Tissue.LUNG: 0.5, Tissue.HEART: 1.3,
        Tissue.LIVER: 11.0, Tissue.GALLBLADDER: 20.0, Tissue.BOWEL: 5.0, Tissue.BLADDER: 12.0, Tissue.BONE: 1.1,
        Tissue.KIDNEY: 2.0, Tissue.SPLEEN: 1.2}
# Relative patient-to-patient spread (lognormal SD) per tissue; the rest use 0.1.
_SPREAD = {"FDG": {Tissue.HEART: 0.5, Tissue.BLADDER: 0.5, Tissue.BRAIN: 0.15},
           "FES": {Tissue.LIVER: 0.2, Tissue.GALLBLADDER: 0.35, Tissue.BOWEL: 0.3, Tissue.BLADDER: 0.4}}


def physiology(tracer: str, rng: np.random.Generator) -> np.ndarray:
    """SUV per tissue label for one scan of one patient (FES liver within 8–15)."""
    base = {"FDG": _FDG, "FES": _FES}[tracer]
    table = np.zeros(len(Tissue), dtype=np.float32)
    for tissue, suv in base.items():
        table[tissue] = suv * np.exp(rng.normal(0.0, _SPREAD[tracer].get(tissue, 0.1)))
    if tracer == "FES":
        table[Tissue.LIVER] = np.clip(table[Tissue.LIVER], 8.0, 15.0)
    return table


@dataclass(frozen=True)
class LesionMask:
    """Voxels of one lesion on a grid: the bounding-box slices and the boolean mask inside it."""

    box: tuple[slice, slice, slice]
    mask: np.ndarray

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())

    def full(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The mask on the whole grid."""
        out = np.zeros(shape, dtype=bool)
        out[self.box] = self.mask
        return out


def sphere_mask(grid: Grid, centre: np.ndarray, diameter_mm: float) -> LesionMask:
    """Voxels whose centres lie within the sphere; when none do, the voxel nearest the centre (never empty)."""
    r = diameter_mm / 2.0
    axes = (grid.zs, grid.ys, grid.xs)
    c = (centre[2], centre[1], centre[0])
    box = tuple(index_range(a, ci - r, ci + r) for a, ci in zip(axes, c))
    z, y, x = (a[b] for a, b in zip(axes, box))
    mask = ((x[None, None, :] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2
            + (z[:, None, None] - centre[2]) ** 2) <= r * r
    if mask.any():
        return LesionMask(box, mask)  # type: ignore[arg-type]
    nearest = tuple(int(np.argmin(np.abs(a - ci))) for a, ci in zip(axes, c))
    return LesionMask(tuple(slice(i, i + 1) for i in nearest), np.ones((1, 1, 1), dtype=bool))  # type: ignore[arg-type]


def _bowel_texture(grid: Grid, where: tuple[np.ndarray, ...]) -> np.ndarray:
    """Loops of bowel: a smooth ±40 % modulation at the voxels ``where`` (body-frame coordinates)."""
    z, y, x = grid.zs[where[0]], grid.ys[where[1]], grid.xs[where[2]]
    return (1.0 + 0.4 * np.sin(x / 12.0) * np.sin(y / 9.0) * np.sin(z / 11.0)).astype(np.float32)


def true_activity(labels: np.ndarray, body_grid: Grid, table: np.ndarray, masks: list[LesionMask],
                  lesion_suv: np.ndarray) -> np.ndarray:
    """Noise-free, unblurred SUV map: tissue uptake, bowel texture, lesions set to their true SUV."""
    act = table[labels]
    bowel = np.nonzero(labels == Tissue.BOWEL)
    act[bowel] *= _bowel_texture(body_grid, bowel)
    for m, suv in zip(masks, lesion_suv):
        act[m.box][m.mask] = suv
    return act


def scanner_image(activity: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator,
                  fwhm_mm: float = PSF_FWHM_MM, noise_cov: float = NOISE_COV) -> np.ndarray:
    """What the scanner reconstructs: Gaussian PSF, correlated Poisson-like noise, no negative values."""
    sigma = [fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / s for s in spacing]
    blurred = ndimage.gaussian_filter(activity, sigma, mode="constant")
    white = rng.standard_normal(activity.shape, dtype=np.float32)
    coloured = ndimage.gaussian_filter(white, NOISE_CORRELATION_VOXELS)
    coloured /= max(float(coloured.std()), 1e-6)
    noisy = blurred + noise_cov * np.sqrt(np.maximum(blurred, 0)) * coloured
    return np.maximum(noisy, 0).astype(np.float32)


def ct_image(labels: np.ndarray, masks: list[LesionMask], organs: list[str], rng: np.random.Generator) -> np.ndarray:
    """CT in HU (int16): tissue numbers, lesions (sclerotic bone, soft-tissue nodules), Gaussian noise."""
    hu = HU[labels]
    for m, organ in zip(masks, organs):
        hu[m.box][m.mask] = LESION_HU[organ]
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= CT_NOISE_HU
    noise[labels == Tissue.AIR] = 0.0
    hu += noise
    np.round(hu, out=hu)
    return np.clip(hu, -1024, 3071).astype(np.int16)
