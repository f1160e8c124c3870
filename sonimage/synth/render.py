"""Activity (SUV) and CT images of the phantom: physiological uptake, heterogeneous spherical lesions, PSF blur
and noise, and the patient's rotation and mild non-rigid deformation between two scan days."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sonimage.synth.anatomy import HU, Body, Grid, Tissue, index_range, label_map, labels_at, tissue_at
from sonimage.synth.psf import FWHM_PER_SIGMA, blur_voxels, fine_axis, psf_fwhm_zyx, spread

PSF_FWHM_MM = 7.5  # full size: EARL1 recovery (sonimage.synth.psf); coarser sizes widen it to their voxels
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


def profile_at(rel: np.ndarray, diameter_mm: float, core_fraction: float, core_uptake: float, gradient: float,
               direction: np.ndarray) -> np.ndarray:
    """Relative uptake (max 1 over the sphere) at points ``rel`` (N, 3; mm from the lesion centre, body frame):
    a necrotic core of ``core_fraction`` of the radius at ``core_uptake`` of the rim, times a linear gradient of
    ``gradient`` across the radius along ``direction``."""
    r = max(diameter_mm / 2.0, 1e-6)
    rho = np.sqrt((rel * rel).sum(axis=1)) / r
    base = np.where(rho < core_fraction, core_uptake, 1.0)
    along = rel @ np.asarray(direction, float) / r
    return (base * (1.0 + gradient * np.clip(along, -1.0, 1.0)) / (1.0 + gradient)).astype(np.float32)


def lesion_profile(grid: Grid, mask: LesionMask, centre: np.ndarray, diameter_mm: float, core_fraction: float,
                   core_uptake: float, gradient: float, direction: np.ndarray) -> np.ndarray:
    """:func:`profile_at` at the voxel centres of ``mask`` (``grid`` and ``centre`` in the same frame)."""
    zz, yy, xx = np.nonzero(mask.mask)
    rel = np.column_stack([grid.xs[mask.box[2]][xx] - centre[0], grid.ys[mask.box[1]][yy] - centre[1],
                           grid.zs[mask.box[0]][zz] - centre[2]])
    return profile_at(rel, diameter_mm, core_fraction, core_uptake, gradient, direction)


def bowel_texture(points: np.ndarray) -> np.ndarray:
    """Loops of bowel: a smooth ±40 % modulation at body-frame points (N, 3)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    return (1.0 + 0.4 * np.sin(x / 12.0) * np.sin(y / 9.0) * np.sin(z / 11.0)).astype(np.float32)


def true_activity(labels: np.ndarray, body_grid: Grid, table: np.ndarray, masks: list[LesionMask],
                  lesion_values: list[np.ndarray]) -> np.ndarray:
    """Noise-free, unblurred SUV map: tissue uptake, bowel texture, lesion voxels set to their true SUV."""
    act = table[labels]
    bowel = np.nonzero(labels == Tissue.BOWEL)
    act[bowel] *= bowel_texture(np.column_stack([body_grid.xs[bowel[2]], body_grid.ys[bowel[1]],
                                                 body_grid.zs[bowel[0]]]))
    for m, values in zip(masks, lesion_values):
        act[m.box][m.mask] = values
    return act


def add_noise(blurred: np.ndarray, rng: np.random.Generator, noise_cov: float = NOISE_COV) -> np.ndarray:
    """What the scanner reconstructs from the noise-free image: correlated Poisson-like noise, no negatives."""
    white = rng.standard_normal(blurred.shape, dtype=np.float32)
    coloured = ndimage.gaussian_filter(white, NOISE_CORRELATION_VOXELS)
    coloured /= max(float(coloured.std()), 1e-6)
    noisy = blurred + noise_cov * np.sqrt(np.maximum(blurred, 0)) * coloured
    return np.maximum(noisy, 0).astype(np.float32)


def scanner_image(activity: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator,
                  fwhm_mm: float = PSF_FWHM_MM, noise_cov: float = NOISE_COV) -> np.ndarray:
    """What the scanner reconstructs from voxel-constant ``activity``: the PSF (widened to the voxels), voxel
    averaging, then noise."""
    sigma = tuple(f / FWHM_PER_SIGMA for f in psf_fwhm_zyx(spacing, fwhm_mm))
    return add_noise(blur_voxels(activity, spacing, sigma), rng, noise_cov)


