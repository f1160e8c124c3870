"""Morphological features (IBSI 1, section 3.1).

The mesh is scikit-image's marching cubes (Lewiner) on the zero-padded mask at level 0.5 with the voxel spacing;
its volume and area are summed per cube configuration from tables of that mesh (:func:`mesh_volume_area`), and
its convex hull is that of a few line-end points of the mask (:func:`convex_hull_measures`), so no mesh is built.
PCA axes come from the voxel-centre positions (mm) inside the mask. Shape comes from the morphological mask;
the intensity-weighted centre, integrated intensity (mean × mesh volume), Moran's I and Geary's C from the
intensities of the intensity mask (IBSI 1, section 3.1; the two differ after re-segmentation). Moran's I and Geary's C use the IBSI weights
w_ij = 1 / distance (mm) over every voxel pair; they are computed exactly without forming pairs: on a regular
grid the weight depends only on the offset, so every pair sum is a circular FFT convolution on a grid of
(2n − 1) per axis (n = bounding-box size), memory linear in the bounding box. Above :data:`SPATIAL_MAX_CELLS`
grid cells they are NaN with a reason instead.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dctn, fft, next_fast_len, rfft
from scipy.special import eval_legendre
from skimage.measure import marching_cubes

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.kernels import (
    bounding_box,
    cube_configurations,
    hull_candidates,
    hull_measures,
    lattice_hull,
    spectral_pair_sums,
    voxel_moments,
)
from sonimage.features.statistics import to_features

FAMILY = "morphology"

SPATIAL_MAX_CELLS = 1 << 25  # FFT grid cells for Moran's I / Geary's C (~270 MB per float64 array)

SPECS = (
    ("volume", "Volume (mesh)", "RNU0"),
    ("volume_voxels", "Volume (voxel counting)", "YEKZ"),
    ("area", "Surface area (mesh)", "C0JK"),
    ("surface_volume", "Surface to volume ratio", "2PR5"),
    ("compactness1", "Compactness 1", "SKGS"),
    ("compactness2", "Compactness 2", "BQWJ"),
    ("spherical_disproportion", "Spherical disproportion", "KRCK"),
    ("sphericity", "Sphericity", "QCFX"),
    ("asphericity", "Asphericity", "25C7"),
    ("com_shift", "Centre of mass shift", "KLMA"),
    ("max_diameter", "Maximum 3D diameter", "L0JK"),
    ("major", "Major axis length", "TDIC"),
    ("minor", "Minor axis length", "P9VJ"),
    ("least", "Least axis length", "7J51"),
    ("elongation", "Elongation", "Q3CK"),
    ("flatness", "Flatness", "N17B"),
    ("vd_aabb", "Volume density (axis-aligned bounding box)", "PBX1"),
    ("ad_aabb", "Area density (axis-aligned bounding box)", "R59B"),
    ("vd_aee", "Volume density (approximate enclosing ellipsoid)", "6BDE"),
    ("ad_aee", "Area density (approximate enclosing ellipsoid)", "RDD2"),
    ("vd_conv_hull", "Volume density (convex hull)", "R3ER"),
    ("ad_conv_hull", "Area density (convex hull)", "7T7F"),
    ("integrated_intensity", "Integrated intensity", "99N0"),
    ("moran_i", "Moran’s I index", "N365"),
    ("geary_c", "Geary’s C measure", "NPT7"),
)


@lru_cache(maxsize=1)
def _unit_triangles() -> tuple[np.ndarray, np.ndarray]:
    """Triangles (k, 3 vertices, zyx) of scikit-image's marching cubes (Lewiner) in a unit cube for each of the
    254 corner configurations with a surface at level 0.5, and the configuration of each triangle.

    Bit ``4 dz + 2 dy + dx`` of a configuration is the cube's corner (dz, dy, dx). Lewiner's triangulation of a cube,
    ambiguous faces included, depends on that cube's eight values only, and spacing only scales the vertices.
    """
    triangles, owner = [], []
    for config in range(1, 255):
        cube = np.array([(config >> k) & 1 for k in range(8)], dtype=np.float32).reshape(2, 2, 2)
        verts, faces, _, _ = marching_cubes(cube, level=0.5)
        triangles.append(verts[faces])
        owner.append(np.full(len(faces), config))
    return np.concatenate(triangles).astype(np.float64), np.concatenate(owner)


@lru_cache(maxsize=64)
def _cube_tables(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per configuration (256): surface area, sum of a·(b × c) over its triangles in cube coordinates (mm), and
    the sum of their doubled area vectors (b − a) × (c − a)."""
    triangles, owner = _unit_triangles()
    triangles = triangles * np.asarray(spacing)
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    normal = np.cross(b - a, c - a)
    area = np.bincount(owner, 0.5 * np.sqrt(np.einsum("ij,ij->i", normal, normal)), minlength=256)
    local = np.bincount(owner, np.einsum("ij,ij->i", a, np.cross(b, c)), minlength=256)
    normals = np.stack([np.bincount(owner, normal[:, k], minlength=256) for k in range(3)], axis=1)
    return area, local, normals


