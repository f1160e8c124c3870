"""Activity (SUV) and CT images of the phantom: physiological uptake, heterogeneous spherical lesions, PSF blur
and noise, and the patient's rotation and mild non-rigid deformation between two scan days."""

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


def lesion_profile(grid: Grid, mask: LesionMask, centre: np.ndarray, diameter_mm: float, core_fraction: float,
                   core_uptake: float, gradient: float, direction: np.ndarray) -> np.ndarray:
    """Relative uptake (max 1 over the sphere) at the lesion's voxels: a necrotic core of ``core_fraction`` of the
    radius at ``core_uptake`` of the rim, times a linear gradient of ``gradient`` across the radius along
    ``direction`` (``grid`` and ``centre`` in the same frame)."""
    r = max(diameter_mm / 2.0, 1e-6)
    zz, yy, xx = np.nonzero(mask.mask)
    z = grid.zs[mask.box[0]][zz] - centre[2]
    y = grid.ys[mask.box[1]][yy] - centre[1]
    x = grid.xs[mask.box[2]][xx] - centre[0]
    rho = np.sqrt(x * x + y * y + z * z) / r
    base = np.where(rho < core_fraction, core_uptake, 1.0)
    along = (x * direction[0] + y * direction[1] + z * direction[2]) / r
    return (base * (1.0 + gradient * np.clip(along, -1.0, 1.0)) / (1.0 + gradient)).astype(np.float32)


def _bowel_texture(grid: Grid, where: tuple[np.ndarray, ...]) -> np.ndarray:
    """Loops of bowel: a smooth ±40 % modulation at the voxels ``where`` (body-frame coordinates)."""
    z, y, x = grid.zs[where[0]], grid.ys[where[1]], grid.xs[where[2]]
    return (1.0 + 0.4 * np.sin(x / 12.0) * np.sin(y / 9.0) * np.sin(z / 11.0)).astype(np.float32)


def true_activity(labels: np.ndarray, body_grid: Grid, table: np.ndarray, masks: list[LesionMask],
                  lesion_values: list[np.ndarray]) -> np.ndarray:
    """Noise-free, unblurred SUV map: tissue uptake, bowel texture, lesion voxels set to their true SUV."""
    act = table[labels]
    bowel = np.nonzero(labels == Tissue.BOWEL)
    act[bowel] *= _bowel_texture(body_grid, bowel)
    for m, values in zip(masks, lesion_values):
        act[m.box][m.mask] = values
    return act


def psf_sigma_voxels(fwhm_mm: float, spacing: tuple[float, ...]) -> list[float]:
    """Gaussian PSF σ per axis in voxels of ``spacing`` (mm)."""
    return [fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / s for s in spacing]


def blurred_image(activity: np.ndarray, spacing: tuple[float, float, float], fwhm_mm: float = PSF_FWHM_MM
                  ) -> np.ndarray:
    """The noise-free image: ``activity`` through the Gaussian PSF."""
    return ndimage.gaussian_filter(activity, psf_sigma_voxels(fwhm_mm, spacing), mode="constant")


def add_noise(blurred: np.ndarray, rng: np.random.Generator, noise_cov: float = NOISE_COV) -> np.ndarray:
    """What the scanner reconstructs from the noise-free image: correlated Poisson-like noise, no negatives."""
    white = rng.standard_normal(blurred.shape, dtype=np.float32)
    coloured = ndimage.gaussian_filter(white, NOISE_CORRELATION_VOXELS)
    coloured /= max(float(coloured.std()), 1e-6)
    noisy = blurred + noise_cov * np.sqrt(np.maximum(blurred, 0)) * coloured
    return np.maximum(noisy, 0).astype(np.float32)


def scanner_image(activity: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator,
                  fwhm_mm: float = PSF_FWHM_MM, noise_cov: float = NOISE_COV) -> np.ndarray:
    """What the scanner reconstructs from ``activity`` on a voxel grid: Gaussian PSF, then noise."""
    return add_noise(blurred_image(activity, spacing, fwhm_mm), rng, noise_cov)


def ct_image(labels: np.ndarray, masks: list[LesionMask], organs: list[str], rng: np.random.Generator,
             moved: tuple[Grid, Motion] | None = None) -> np.ndarray:
    """CT in HU (int16): tissue numbers, lesions (sclerotic bone, soft-tissue nodules), the patient's motion
    (``moved``: grid and second-day motion) before Gaussian noise (none in air)."""
    hu = HU[labels]
    for m, organ in zip(masks, organs):
        hu[m.box][m.mask] = LESION_HU[organ]
    if moved is not None:
        hu = warp(hu, moved[0], moved[1], order=1, cval=-1000.0)
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= CT_NOISE_HU
    noise[hu <= -999.5] = 0.0
    hu += noise
    np.round(hu, out=hu)
    return np.clip(hu, -1024, 3071).astype(np.int16)