def ct_image(labels: np.ndarray, masks: list[LesionMask], organs: list[str], rng: np.random.Generator,
             moved: tuple[Grid, Motion] | None = None) -> np.ndarray:
    """CT in HU (int16): tissue numbers, lesions (sclerotic bone, soft-tissue nodules), the patient's motion
    (``moved``: grid and second-day motion) before Gaussian noise (none in air)."""
    hu = HU[labels]
    for m, organ in zip(masks, organs):
        hu[m.box][m.mask] = LESION_HU[organ]
    if moved is not None:
        hu = warp(hu, moved[0], moved[1], cval=-1000.0)
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= CT_NOISE_HU
    np.add(hu, noise, out=hu, where=hu > -999.5)  # air keeps its value
    np.round(hu, out=hu)
    np.clip(hu, -1024, 3071, out=hu)
    return hu.astype(np.int16)


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

    @property
    def stretch(self) -> float:
        """A bound of the displacement field's Lipschitz constant, sum_k |a_k| 2 pi |f_k|: two second-day points
        d apart come from first-day points at least d / (1 + stretch) apart."""
        return float(sum(np.linalg.norm(a) * 2 * np.pi * np.linalg.norm(f)
                         for a, f in zip(self.amplitudes_mm, self.frequencies_per_mm)))

    def reach(self, lo: np.ndarray, hi: np.ndarray) -> float:
        """A bound of how far (mm) the motion moves any point of the box [lo, hi] (x, y, z): the rotation's
        largest move, at a corner (|(R - I)(p - centre)| is convex), plus sum_k |a_k|."""
        corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T - np.asarray(self.centre)
        turned = np.linalg.norm(corners @ (self.rotation - np.eye(3)).T, axis=1).max()
        return float(turned + sum(np.linalg.norm(a) for a in self.amplitudes_mm))

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
        """First-day position of second-day points (N, 3): the fixed-point iteration u <- q - d(u) (a contraction,
        |grad d| < 0.1), ten steps from u = q. It is carried by the phases theta_k = 2 pi f_k.u + phi_k alone:
        theta_k(q - d(u)) = theta_k(q) - sum_j (2 pi f_k.a_j) sin theta_j(u), so each step costs one sine per wave
        and point instead of a displacement vector (same iterates, to rounding)."""
        q = np.atleast_2d(q).astype(float)
        waves = 2 * np.pi * np.asarray(self.frequencies_per_mm, float)  # (K, 3)
        amps = np.asarray(self.amplitudes_mm, float)
        coupling = waves @ amps.T  # coupling[k, j] = 2 pi f_k . a_j
        start = [q[:, 0] * w[0] + q[:, 1] * w[1] + q[:, 2] * w[2] + ph for w, ph in zip(waves, self.phases)]
        theta = start
        for _ in range(9):
            sines = [np.sin(t) for t in theta]
            theta = [b - sum(coupling[k, j] * s for j, s in enumerate(sines)) for k, b in enumerate(start)]
        u = q.copy()
        for t, a in zip(theta, amps):
            u -= np.sin(t)[:, None] * a
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


SLAB = 16  # slices per slab when whole volumes are mapped


