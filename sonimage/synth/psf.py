"""The scanner's resolution: a Gaussian point-spread function (PSF), averaging into voxels, and the SUVmax
recovery coefficients (RC) it gives the NEMA IEC spheres, checked against the EARL1 accreditation bands.

What a voxel reads is the mean over the voxel of the activity blurred by the PSF. Along one axis, a point of
activity at x adds to voxel [lo, hi] the weight (Φ((hi − x)/σ) − Φ((lo − x)/σ)) / (hi − lo) (Φ the normal CDF),
exactly; a Gaussian PSF is separable, so three such matrices (z, y, x) take activity sampled on a fine tensor grid
(cells ≤ 1 mm, each cell's activity put at its centre) to the voxel image (:func:`spread`). Activity that is
constant within each voxel (organs: partial-volume means) goes through the same weights integrated over the source
voxel, a separable convolution (:func:`blur_voxels`).

EARL1: Boellaard et al., EJNMMI 2015 (FDG PET/CT: EANM procedure guidelines for tumour imaging, version 2.0), RC of
SUVmax for the NEMA IEC body phantom's spheres at a 10:1 sphere-to-background ratio (:data:`EARL1_RC_MAX`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
MIN_SIGMA_VOXELS = 0.5  # a PSF narrower than this is not resolved by the voxels (undersampled)
FINE_MM = 1.0  # largest fine-grid cell for analytic shapes
NEMA_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
NEMA_SPHERE_TO_BACKGROUND = 10.0  # EARL1 accreditation: spheres at 10:1 to the background
EARL1_RC_MAX = {10.0: (0.34, 0.57), 13.0: (0.59, 0.85), 17.0: (0.73, 1.01), 22.0: (0.83, 1.09),
                28.0: (0.91, 1.13), 37.0: (0.95, 1.16)}


def psf_fwhm_zyx(spacing_zyx: tuple[float, float, float], fwhm_mm: float) -> tuple[float, float, float]:
    """The PSF FWHM per axis (mm): the scanner's ``fwhm_mm``, widened where it would be under
    :data:`MIN_SIGMA_VOXELS` voxels (a coarse image cannot be sharper than its voxels)."""
    return tuple(max(fwhm_mm, MIN_SIGMA_VOXELS * h * FWHM_PER_SIGMA) for h in spacing_zyx)  # type: ignore[return-value]


def axis_weights(points: np.ndarray, cell_mm: float, voxel_centres: np.ndarray, voxel_mm: float,
                 sigma_mm: float) -> np.ndarray:
    """(n_voxels, n_points): the share of a fine cell's activity (at ``points``, width ``cell_mm``) that one
    voxel's mean reads through a Gaussian PSF of ``sigma_mm`` along one axis."""
    d = voxel_centres[:, None] - points[None, :]
    h = voxel_mm / 2.0
    return (cell_mm / voxel_mm) * (ndtr((d + h) / sigma_mm) - ndtr((d - h) / sigma_mm))


def fine_axis(lo: float, hi: float, step_mm: float = FINE_MM) -> tuple[np.ndarray, float]:
    """Cell centres covering [lo, hi] with cells of at most ``step_mm`` (and the cell width)."""
    n = max(1, int(math.ceil((hi - lo) / step_mm)))
    cell = (hi - lo) / n
    return lo + cell * (np.arange(n) + 0.5), cell


def spread(values: np.ndarray, fine: tuple[tuple[np.ndarray, float], ...], voxels: tuple[np.ndarray, ...],
           spacing_zyx: tuple[float, float, float], sigma_zyx: tuple[float, float, float]) -> np.ndarray:
    """Voxel image (of the voxel centres ``voxels``, per axis z, y, x) of activity ``values`` on the fine tensor
    grid ``fine`` ((centres, cell width) per axis): PSF, then voxel averaging, exactly for cell-centred activity."""
    wz, wy, wx = (axis_weights(fine[a][0], fine[a][1], voxels[a], spacing_zyx[a], sigma_zyx[a]) for a in range(3))
    out = np.einsum("zyx,jy->zjx", np.einsum("zyx,ix->zyi", values, wx), wy)  # einsum: no BLAS thread pool
    return np.einsum("zji,kz->kji", out, wz)


def voxel_kernel(voxel_mm: float, sigma_mm: float, moment: bool = False, sub: int = 32) -> np.ndarray:
    """1-D kernel taking voxel-constant activity to voxel means through the PSF (odd length, sums to 1); with
    ``moment``, the kernel of a voxel's first moment (activity x offset from the voxel centre, mm): the change of
    the voxel means per mm the voxel's activity sits off its centre."""
    reach = int(math.ceil(4.0 * sigma_mm / voxel_mm)) + 1
    centres = voxel_mm * np.arange(-reach, reach + 1, dtype=float)
    u = voxel_mm * ((np.arange(sub) + 0.5) / sub - 0.5)  # sub-points of the source voxel
    if moment:  # d/du of the weights, averaged over the source voxel
        d, h = centres[:, None] - u[None, :], voxel_mm / 2.0
        pdf = lambda t: np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)  # noqa: E731
        return (-(pdf((d + h) / sigma_mm) - pdf((d - h) / sigma_mm)) / sigma_mm).mean(axis=1)
    k = axis_weights(u, voxel_mm / sub, centres, voxel_mm, sigma_mm).sum(axis=1)
    return k / k.sum()