def mesh_volume_area(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """Enclosed volume (mm³) and surface area (mm²) of the mask's marching-cubes mesh (scikit-image, Lewiner, on
    the zero-padded mask at level 0.5), without building the mesh.

    Each 2 × 2 × 2 cube of the padded grid contributes the triangles of its corner configuration (see
    :func:`_unit_triangles`), so the area is a sum of per-configuration areas. The volume is the divergence
    theorem's sum of a·(b × c) / 6 over the triangles; with a = o + a' (o the cube's corner, a' in cube
    coordinates) each triangle gives a'·(b' × c') + o·((b' − a') × (c' − a')), so the sum needs per configuration
    only the count of its cubes and the sum of their corners.
    """
    spacing = tuple(float(s) for s in spacing)
    area, local, normals = _cube_tables(spacing)
    counts, corners = cube_configurations(np.ascontiguousarray(mask, dtype=np.bool_))
    corners = corners * np.asarray(spacing)
    volume = abs(float(counts @ local) + float(np.einsum("ij,ij->", corners, normals))) / 6.0
    return volume, float(counts @ area)


HULL_MAX_VOXELS = 1 << 14  # voxels along an axis for the exact hull: doubled coordinates stay below 2^15


def convex_hull_measures(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float, float] | None:
    """Volume (mm³), surface area (mm²) and largest vertex distance (mm, IBSI's maximum 3D diameter) of the
    convex hull of the mask's marching-cubes mesh vertices; None when the hull is flat.

    The mesh vertices are the midpoints between 6-neighbour ROI and background voxels (level 0.5 on a 0/1 mask),
    and every ROI voxel centre lies between two of them, so the hull is that of the half-voxel steps out of the
    ROI at both ends of every line of voxels along each axis. A hull vertex is strictly extreme in its plane
    along both other axes, so line ends that are not are left out (:func:`kernels.hull_candidates`). Doubled,
    these points are small integers, so Quickhull runs in exact arithmetic (:func:`kernels.lattice_hull`) and
    spacing is applied to the hull found (a scaling maps hull to hull).
    """
    if max(mask.shape) >= HULL_MAX_VOXELS:
        raise ValueError(f"morphology: mask bounding box {mask.shape} exceeds {HULL_MAX_VOXELS} voxels along an axis")
    points = 2.0 * hull_candidates(np.ascontiguousarray(mask, dtype=np.bool_))
    triangles, is_vertex = lattice_hull(points)
    if triangles.size == 0:
        return None
    return hull_measures(points, triangles, is_vertex, np.asarray(spacing, dtype=np.float64) / 2.0)


def ellipsoid_area(a: float, b: float, c: float, terms: int = 20) -> float:
    """Surface area of an ellipsoid with semi-axes a ≥ b ≥ c (IBSI's Legendre series, 20 terms)."""
    alpha = max(np.sqrt(max(1.0 - b * b / (a * a), 0.0)), 1e-6)
    beta = max(np.sqrt(max(1.0 - c * c / (a * a), 0.0)), 1e-6)
    nu = np.arange(terms + 1)
    series = (alpha * beta) ** nu / (1.0 - 4.0 * nu**2) * eval_legendre(nu, (alpha**2 + beta**2) / (2 * alpha * beta))
    return float(4.0 * np.pi * a * b * np.sum(series))


def _fft_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Even FFT lengths of at least 2n − 1 per axis: every voxel-pair offset is distinct modulo them."""
    out = []
    for n in shape:
        p = next_fast_len(2 * n - 1, real=True)
        while p % 2:
            p = next_fast_len(p + 1, real=True)
        out.append(p)
    return tuple(out)


@lru_cache(maxsize=256)
def _weight_spectrum(spacing: tuple[float, float, float], fshape: tuple[int, ...]) -> np.ndarray:
    """The real FFT (``rfftn`` layout, float32) of the circular kernel 1/distance on the grid ``fshape``, 0 at 0,
    times the weights that turn a sum over the half spectrum into Parseval's mean over the full grid.

    The kernel is even along every axis, so its spectrum is real and equals a type-I DCT of one octant. Offsets
    no voxel pair of a box of n ≤ (p + 1) / 2 voxels per axis can have (n .. p − n) meet only zeros, so one
    spectrum serves every box with the same grid.
    """
    axes = [np.arange(p // 2 + 1, dtype=np.float64) * s for p, s in zip(fshape, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    dist = np.sqrt(zz**2 + yy**2 + xx**2)
    dist[0, 0, 0] = np.inf
    spectrum = dctn(1.0 / dist, type=1)
    # The half spectrum of the last axis holds every bin but the zero and Nyquist ones for a conjugate pair too.
    half = np.full(fshape[2] // 2 + 1, 2.0)
    half[[0, -1]] = 1.0
    spectrum = (spectrum * half / float(np.prod(fshape))).astype(np.float32)
    # Unfold the first two axes: bin k of an even length p holds the octant's min(k, p - k).
    spectrum = np.concatenate((spectrum, spectrum[-2:0:-1]), axis=0)
    return np.ascontiguousarray(np.concatenate((spectrum, spectrum[:, -2:0:-1]), axis=1))


def _padded_spectra(stack: np.ndarray, fshape: tuple[int, ...]) -> np.ndarray:
    """``rfftn`` of each array of ``stack`` (k, n0, n1, n2) zero-padded to ``fshape``, one axis at a time so that
    the transforms along the last two axes run only over the lines that hold data (about 40 % less work)."""
    k, n0, n1, _ = stack.shape
    spectra = np.zeros((k, fshape[0], fshape[1], fshape[2] // 2 + 1), dtype=np.complex64)  # padded once
    spectra[:, :n0, :n1] = rfft(stack, n=fshape[2], axis=-1)
    spectra[:, :n0] = fft(spectra[:, :n0], axis=-2, overwrite_x=True)
    return fft(spectra, axis=-3, overwrite_x=True)


def spatial_autocorrelation(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float, str]:
    """Moran's I, Geary's C (IBSI, inverse-distance weights over all voxel pairs) and a reason when NaN.

    Every pair sum is a sum over the grid of one array times the 1/distance convolution of another, evaluated in
    the frequency domain (Parseval), so three forward real FFTs (pruned: :func:`_padded_spectra`) and no inverse are
    needed. Cost follows the array
    size: pass arrays cut to the mask's bounding box. The FFTs run in single precision, sums in double
    (relative error ~1e-6, far below IBSI's 3 significant digits).
    """
    n = int(mask.sum())
    if n < 2:
        return float("nan"), float("nan"), "fewer than two voxels: spatial autocorrelation undefined"
    x = image.astype(np.float64)
    a = np.where(mask, x - float(x[mask].mean()), 0.0)
    denom = float(np.sum(a**2))
    if denom == 0:
        return float("nan"), float("nan"), "zero intensity variance: spatial autocorrelation undefined"
    fshape = _fft_shape(mask.shape)
    if int(np.prod(fshape)) > SPATIAL_MAX_CELLS:
        return float("nan"), float("nan"), f"ROI bounding box {mask.shape} too large for exact spatial autocorrelation"
    w_hat = _weight_spectrum(tuple(float(s) for s in spacing), fshape)
    spectra = _padded_spectra(np.stack((mask, a, a * a)).astype(np.float32), fshape)
    # sum of the weights over ROI pairs, sum_ij w_ij a_i a_j, sum_ij w_ij a_i^2
    s0, cross, squares = spectral_pair_sums(spectra, w_hat)
    moran = n / s0 * cross / denom
    geary = (n - 1) / (2.0 * s0) * (2.0 * squares - 2.0 * cross) / denom
    return moran, geary, ""


def morphology_values(roi: Roi, spatial: bool = True) -> tuple[dict[str, float], dict[str, str]]:
    """All morphological values of the ROI and the reasons for any NaN among them (Moran's I and Geary's C NaN
    unless ``spatial``)."""
    nan = float("nan")
    reasons: dict[str, str] = {}
    box = bounding_box(roi.shape_mask)
    if box is None:
        raise ValueError("morphology: the mask is empty")
    image, mask, inside = roi.image[box], roi.shape_mask[box], roi.mask[box]
    volume, area = mesh_volume_area(mask, roi.spacing)
    n = int(mask.sum())
    centre, cov, weighted, total = voxel_moments(mask, inside, image, np.asarray(roi.spacing, dtype=np.float64))
    v: dict[str, float] = {"volume": volume, "volume_voxels": n * roi.voxel_volume, "area": area}
    sphere = 36.0 * np.pi * volume**2
    v.update(surface_volume=area / volume, compactness1=volume / (np.sqrt(np.pi) * area**1.5),
             compactness2=sphere / area**3, spherical_disproportion=area / sphere ** (1 / 3),
             sphericity=sphere ** (1 / 3) / area, asphericity=(area**3 / sphere) ** (1 / 3) - 1.0)
    v["com_shift"] = float(np.linalg.norm(centre - weighted))
    if np.isnan(v["com_shift"]):
        reasons["com_shift"] = "intensities sum to zero: no intensity-weighted centre"
    hull = convex_hull_measures(mask, roi.spacing)
    if hull is not None:
        hull_volume, hull_area, v["max_diameter"] = hull
    else:
        hull_volume = hull_area = v["max_diameter"] = nan
        reasons.update(dict.fromkeys(("vd_conv_hull", "ad_conv_hull", "max_diameter"), "degenerate convex hull"))
    lam = np.sort(np.clip(np.linalg.eigvalsh(cov) if n > 1 else np.zeros(3), 0.0, None))[::-1]
    v.update(major=4 * np.sqrt(lam[0]), minor=4 * np.sqrt(lam[1]), least=4 * np.sqrt(lam[2]))
    with np.errstate(divide="ignore", invalid="ignore"):
        v.update(elongation=float(np.sqrt(lam[1] / lam[0])), flatness=float(np.sqrt(lam[2] / lam[0])))
    extent = np.asarray(mask.shape) * np.asarray(roi.spacing)  # of the mesh: half a voxel out on every side
    v["vd_aabb"] = volume / float(np.prod(extent))
    v["ad_aabb"] = area / float(2 * (extent[0] * extent[1] + extent[0] * extent[2] + extent[1] * extent[2]))
    semi = 2.0 * np.sqrt(lam)
    if semi[2] > 0:
        v["vd_aee"] = volume / (4.0 * np.pi / 3.0 * float(np.prod(semi)))
        v["ad_aee"] = area / ellipsoid_area(*semi)
    else:
        v["vd_aee"] = v["ad_aee"] = nan
        reasons.update(dict.fromkeys(("vd_aee", "ad_aee"), "ROI is flat or a single voxel: no enclosing ellipsoid"))
    for key in ("elongation", "flatness"):
        if not np.isfinite(v[key]):
            v[key] = nan
            reasons[key] = "single voxel: no principal axes"
    v["vd_conv_hull"] = volume / hull_volume
    v["ad_conv_hull"] = area / hull_area
    v["integrated_intensity"] = total / int(np.count_nonzero(inside)) * volume
    if spatial:
        v["moran_i"], v["geary_c"], why = spatial_autocorrelation(image, inside, roi.spacing)
    else:
        v["moran_i"] = v["geary_c"] = nan
        why = "not computed: spatial_autocorrelation is off in the settings"
    if why:
        reasons.update(moran_i=why, geary_c=why)
    return v, reasons


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",)) -> list[Feature]:
    """The 25 IBSI morphological features of the ROI (``dims`` ignored)."""
    values, reasons = morphology_values(roi, settings.spatial_autocorrelation)
    return to_features(FAMILY, SPECS, values, reasons)