def _linear_weights(position: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation at fractional lattice indices (clamped to the lattice of ``n`` points): per position
    the lower neighbour i and the weights of i and i + 1 (the two nonzero entries of a row of the weight matrix)."""
    p = np.clip(position, 0.0, n - 1.0)
    i = np.minimum(np.floor(p).astype(int), max(n - 2, 0))
    f = (p - i).astype(np.float32)
    return i, 1.0 - f, f


def _interpolate(values: np.ndarray, axis: int, weights: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``values`` linearly interpolated along ``axis`` (:func:`_linear_weights`): w0 v[i] + w1 v[i + 1], the
    same sum as the dense weight matrix's product (its other terms are exact zeros)."""
    i, w0, w1 = weights
    shape = [1] * values.ndim
    shape[axis] = len(i)
    upper = np.minimum(i + 1, values.shape[axis] - 1)  # a one-point lattice: w1 = 0
    return (np.take(values, i, axis=axis) * w0.reshape(shape)
            + np.take(values, upper, axis=axis) * w1.reshape(shape))


def _lattice(grid: Grid, motion: Motion, window: tuple[slice, slice] = (slice(None), slice(None)),
             lattice_mm: float = 16.0):
    """The inverse map on a coarse lattice over ``grid``: returns slab(k0, k1) -> first-day (x, y, z) arrays
    (z, y, x shaped) of the second-day voxel centres of slices k0:k1 in the rows and columns ``window``. The map is
    smooth (a rotation plus displacements of wavelength >= 200 mm), so trilinear interpolation (separable: along
    z, then y, then x) from a 16 mm lattice errs < 0.05 mm. Only the lattice rows and columns the window's voxels
    interpolate from are mapped."""
    fine = (grid.zs, grid.ys[window[0]], grid.xs[window[1]])
    full = (grid.zs, grid.ys, grid.xs)
    coarse = [np.linspace(a[0], a[-1], max(2, int(np.ceil(abs(a[-1] - a[0]) / lattice_mm)) + 1)) for a in full]
    weights = [_linear_weights((a - c[0]) / (c[1] - c[0]) if c[1] != c[0] else np.zeros(len(a)), len(c))
               for a, c in zip(fine, coarse)]
    used = [slice(int(w[0].min()), min(int(w[0].max()) + 2, len(c))) if len(w[0]) else slice(0, 0)
            for w, c in zip(weights, coarse)]
    weights = [(w[0] - u.start, w[1], w[2]) for w, u in zip(weights, used)]
    cz, cy, cx = np.meshgrid(*(c[u] for c, u in zip(coarse, used)), indexing="ij")
    src = motion.inverse(np.column_stack([cx.ravel(), cy.ravel(), cz.ravel()]))
    # x, y, z of the source on the lattice; float32 (< 1e-4 mm off): the voxel arrays are built in it
    source = [src[:, i].reshape(cz.shape).astype(np.float32) for i in range(3)]

    def slab(k0: int, k1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wz = tuple(w[k0:k1] for w in weights[0])
        return tuple(_interpolate(_interpolate(_interpolate(s, 0, wz), 1, weights[1]), 2, weights[2])
                     for s in source)
    return slab


def _axis_step(axis: np.ndarray) -> float:
    return float(axis[1] - axis[0]) if len(axis) > 1 else 1.0


def warp(volume: np.ndarray, grid: Grid, motion: Motion, cval: float, lattice_mm: float = 16.0) -> np.ndarray:
    """The second-day image: ``volume`` (first-day positions on ``grid``) resampled linearly through ``motion``'s
    inverse (used for the CT; the PET is rendered from the moved geometry, :class:`Pose`), slab by slab. Where
    the voxels a point reads (its 2x2x2 neighbours, all within one voxel of the nearest) all hold ``cval`` (air
    around the patient), the point is ``cval`` without interpolating; so are the rows and columns the motion cannot
    bring a voxel of another value to (:meth:`Pose.window`, 2 voxels to spare)."""
    out = np.full_like(volume, cval)
    held = volume != cval
    rows, cols = np.flatnonzero(held.any(axis=(0, 2))), np.flatnonzero(held.any(axis=(0, 1)))
    if not len(rows):
        return out
    # only the rows and columns the motion can bring the held voxels to are computed
    window = Pose(np.zeros(3), motion).window(grid, np.array([grid.xs[cols[0]], grid.ys[rows[0]], grid.zs.min()]),
                                              np.array([grid.xs[cols[-1]], grid.ys[rows[-1]], grid.zs.max()]))
    around = (slice(None), slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    differs = np.zeros_like(held)
    differs[around] = ndimage.maximum_filter(held[around], size=3)
    slab = _lattice(grid, motion, window, lattice_mm)
    steps = [_axis_step(a) for a in (grid.zs, grid.ys, grid.xs)]
    origin = (float(grid.zs[0]), float(grid.ys[0]), float(grid.xs[0]))  # Python floats keep float32 coordinates
    for k0 in range(0, len(grid.zs), SLAB):
        x, y, z = slab(k0, k0 + SLAB)
        coords = [(c - o) / st for c, o, st in zip((z, y, x), origin, steps)]
        nearest = tuple(np.clip(np.rint(c), 0, n - 1).astype(int) for c, n in zip(coords, volume.shape))
        read = differs[nearest]
        out[k0:k0 + SLAB, window[0], window[1]][read] = ndimage.map_coordinates(
            volume, [c[read] for c in coords], order=1, mode="constant", cval=cval)
    return out


@dataclass(frozen=True)
class Pose:
    """Where the body lies in one scan: body-frame point b is at ``motion.forward(b + shift)`` (or ``b + shift``
    without motion) in the scan's patient coordinates."""

    shift: np.ndarray
    motion: Motion | None = None

    def from_body(self, b: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(b) + self.shift
        return q if self.motion is None else self.motion.forward(q)

    def to_body(self, q: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(q).astype(float)
        return (q if self.motion is None else self.motion.inverse(q)) - self.shift

    def body_offsets(self, offsets: np.ndarray) -> np.ndarray:
        """Small scan-frame offsets (N, 3) as body-frame offsets: the rotation's inverse (the deformation's
        gradient, < 0.04, is left out: < 0.1 mm over a voxel)."""
        return offsets if self.motion is None else offsets @ self.motion.rotation

    def window(self, grid: Grid, lo: np.ndarray, hi: np.ndarray, margin: int = 2) -> tuple[slice, slice]:
        """The rows and columns of ``grid`` that hold the scan positions of the body-frame box [lo, hi] (x, y, z),
        with ``margin`` voxels to spare."""
        reach = 0.0 if self.motion is None else self.motion.reach(lo + self.shift, hi + self.shift)
        spare = [reach + margin * abs(_axis_step(axis)) for axis in (grid.xs, grid.ys)]
        y, x = (index_range(axis, lo[a] + self.shift[a] - spare[a], hi[a] + self.shift[a] + spare[a])
                for a, axis in ((1, grid.ys), (0, grid.xs)))
        return y, x

    def voxel_slabs(self, grid: Grid, halo: int = 0, window: tuple[slice, slice] = (slice(None), slice(None))):
        """(k0, k1, ka, x, y, z): the body-frame coordinates of the voxel centres of ``grid`` (rows and columns
        ``window``), slab by slab: slices k0:k1 and up to ``halo`` slices more on each side (the arrays start at
        slice ka)."""
        slab = None if self.motion is None else _lattice(grid, self.motion, window)
        for k0 in range(0, len(grid.zs), SLAB):
            k1 = min(k0 + SLAB, len(grid.zs))
            ka, kb = max(k0 - halo, 0), min(k1 + halo, len(grid.zs))
            if slab is None:
                z, y, x = np.meshgrid(grid.zs[ka:kb], grid.ys[window[0]], grid.xs[window[1]], indexing="ij",
                                      sparse=True)
                x, y, z = np.broadcast_arrays(x, y, z)
            else:
                x, y, z = slab(ka, kb)
            yield k0, k1, ka, *(c - float(s) for c, s in zip((x, y, z), self.shift))


@dataclass(frozen=True)
class LabelLattice:
    """Tissue labels of a body painted (:func:`sonimage.synth.anatomy.label_map`, exact at the nodes) on the
    regular body-frame lattice ``origin + n * step`` (x, y, z; integer n from ``first``); any point reads its
    nearest node's label."""

    labels: np.ndarray  # z, y, x
    origin: np.ndarray
    step: np.ndarray
    first: np.ndarray

    @staticmethod
    def extent(origin: np.ndarray, step: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first and last node (integer n per axis) covering the body-frame box [lo, hi] (x, y, z)."""
        a, b = (lo - origin) / step, (hi - origin) / step
        return np.floor(np.minimum(a, b)).astype(int), np.ceil(np.maximum(a, b)).astype(int)

    @classmethod
    def covering(cls, body: Body, origin: np.ndarray, step: np.ndarray, lo: np.ndarray, hi: np.ndarray
                 ) -> LabelLattice:
        """The lattice's nodes over the body-frame box [lo, hi] (x, y, z)."""
        first, last = cls.extent(origin, step, lo, hi)
        axes = [origin[i] + step[i] * np.arange(first[i], last[i] + 1) for i in range(3)]
        return cls(label_map(body, Grid(*axes)), origin, step, first)

    @classmethod
    def nearest_labels(cls, body: Body, origin: np.ndarray, step: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                       x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """What ``covering(...).read(*covering(...).nodes(x, y, z))`` gives, without painting the lattice: each
        point's nearest node (the same rounding) labelled by :func:`sonimage.synth.anatomy.labels_at` at its
        coordinates (the same as the painting's there), in groups of 32 neighbouring points. For points that need
        few of the nodes (one per voxel where the lattice has 27)."""
        first, _ = cls.extent(origin, step, lo, hi)
        node = [(first[a] + ((c - origin[a]) / step[a] - first[a] + 0.5).astype(np.int32)) for a, c in
                enumerate((x, y, z))]
        return labels_at(body, *(origin[a] + step[a] * n for a, n in enumerate(node)), group=32)

    def nodes(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fractional node indices (x, y, z, from the first node) of body-frame points."""
        return tuple((c - self.origin[a]) / self.step[a] - self.first[a]  # type: ignore[return-value]
                     for a, c in enumerate((x, y, z)))

    def read(self, i: np.ndarray, j: np.ndarray, k: np.ndarray, half: float = 0.5) -> np.ndarray:
        """Labels of the nearest nodes to fractional node indices (x, y, z) that lie on the lattice (``half``: 0.5,
        or 0 where the indices already hold it)."""
        nz, ny, nx = self.labels.shape
        flat = (k + half).astype(np.int32)
        flat *= ny
        flat += (j + half).astype(np.int32)
        flat *= nx
        flat += (i + half).astype(np.int32)
        return self.labels.ravel()[flat]


def _activity(labels: np.ndarray, points: tuple[np.ndarray, np.ndarray, np.ndarray], table: np.ndarray
              ) -> np.ndarray:
    """Physiological SUV of tissue ``labels`` at body-frame ``points`` (x, y, z arrays of the labels' shape):
    tissue uptake with the bowel's texture."""
    act = np.asarray(table, np.float32)[labels]
    bowel = labels == Tissue.BOWEL
    if bowel.any():
        act[bowel] *= bowel_texture(np.column_stack([p[bowel] for p in points]))
    return act


def _tissue_activity(body: Body, points: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Physiological SUV at body-frame points (N, 3): tissue uptake with the bowel's texture."""
    return _activity(tissue_at(body, points), tuple(points.T), table)  # type: ignore[arg-type]


def _edges(labels: np.ndarray) -> np.ndarray:
    """Voxels with a face neighbour of another label. A sub-voxel point s (offsets in voxels) across a planar
    boundary from the centre puts the face neighbour along the normal's largest component across it too (n.e_i =
    max |n_i| >= n.s when sum |s_i| <= 1, which holds for supersample 3, |s_i| <= 1/3, not beyond), so these are
    the voxels a locally planar tissue boundary passes through."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        step = np.diff(labels, axis=axis) != 0
        lower, upper = ([slice(None)] * labels.ndim for _ in range(2))
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        edge[tuple(lower)] |= step
        edge[tuple(upper)] |= step
    return edge


def organ_activity(body: Body, grid: Grid, pose: Pose, table: np.ndarray, supersample: int = 3
                   ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Voxel-mean physiological SUV of ``body`` in the scan (``pose``): tissue labels at the voxel centres (through
    the pose, so the second day's motion moves the organs); where a face neighbour holds another tissue
    (:func:`_edges`), the mean over ``supersample``^3 sub-voxel points (partial volume) and the first moments along z, y, x
    (mean of activity x offset, mm; zero elsewhere; :func:`sonimage.synth.psf.blur_voxels`). Only the rows and
    columns that can hold the body (:meth:`Pose.window`) are evaluated; the rest is air.

    Labels are read from a :class:`LabelLattice` of ``supersample`` (odd) nodes per voxel and axis, painted slab
    by slab in the body frame through the first voxel's first sub-voxel point: without motion its nodes are the
    sub-voxel points and voxel centres themselves (exact, as :func:`sonimage.synth.anatomy.labels_at` there); with
    the second day's motion each point (voxel centres from the pose's lattice, :func:`_lattice`) reads its nearest
    node, at most 1/(2 ``supersample``) voxel per axis off, and the sub-voxel points of edge voxels are evaluated
    exactly (:func:`sonimage.synth.anatomy.labels_at`)."""
    table = np.asarray(table, np.float32)
    act = np.full(grid.shape, table[Tissue.AIR], dtype=np.float32)  # air around the body's window
    moments = tuple(np.zeros(grid.shape, dtype=np.float32) for _ in range(3))
    window = pose.window(grid, body.bounds[0].min(axis=0), body.bounds[1].max(axis=0))
    y0, x0 = (w.start for w in window)
    if supersample not in (1, 3):  # beyond 3 the face-neighbour edge test misses corner cuts (:func:`_edges`)
        raise ValueError(f"supersample must be 1 or 3, not {supersample}")
    u = (np.arange(supersample) + 0.5) / supersample - 0.5
    sz, sy, sx = grid.spacing
    oz, oy, ox = np.meshgrid(u * sz, u * sy, u * sx, indexing="ij")
    scan_offsets = np.column_stack([oz.ravel(), oy.ravel(), ox.ravel()])  # z, y, x (mm, signed along the axes)
    scan_offsets[:, 0] *= np.sign(grid.zs[-1] - grid.zs[0]) if len(grid.zs) > 1 else 1.0  # index order, not mm
    offsets = pose.body_offsets(np.column_stack([ox.ravel(), oy.ravel(), oz.ravel()]))
    voxel = np.array([_axis_step(grid.xs), _axis_step(grid.ys), _axis_step(grid.zs)])
    step = voxel / supersample
    origin = np.array([grid.xs[0], grid.ys[0], grid.zs[0]]) - pose.shift + u[0] * voxel
    pad = np.abs(offsets).max(axis=0) + np.abs(step)  # every sub-voxel point falls on the slab's lattice
    rounding = (offsets / step + 0.5).astype(np.float32)  # node offsets of the sub-voxel points, + 0.5 to round
    weights = np.column_stack([np.ones(len(offsets)), scan_offsets]).astype(np.float32) / len(offsets)
    for k0, k1, ka, x, y, z in pose.voxel_slabs(grid, halo=1, window=window):
        if not x.size:  # the body is outside the field of view
            break
        lo = np.array([x.min(), y.min(), z.min()]) - pad
        hi = np.array([x.max(), y.max(), z.max()]) + pad
        if pose.motion is None:
            lattice = LabelLattice.covering(body, origin, step, lo, hi)
            nodes = lattice.nodes(x, y, z)
            labels = lattice.read(*nodes)
        else:  # only the voxel centres' nearest nodes are read: labelled where they are, not painted
            labels = LabelLattice.nearest_labels(body, origin, step, lo, hi, x, y, z)
        inner = slice(k0 - ka, k1 - ka)
        edge = _edges(labels)[inner]
        x, y, z, labels = x[inner], y[inner], z[inner], labels[inner]
        a = _activity(labels, (x, y, z), table)
        k, j, m = np.nonzero(edge)
        centres = (x[k, j, m], y[k, j, m], z[k, j, m])
        if pose.motion is None:  # the nodes are the sub-voxel points
            sub_labels = lattice.read(*(n[inner][k, j, m].astype(np.float32)[:, None] + rounding[None, :, axis]
                                        for axis, n in enumerate(nodes)), half=0.0)
        else:  # a nearest node can be 1/6 voxel off: the edge voxels' sub-voxel points exactly, voxel by voxel
            sub_labels = labels_at(body, *(c[:, None] + offsets[None, :, axis] for axis, c in enumerate(centres)),
                                   group=len(offsets))
        sub = table[sub_labels]
        bowel = np.nonzero(sub_labels == Tissue.BOWEL)
        if len(bowel[0]):
            sub[bowel] *= bowel_texture(np.column_stack([c[bowel[0]] + offsets[bowel[1], axis]
                                                         for axis, c in enumerate(centres)]))
        mean_and_moments = np.einsum("np,pc->cn", sub, weights)  # einsum: no BLAS thread pool
        a[k, j, m] = mean_and_moments[0]
        act[k0:k1, window[0], window[1]] = a
        for axis in range(3):
            moments[axis][k + k0, j + y0, m + x0] = mean_and_moments[axis + 1]
    return act, moments


@dataclass(frozen=True)
class LesionRender:
    """One lesion's part of the noise-free image (``image`` on the voxels ``box``) and its true uptake."""

    box: tuple[slice, slice, slice]
    image: np.ndarray
    true_suvmax: float
    true_suvmean: float


def render_lesion(body: Body, grid: Grid, pose: Pose, table: np.ndarray, sigma_zyx: tuple[float, float, float],
                  centre: np.ndarray, diameter_mm: float, uptake) -> LesionRender:
    """What one lesion adds to the noise-free image: its uptake minus the tissue it displaces, sampled on a
    <= 1 mm grid around it in the scan (points taken back through the pose, so the motion moves the lesion), through
    the PSF and averaged into the voxels (:func:`sonimage.synth.psf.spread`). ``centre``: body frame;
    ``uptake(rel)``: SUV at body-frame offsets (N, 3) from the centre."""
    r = diameter_mm / 2.0
    c = pose.from_body(centre)[0]
    margin = 1.0 + (0.05 * r if pose.motion is not None else 0.0)  # the deformation's stretch
    fine = tuple(fine_axis(c[a] - r - margin, c[a] + r + margin) for a in (2, 1, 0))  # z, y, x
    zz, yy, xx = np.meshgrid(*(f[0] for f in fine), indexing="ij")
    scan = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    # only points within r (1 + stretch) of the centre in the scan can lie within r of it in the body frame
    reach = (r + 1e-3) * (1.0 + (pose.motion.stretch if pose.motion is not None else 0.0)) + 1e-3
    near = np.flatnonzero(((scan - c) ** 2).sum(axis=1) <= reach * reach)
    rel = pose.to_body(scan[near]) - centre
    hold = (rel * rel).sum(axis=1) <= r * r
    inside = near[hold]
    values = np.zeros(len(scan), dtype=np.float32)
    lesion = uptake(rel[hold]) if len(inside) else np.zeros(1, np.float32)
    values[inside] = lesion - _tissue_activity(body, rel[hold] + centre, table)
    spacing = grid.spacing
    box = tuple(index_range(axis, c[a] - r - margin - 4 * s - h, c[a] + r + margin + 4 * s + h)
                for axis, a, s, h in zip((grid.zs, grid.ys, grid.xs), (2, 1, 0), sigma_zyx, spacing))
    voxels = tuple(axis[b] for axis, b in zip((grid.zs, grid.ys, grid.xs), box))
    image = spread(values.reshape(zz.shape), fine, voxels, spacing, sigma_zyx).astype(np.float32)
    return LesionRender(box, image, float(lesion.max()), float(lesion.mean()))  # type: ignore[arg-type]


def noise_free_image(body: Body, grid: Grid, pose: Pose, table: np.ndarray, fwhm_mm: float,
                     lesions: list[tuple[np.ndarray, float, object]]) -> tuple[np.ndarray, list[LesionRender]]:
    """The scanner's noise-free image of one scan: organs (partial-volume voxel means through the voxel PSF,
    :func:`sonimage.synth.psf.blur_voxels`) plus each lesion (:func:`render_lesion`), by linearity. ``lesions``:
    (body-frame centre, diameter, uptake function). The PSF is ``fwhm_mm`` widened to the voxels
    (:func:`sonimage.synth.psf.psf_fwhm_zyx`)."""
    sigma = tuple(f / FWHM_PER_SIGMA for f in psf_fwhm_zyx(grid.spacing, fwhm_mm))
    mean, moments = organ_activity(body, grid, pose, table)
    image = blur_voxels(mean, grid.spacing, sigma, moments)
    rendered = [render_lesion(body, grid, pose, table, sigma, c, d, f) for c, d, f in lesions]
    for les in rendered:
        image[les.box] += les.image
    np.maximum(image, 0.0, out=image)
    return image, rendered
