"""The PERCIST liver reference: an automatic 3 cm spherical VOI in the right liver lobe, from the CT and the PET.

PERCIST 1.0 (Wahl et al., J Nucl Med 2009;50 Suppl 1:122S–150S) takes normal-liver SUL in a 3 cm diameter sphere
in the right lobe; a lesion is measurable above 1.5 × liver SULmean + 2 SD. The VOI is placed without a manual
step, on the PET grid:

1. the CT is resampled onto the PET grid (same frame of reference; only the columns that hold the body, the
   same result at a fraction of the CPU); body = CT > -500 HU; lungs = air
   (< -400 HU) inside the body, filled slice by slice, kept as the large 3D connected air components only (the
   classical lung segmentation: threshold, drop the air outside the body, keep the largest components; Hu,
   Hoffman & Reinhardt, IEEE Trans Med Imaging 2001;20:490–498): every component of at least
   :data:`LUNG_MIN_ML` and a tenth of the largest. Bowel gas and the thin air gaps of a moved patient are no
   lung: counted as lung, they put the "lung base" in the pelvis and the search region 470 mm below the liver
   (an FES scan of the synthetic IMPACT study: FES liver VOI at SUV 0.82 in the legs). The lung base is the
   lowest slice with ≥ 5 cm² of lung;
2. search region: the right upper abdomen, from 250 mm below to 30 mm above the lung base, on the patient's
   right of the body's centre (LPS: x below the body centroid);
3. a sphere centre is a candidate where the whole sphere (+ 3 mm) lies in soft tissue (smoothed CT 0–100 HU)
   and the PET inside the sphere is uniform (coefficient of variation ≤ 0.25) and above the body's median
   uptake (the liver is above background for FDG and FES);
4. candidates are grouped into connected regions; the liver is the largest (the largest soft-tissue organ of
   the right upper abdomen), and the VOI is centred at its deepest point (largest distance to its border).

The liver values (mean, SD, voxel count, centre, tracer) are written per scan for QC (``liver_reference.parquet``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from sonimage.features.convolution import fft_convolve_same
from sonimage.volumes.volume import Volume

VOI_DIAMETER_MM = 30.0
MAX_COV = 0.25
LUNG_BASE_AREA_MM2 = 500.0
LUNG_MIN_ML = 200.0  # one lung holds litres; bowel gas and motion gaps tens of mL
IN_PLANE = np.array([np.zeros((3, 3), bool), ndimage.generate_binary_structure(2, 1), np.zeros((3, 3), bool)])


@dataclass(frozen=True)
class LiverReference:
    """Normal-liver uptake of one PET scan in SUVbw (and on the SUL scale with ``sul_ratio``); NaN with ``note``
    when no VOI was found."""

    suv_mean: float
    suv_sd: float
    n_voxels: int
    centre_x_mm: float
    centre_y_mm: float
    centre_z_mm: float
    sul_ratio: float = float("nan")
    lbm_formula: str = "Janmahasatian"
    note: str = ""

    @property
    def sul_mean(self) -> float:
        """Liver SULmean."""
        return self.suv_mean * self.sul_ratio

    @property
    def sul_sd(self) -> float:
        """SD of the liver SUL."""
        return self.suv_sd * self.sul_ratio

    @property
    def percist_threshold_suv(self) -> float:
        """PERCIST's 1.5 × liver mean + 2 SD, on the SUV scale (the same voxels as on the SUL scale)."""
        return 1.5 * self.suv_mean + 2.0 * self.suv_sd

    def record(self) -> dict:
        """Flat QC row (SUL columns NaN without a lean-body-mass ratio)."""
        return {**asdict(self), "voi_diameter_mm": VOI_DIAMETER_MM, "sul_mean": self.sul_mean,
                "sul_sd": self.sul_sd, "percist_threshold_sul": self.percist_threshold_suv * self.sul_ratio,
                "percist_threshold_suv": self.percist_threshold_suv}


def _missing(note: str, sul_ratio: float, lbm_formula: str) -> LiverReference:
    nan = float("nan")
    return LiverReference(nan, nan, 0, nan, nan, nan, sul_ratio, lbm_formula, note)