def blur_voxels(activity: np.ndarray, spacing_zyx: tuple[float, float, float],
                sigma_zyx: tuple[float, float, float], moments: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """The image of activity given per voxel by its mean (``activity``) and, optionally, its first moments along
    z, y, x (``moments``: mean of activity x offset from the voxel centre, mm; zero in uniform voxels): separable
    convolutions with :func:`voxel_kernel` (activity outside the array is 0). The moments correct the
    voxel-constant approximation to first order in the offset (partial-volume voxels at organ edges).

    Only the box that holds every nonzero input voxel, widened by the kernels' reach, is convolved: outside it
    every sum is of zeros, inside it the same terms are summed (the rest of the field of view is air)."""
    kernels = [voxel_kernel(h, s).astype(np.float32) for h, s in zip(spacing_zyx, sigma_zyx)]
    inputs = [activity, *(moments or ())]
    out = np.zeros(activity.shape, dtype=np.float32)
    box = _support(inputs, [len(k) // 2 for k in kernels])
    if box is None:
        return out
    part = _separable(activity[box].astype(np.float32), kernels)
    for axis, mom in enumerate(moments or ()):
        k = list(kernels)
        k[axis] = voxel_kernel(spacing_zyx[axis], sigma_zyx[axis], moment=True).astype(np.float32)
        part += _separable(mom[box].astype(np.float32), k)
    out[box] = part
    return out


def _support(arrays: list[np.ndarray], reach: list[int]) -> tuple[slice, ...] | None:
    """The box (per axis) of the voxels where any of ``arrays`` is nonzero, widened by ``reach`` voxels per axis
    (clipped to the array); None when all are zero."""
    held = arrays[0] != 0
    for a in arrays[1:]:
        held |= a != 0
    box = []
    for axis, r in enumerate(reach):
        idx = np.flatnonzero(held.any(axis=tuple(a for a in range(held.ndim) if a != axis)))
        if not len(idx):
            return None
        box.append(slice(max(int(idx[0]) - r, 0), min(int(idx[-1]) + r + 1, held.shape[axis])))
    return tuple(box)


def _separable(values: np.ndarray, kernels: list[np.ndarray]) -> np.ndarray:
    for axis, k in enumerate(kernels):
        values = ndimage.convolve1d(values, k, axis=axis, mode="constant")
    return values


def sphere_rc_max(diameter_mm: float, spacing_zyx: tuple[float, float, float],
                  sigma_zyx: tuple[float, float, float], offset_zyx: np.ndarray,
                  contrast: float = NEMA_SPHERE_TO_BACKGROUND) -> float:
    """Noise-free SUVmax recovery of one hot sphere (``contrast``:1 to a uniform background) whose centre sits
    ``offset_zyx`` (fractions of a voxel) from a voxel centre: max voxel / true sphere uptake."""
    r = diameter_mm / 2.0
    fine = tuple(fine_axis(-r, r) for _ in range(3))
    zz, yy, xx = np.meshgrid(*(f[0] for f in fine), indexing="ij")
    inside = (xx * xx + yy * yy + zz * zz <= r * r).astype(float)
    voxels = tuple(h * (np.arange(-int(r / h + 4 * s / h) - 2, int(r / h + 4 * s / h) + 3) - o)
                   for h, s, o in zip(spacing_zyx, sigma_zyx, offset_zyx))
    image = 1.0 + (contrast - 1.0) * spread(inside, fine, voxels, spacing_zyx, sigma_zyx)  # background stays 1
    return float(image.max() / contrast)


def recovery_coefficients(spacing_zyx: tuple[float, float, float], fwhm_mm: float,
                          diameters_mm: tuple[float, ...] = NEMA_DIAMETERS_MM, n_positions: int = 8,
                          seed: int = 0) -> dict:
    """SUVmax recovery of the NEMA IEC spheres on a grid of ``spacing_zyx`` with the scanner PSF ``fwhm_mm``
    (widened by :func:`psf_fwhm_zyx`): noise-free, 10:1 sphere to background, max voxel / true sphere uptake,
    averaged over ``n_positions`` random sub-voxel sphere centres (fixed seed), and whether every sphere falls in
    its EARL1 band (:data:`EARL1_RC_MAX`; a diameter without a band does not count)."""
    fwhm = psf_fwhm_zyx(spacing_zyx, fwhm_mm)
    sigma = tuple(f / FWHM_PER_SIGMA for f in fwhm)
    offsets = np.random.default_rng(seed).uniform(-0.5, 0.5, (n_positions, 3))
    rc = [float(np.mean([sphere_rc_max(d, spacing_zyx, sigma, o) for o in offsets])) for d in diameters_mm]
    inside = [EARL1_RC_MAX[d][0] <= v <= EARL1_RC_MAX[d][1] for d, v in zip(diameters_mm, rc) if d in EARL1_RC_MAX]
    return {"psf_fwhm_mm": [round(f, 3) for f in fwhm], "voxel_mm": [round(float(h), 4) for h in spacing_zyx],
            "diameters_mm": [float(d) for d in diameters_mm], "rc_max": [round(v, 4) for v in rc],
            "earl1_compliant": bool(all(inside)),
            "method": f"noise-free; sphere {NEMA_SPHERE_TO_BACKGROUND:g}:1 to background (NEMA IEC, EARL1); "
                      f"max voxel / true sphere uptake, mean over {n_positions} random sub-voxel centres; "
                      "psf_fwhm_mm and voxel_mm per axis (z, y, x); EARL1 bands: Boellaard et al., EJNMMI 2015"}