@dataclass(frozen=True)
class Motion:
    """How the patient lies on the second day relative to the first (patient coordinates, mm).

    A point p of the first-day image is found at ``forward(p)`` on the second day: a rotation R about ``centre``
    followed by a smooth displacement field d(x) = Σ_k a_k sin(2π f_k·x + φ_k) (mild non-rigid deformation,
    |d| ≤ Σ|a_k|); the second-day image is the first resampled through the inverse of that map.
    """

    centre: tuple[float, float, float]
    angles_deg: tuple[float, float, float]  # about x (pitch), y (yaw), z (roll), applied in that order
    amplitudes_mm: tuple[tuple[float, float, float], ...]
    frequencies_per_mm: tuple[tuple[float, float, float], ...]
    phases: tuple[float, ...]

    @property
    def rotation(self) -> np.ndarray:
        ax, ay, az = np.radians(self.angles_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        return rz @ ry @ rx

    def displacement(self, p: np.ndarray) -> np.ndarray:
        """d(p) for points (N, 3)."""
        p = np.atleast_2d(p)
        out = np.zeros_like(p, dtype=float)
        for a, f, ph in zip(self.amplitudes_mm, self.frequencies_per_mm, self.phases):
            out += np.outer(np.sin(2 * np.pi * p @ np.asarray(f) + ph), a)
        return out

    def forward(self, p: np.ndarray) -> np.ndarray:
        """Where first-day points (N, 3) are on the second day."""
        c = np.asarray(self.centre)
        q = (np.atleast_2d(p) - c) @ self.rotation.T + c
        return q + self.displacement(q)

    def inverse(self, q: np.ndarray) -> np.ndarray:
        """First-day position of second-day points (N, 3) (fixed-point iteration on the smooth displacement)."""
        q = np.atleast_2d(q).astype(float)
        u = q.copy()
        for _ in range(10):  # solve u + d(u) = q: |grad d| < 0.1, so a contraction
            u = q - self.displacement(u)
        c = np.asarray(self.centre)
        return (u - c) @ self.rotation + c

    def as_dict(self) -> dict:
        return {"centre_mm": list(self.centre), "angles_deg_xyz": list(self.angles_deg),
                "rotation_matrix": self.rotation.round(8).tolist(),
                "displacement_amplitudes_mm": [list(a) for a in self.amplitudes_mm],
                "displacement_frequencies_per_mm": [list(f) for f in self.frequencies_per_mm],
                "displacement_phases": list(self.phases),
                "model": "second-day position = R (p - centre) + centre, then + sum_k a_k sin(2 pi f_k.x + phase_k)"}


def random_motion(centre: np.ndarray, rng: np.random.Generator) -> Motion:
    """Repositioning between two scan days: roll ±1–3°, pitch and yaw up to ±1.5°, deformation 1–2.5 mm."""
    roll = rng.uniform(1.0, 3.0) * rng.choice([-1, 1])
    angles = (float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5)), float(roll))
    amps, freqs, phases = [], [], []
    for _ in range(2):
        direction = rng.normal(size=3)
        amps.append(tuple(float(v) for v in direction / np.linalg.norm(direction) * rng.uniform(0.5, 1.25)))
        wave = rng.normal(size=3)
        freqs.append(tuple(float(v) for v in wave / np.linalg.norm(wave) / rng.uniform(200.0, 400.0)))
        phases.append(float(rng.uniform(0, 2 * np.pi)))
    return Motion(tuple(float(v) for v in centre), angles, tuple(amps), tuple(freqs), tuple(phases))


def warp(volume: np.ndarray, grid: Grid, motion: Motion, order: int, cval: float,
         lattice_mm: float = 16.0) -> np.ndarray:
    """The second-day image: ``volume`` (first-day positions on ``grid``) resampled through ``motion``'s inverse.

    The inverse map is smooth (a rotation plus displacements of wavelength ≥ 200 mm), so it is solved on a
    ``lattice_mm`` lattice and interpolated linearly (error < 0.05 mm); resampling runs slab by slab.
    """
    fine = (grid.zs, grid.ys, grid.xs)
    coarse = [np.linspace(a[0], a[-1], max(2, int(np.ceil(abs(a[-1] - a[0]) / lattice_mm)) + 1)) for a in fine]
    cz, cy, cx = np.meshgrid(*coarse, indexing="ij")
    src = motion.inverse(np.column_stack([cx.ravel(), cy.ravel(), cz.ravel()]))
    steps = [(a[1] - a[0]) if len(a) > 1 else 1.0 for a in fine]
    source_index = [((src[:, 2 - i] - fine[i][0]) / steps[i]).reshape(cz.shape) for i in range(3)]
    position = [(a - c[0]) / (c[1] - c[0]) if c[1] != c[0] else np.zeros(len(a)) for a, c in zip(fine, coarse)]
    out = np.empty_like(volume)
    for k0 in range(0, len(grid.zs), 16):
        where = np.meshgrid(position[0][k0:k0 + 16], position[1], position[2], indexing="ij")
        coords = [ndimage.map_coordinates(si, where, order=1, mode="nearest") for si in source_index]
        out[k0:k0 + 16] = ndimage.map_coordinates(volume, coords, order=order, mode="constant", cval=cval)
    return out