def sphere_offsets(spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Boolean kernel of voxel offsets whose centres lie within ``radius_mm``."""
    half = [int(np.floor(radius_mm / s)) for s in spacing]
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= radius_mm**2 * (1 + 1e-9)


def _body_columns(ct: Volume, pet: Volume, margin: int) -> tuple[slice, slice]:
    """The rows and columns (y, x) of the PET grid whose resampled CT can be body (> -500 HU) on some slice, grown by
    ``margin`` voxels: the CT's body box (a voxel further: linear interpolation's reach) mapped onto the PET grid.
    Every step of :func:`liver_reference` gives the same result on them as on the whole grid (the CT resampled
    there differs in the last bits at most: its first voxel's position is rounded otherwise): outside them lies air
    only; the margin holds the reach of the CT smoothing (4 voxels) and of the sphere (or ends at the image's edge),
    and the distances to non-soft tissue find their nearest voxel on the margin's rim at the latest."""
    hu = np.asarray(ct.array)
    body = hu > -500
    rows, cols = np.flatnonzero(body.any(axis=(0, 2))), np.flatnonzero(body.any(axis=(0, 1)))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    corners = np.array([[k, j, i] for k in (0, hu.shape[0] - 1) for j in (rows[0] - 1, rows[-1] + 1)
                        for i in (cols[0] - 1, cols[-1] + 1)], float)
    kji = pet.physical_to_index(ct.index_to_physical(corners))
    lo = np.floor(kji.min(axis=0)).astype(int) - margin
    hi = np.ceil(kji.max(axis=0)).astype(int) + 1 + margin
    shape = pet.array.shape
    return (slice(max(int(lo[1]), 0), max(min(int(hi[1]), shape[1]), 0)),
            slice(max(int(lo[2]), 0), max(min(int(hi[2]), shape[2]), 0)))


def _on_pet_grid(ct: Volume, pet: Volume, rows: slice, cols: slice) -> np.ndarray:
    """The CT (HU) linearly resampled onto the PET grid (its ``rows`` and ``cols`` only), float32 (interpolated in
    double precision from the CT as stored: the same values as from a float32 copy of it)."""
    nz, ny, nx = pet.array.shape
    j0, j1, _ = rows.indices(ny)
    i0, i1, _ = cols.indices(nx)
    ref = sitk.Image([max(i1 - i0, 0), max(j1 - j0, 0), nz], sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(s) for s in pet.spacing[::-1]))
    ref.SetOrigin(tuple(float(o) for o in pet.index_to_physical(np.array([[0, j0, i0]], float))[0]))
    ref.SetDirection(tuple(float(d) for d in pet.direction))
    return sitk.GetArrayFromImage(sitk.Resample(ct.to_sitk(), ref, sitk.Transform(), sitk.sitkLinear, -1000.0,
                                                sitk.sitkFloat32))


def _within(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin`` voxels per axis, clipped to the array."""
    idx = [np.flatnonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a))) for a in range(mask.ndim)]
    return tuple(slice(max(int(i[0]) - m, 0), min(int(i[-1]) + 1 + m, n))
                 for i, m, n in zip(idx, margin, mask.shape))


def _depth_at_least(soft: np.ndarray, where: np.ndarray, spacing: tuple[float, float, float],
                    depth_mm: float) -> np.ndarray:
    """``soft`` voxels at least ``depth_mm`` from any non-soft voxel (Euclidean, as
    ``distance_transform_edt``), evaluated only inside ``where``'s box: the transform runs on that box grown by
    the depth, which holds every non-soft voxel nearer than ``depth_mm`` to it, so the test is the same as on the
    whole array."""
    out = np.zeros(soft.shape, bool)
    if not where.any():
        return out
    box = _within(where, tuple(int(np.ceil(depth_mm / s)) + 1 for s in spacing))
    out[box] = ndimage.distance_transform_edt(soft[box], sampling=spacing) >= depth_mm
    return out


def _fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled slice by slice: ``ndimage.binary_fill_holes(mask, IN_PLANE)`` (the background
    not connected within its slice to the slice's edge), from one labelling of the background's in-plane components
    instead of a dilation run to convergence."""
    background, n = ndimage.label(~mask, IN_PLANE)
    hole = np.ones(n + 1, bool)
    for edge in (background[:, 0, :], background[:, -1, :], background[:, :, 0], background[:, :, -1]):
        hole[edge] = False
    hole[0] = True  # the mask itself
    return hole[background]


def _lungs(air: np.ndarray, voxel_ml: float) -> np.ndarray:
    """The lungs among the air inside the body: the 3D connected components of at least :data:`LUNG_MIN_ML` and
    a tenth of the largest (see the module docstring)."""
    parts, n = ndimage.label(air)
    if n == 0:
        return air
    sizes = np.bincount(parts.ravel()) * voxel_ml
    sizes[0] = 0.0
    keep = (sizes >= LUNG_MIN_ML) & (sizes >= 0.1 * sizes.max())
    return keep[parts]


def liver_reference(pet: Volume, ct: Volume, sul_ratio: float | None = None,
                    lbm_formula: str = "Janmahasatian") -> LiverReference:
    """The automatic right-lobe liver VOI of a PET scan (SUV) and its CT (HU); see the module docstring."""
    ratio = float("nan") if sul_ratio is None else float(sul_ratio)
    spacing = tuple(float(s) for s in pet.spacing)
    radius = VOI_DIAMETER_MM / 2.0
    rows, cols = _body_columns(ct, pet, max(int(radius // min(spacing[1:])), 4) + 1)
    suv = np.asarray(pet.array[:, rows, cols], np.float64)  # the body's columns (see _body_columns)
    hu = _on_pet_grid(ct, pet, rows, cols)
    if 0 in hu.shape:
        return _missing("no body on the CT", ratio, lbm_formula)
    body = hu > -500
    labels, n = ndimage.label(body)
    if n == 0:
        return _missing("no body on the CT", ratio, lbm_formula)
    body = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    filled = _fill_holes_in_plane(body)
    lung = _lungs(filled & (hu < -400), float(np.prod(spacing)) / 1000.0)
    lung_area = lung.sum(axis=(1, 2)) * spacing[1] * spacing[2]
    centres = pet.index_to_physical(np.array([[k, 0, 0] for k in range(suv.shape[0])], float))
    slice_z = centres[:, 2]
    with_lung = np.flatnonzero(lung_area >= LUNG_BASE_AREA_MM2)
    if with_lung.size == 0:
        return _missing("no lungs on the CT: liver not located", ratio, lbm_formula)
    base_z = float(slice_z[with_lung].min())
    in_z = np.flatnonzero((slice_z >= base_z - 250.0) & (slice_z <= base_z + 30.0))
    if in_z.size == 0:
        return _missing("no slices below the lung base", ratio, lbm_formula)
    kk, jj, ii = np.nonzero(body)
    offset = np.array([0, rows.start, cols.start])
    body_x = pet.index_to_physical((np.stack([kk, jj, ii], 1)[:: max(1, kk.size // 20000)] + offset)
                                   .astype(float))[:, 0]
    x_axis = pet.index_to_physical(np.array([[0, 0, i] for i in range(cols.start, cols.stop)], float))[:, 0]
    right = x_axis < np.median(body_x)
    pad = int(np.ceil(radius / spacing[0])) + 2  # the search slab plus the sphere's reach
    slab = slice(max(int(in_z.min()) - pad, 0), min(int(in_z.max()) + 1 + pad, suv.shape[0]))
    in_slab = np.zeros(suv.shape[0], bool)
    in_slab[in_z] = True
    suv, hu, body, in_slab = suv[slab], hu[slab], body[slab], in_slab[slab]
    soft = ndimage.gaussian_filter(hu, 1.0)
    soft = (soft >= 0) & (soft <= 100) & body
    searched = soft & in_slab[:, None, None] & right[None, None, :]
    kernel = sphere_offsets(spacing, radius).astype(np.float64)
    count = kernel.sum()
    half = [kernel.shape[a] // 2 for a in range(3)]
    mean, cov = np.full(suv.shape, np.nan), np.full(suv.shape, np.nan)
    if searched.any():  # the sphere statistics where a centre is searched: its box grown by the sphere's reach
        box = _within(searched, tuple(half))
        part = suv[box]
        mean[box] = fft_convolve_same(part, kernel) / count
        var = np.maximum(fft_convolve_same(part * part, kernel) / count - mean[box] ** 2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cov[box] = np.sqrt(var) / mean[box]
    candidate = _depth_at_least(soft, searched, spacing, radius + 3.0) & (cov <= MAX_COV) & \
        (mean > np.median(suv[body])) & searched
    fits = np.zeros(candidate.shape, bool)  # the whole sphere inside the image (a liver at the scan's edge)
    fits[tuple(slice(h, size - h) for h, size in zip(half, candidate.shape))] = True
    candidate &= fits
    groups, n = ndimage.label(candidate)
    if n == 0:
        return _missing("no uniform soft-tissue region in the right upper abdomen", ratio, lbm_formula)
    largest = groups == (np.argmax(np.bincount(groups.ravel())[1:]) + 1)
    box = _within(largest, (1, 1, 1))  # its border of zeros holds the nearest zero of every voxel inside
    inner = ndimage.distance_transform_edt(largest[box], sampling=spacing)
    k, j, i = (int(v) + b.start for v, b in zip(np.unravel_index(int(np.argmax(inner)), inner.shape), box))
    window = tuple(slice(c - h, c + h + 1) for c, h in zip((k, j, i), half))
    values = suv[window][kernel.astype(bool)]
    centre = pet.index_to_physical(np.array([[k + slab.start, j + rows.start, i + cols.start]], float))[0]
    return LiverReference(float(values.mean()), float(values.std(ddof=1)), int(values.size), float(centre[0]),
                          float(centre[1]), float(centre[2]), ratio, lbm_formula)
