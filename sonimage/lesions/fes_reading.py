"""Reading FES per lesion: evaluability with reasons, and what a positive or negative call needs to be made.

The lesion contours are drawn on the FDG PET and carried onto the FES scan by the rigid CT registration
(:mod:`sonimage.lesions.registration`); they are used there as mapped. Nothing about the FES image moves a contour:
a search for "where the FES image looks like the lesion" measures FES where FES is high and so makes truly
FES-negative lesions read positive (issue 13: such a re-search moved 13 of 28 truly negative lesions by 4–5.7 mm,
and both false positives had been moved). No CT/FDG refinement is applied either: none was shown to help on the
truth benchmark (``bench/truth.py``).

Every lesion gets an evaluability flag and, when not evaluable, a reason, checked in this order:

1. ``no FES scan`` / ``registration failed`` / ``registration below quality threshold`` (NCC of the CTs below
   :attr:`~sonimage.settings.FesReadingSettings.min_ncc`): the whole patient;
2. ``liver``: FES-PET cannot read liver lesions (EANM/SNMMI FES guideline 2024);
3. ``near high FES uptake``: the lesion lies within :attr:`~sonimage.settings.FesReadingSettings.hot_distance_mm` of extra-lesional
   uptake ≥ :attr:`~sonimage.settings.FesReadingSettings.hot_suv` forming a region of at least :attr:`~sonimage.settings.FesReadingSettings.hot_min_ml` (liver,
   gallbladder, bowel, bladder; the lesions themselves, grown by one PSF FWHM, are excluded), it reads positive,
   and it might not without the spill-in. Spill-in is estimated as that hot uptake blurred by a Gaussian PSF of
   :attr:`~sonimage.settings.FesReadingSettings.fwhm_mm` and subtracted voxel by voxel; the estimate runs low for lesions touching an organ
   (the organ's blurred edge is below the hot level), so the corrected SUVmax must stay
   :attr:`~sonimage.settings.FesReadingSettings.spill_margin_suv` above the threshold. Spill-in only adds activity, so a lesion that reads
   negative next to the bowel is a valid negative, and one that stays clearly positive after the correction a
   valid positive. The default 12 mm is about two FWHM: spill-in from an SUV-20 organ falls below 0.05 SUV there;
4. ``local background at or above the FES threshold``: the lesion reads positive and the median FES SUV of its
   local background itself reaches the positivity threshold, so the lesion cannot be told from its background.

Per evaluable lesion the reading records what the call (:func:`sonimage.tables.patients.fes_calls`) needs:

- ``fes_n_voxels`` and ``fes_diameter_mm``: the contour's voxel count on the FES grid and its equivalent-sphere
  diameter (6V/π)^(1/3). The contours are on the PET (there is no CT segmentation); the equivalent-sphere diameter
  uses the whole 3D volume and, for the round lesions the recovery model assumes, equals the diameter, where the
  largest extent of a voxelised contour overstates it by up to a voxel;
- ``fes_rc``: the SUVmax recovery coefficient RC(d) at this scan's resolution (:func:`recovery_coefficient`) of a
  sphere :attr:`~sonimage.settings.FesReadingSettings.contour_margin_voxels` voxels (the largest voxel side) smaller than the contour
  (``fes_rc_diameter_mm``): a voxelised contour's diameter is uncertain by about a voxel, and a negative call must
  hold for a lesion that much smaller. Without the margin, on the truth benchmark at the demo size (8 mm voxels),
  contours drawn larger than the lesion made 23 of 304 ER-positive lesions "detectable" and read negative;
- ``fes_background_median`` and ``fes_background_p95``: FES SUV in a shell 1–2 FWHM around the lesion (other
  lesions grown by one FWHM and extra-lesional hot uptake left out); ``fes_lbr``, SUVmax over that median;
- ``fes_suvmax_pvc``: the recovery-coefficient partial-volume corrected SUVmax, background + (SUVmax −
  background) / RC(d) (RC floored at :data:`PVC_MIN_RC`, since the correction amplifies noise without bound in the
  smallest lesions). A sensitivity analysis only, never the primary reading: in oncology PVC raises sensitivity at
  the cost of specificity (Cysouw et al., Eur J Nucl Med Mol Imaging 2017;44:1491–1506);
- ``fes_lesion_spill_in_suv``: the FES SUV that the other drawn lesions spill into this lesion's maximum voxel
  (:func:`lesion_spill_in`, the geometric transfer matrix of Rousset, Ma & Evans, J Nucl Med 1998;39:904–911, at
  the lesions' maximum voxels). A positive call must stay positive with it subtracted
  (:func:`sonimage.tables.patients.fes_calls`): an ER-negative lesion whose contour takes in a hot neighbour's
  blurred edge is otherwise read positive (truth benchmark, full size: a 13.5 mm ER-negative lesion 2.8 mm from a
  lesion of FES SUV 6.6 read SUVmax 1.79).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.special import ndtr

from sonimage.lesions.liver import sphere_offsets
from sonimage.settings import FesReadingSettings

NOT_EVALUABLE_ORGANS = ("liver",)
PVC_MIN_RC = 0.1
MEASURES = ("fes_n_voxels", "fes_diameter_mm", "fes_rc_diameter_mm", "fes_rc", "fes_background_median", "fes_background_p95", "fes_lbr",
            "fes_suvmax_pvc", "fes_hot_distance_mm", "fes_spill_in_suv", "fes_suvmax_spill_corrected",
            "fes_lesion_spill_in_suv")


def _triangular_nodes(n: int) -> np.ndarray:
    """``n`` equal-probability nodes (quantile midpoints) of the triangular distribution on [−1, 1]: the sum of two
    independent uniforms on [−½, ½]."""
    u = (np.arange(n) + 0.5) / n
    return np.where(u < 0.5, -1.0 + np.sqrt(2.0 * u), 1.0 - np.sqrt(2.0 * (1.0 - u)))


def effective_sigma_mm(fwhm_mm: float, spacing: tuple[float, float, float],
                       min_sigma_voxels: float) -> np.ndarray:
    """Gaussian PSF σ per axis (mm): the scanner's ``fwhm_mm``, widened to ``min_sigma_voxels`` voxels where the
    voxels are coarser than the PSF (an image is not sharper than its sampling)."""
    return np.array([max(fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))), min_sigma_voxels * h) for h in spacing])


def recovery_coefficient(diameter_mm: np.ndarray | list[float] | float, fwhm_mm: float,
                         spacing: tuple[float, float, float], min_sigma_voxels: float = 0.5, grid: int = 81,
                         nodes: int = 48) -> np.ndarray:
    """SUVmax recovery of uniform spheres of ``diameter_mm`` (on zero background) at a Gaussian PSF of ``fwhm_mm``
    (σ per axis from :func:`effective_sigma_mm`) sampled into voxels of ``spacing`` (mm, z y x).

    A voxel reads the mean over the voxel of the blurred sphere, and the SUVmax is the voxel nearest the sphere's
    centre, its offset uniform over a voxel. The sphere blurred by the PSF (Kessler et al., J Comput Assist Tomogr
    1984;8:514–522; Soret, Bacharach & Buvat, J Nucl Med 2007;48:932–945), averaged over the voxel and the offset,
    is then P(‖Y‖ ≤ d/2) with independent Y per axis: Gaussian (PSF) + two uniforms of one voxel (box, offset),
    i.e. Gaussian + triangular on ±1 voxel. Computed as Σ_z Σ_y f(z) f(y) P(|Y_x| ≤ √(R² − z² − y²)) on a
    ``grid``² midpoint grid over the sphere's cross-section, the triangular part on ``nodes`` quantile nodes. On a
    background b a lesion of true uptake U reads b + RC(d) × (U − b).
    """
    sigma = effective_sigma_mm(fwhm_mm, spacing, min_sigma_voxels)
    tri = _triangular_nodes(nodes)
    out = []
    for radius in np.atleast_1d(np.asarray(diameter_mm, np.float64)) / 2.0:
        step = 2.0 * radius / grid
        axis = (np.arange(grid) + 0.5) * step - radius

        def density(i: int) -> np.ndarray:
            z = (axis[:, None] - tri[None, :] * spacing[i]) / sigma[i]
            return np.exp(-0.5 * z * z).mean(axis=1) / (sigma[i] * np.sqrt(2.0 * np.pi))

        left = radius * radius - axis[:, None] ** 2 - axis[None, :] ** 2
        chord = left > 0  # the grid is symmetric: each half-chord once (a quarter of the ndtr calls)
        values, where = np.unique(left[chord], return_inverse=True)
        half = np.sqrt(values)[:, None]
        shift = tri * spacing[2]
        inside = np.zeros(left.shape)
        inside[chord] = (ndtr((half - shift) / sigma[2]) - ndtr((-half - shift) / sigma[2])).mean(axis=-1)[where]
        out.append(float((density(0)[:, None] * density(1)[None, :] * inside).sum() * step * step))
    return np.array(out)


def grow(mask: np.ndarray, spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """``mask`` dilated by a ball of ``radius_mm``."""
    return ndimage.binary_dilation(mask, sphere_offsets(spacing, radius_mm)) if radius_mm > 0 else mask.copy()


def hot_regions(fes: np.ndarray, lesions: np.ndarray, spacing: tuple[float, float, float],
                reading: FesReadingSettings) -> np.ndarray:
    """Extra-lesional FES uptake ≥ ``hot_suv`` in connected regions of ≥ ``hot_min_ml`` (found with the lesions
    grown by one FWHM left out, so a hot lesion is never an organ; then grown back up to the lesions' edges)."""
    above = fes >= reading.hot_suv
    hot = above & ~grow(lesions > 0, spacing, reading.fwhm_mm)
    labels, n = ndimage.label(hot)
    if n == 0:
        return hot
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(labels.ravel()) * voxel_ml
    keep = sizes >= reading.hot_min_ml
    keep[0] = False
    organs = keep[labels]
    # give back the organ voxels next to a lesion that the grown lesions hid (they spill the most)
    return organs | (grow(organs, spacing, reading.fwhm_mm) & above & ~(lesions > 0))


def lesion_spill_in(labels: np.ndarray, peaks: dict[int, tuple[int, int, int]], above: dict[int, float],
                    sigma_voxels: np.ndarray, reach_sigmas: float = 4.0) -> dict[int, float]:
    """Spill-in from the other lesions at each lesion's maximum voxel, by a geometric transfer matrix (GTM; Rousset,
    Ma & Evans, J Nucl Med 1998;39:904–911) with the lesions' maximum voxels as its regions.

    ``peaks`` maps label → its maximum voxel (index), ``above`` label → its measured SUVmax above local background.
    Each contour, as a uniform unit source, is blurred by the Gaussian PSF of ``sigma_voxels`` (per axis, voxels;
    the discrete normalised kernel); ω[j, k] is contour k's blurred value at lesion j's maximum voxel. The true
    uptakes above background T solve ω T = ``above`` (least squares), and lesion j's spill-in is
    Σ_{k≠j} ω[j, k] max(T_k, 0): spill-in only adds activity. Contours further than ``reach_sigmas`` σ contribute
    nothing (their weight is below e⁻⁸).
    """
    order = [k for k in peaks if k in above]
    if len(order) < 2:
        return dict.fromkeys(order, 0.0)
    boxes = ndimage.find_objects(labels)
    reach = np.ceil(reach_sigmas * sigma_voxels).astype(int)
    half = int(reach.max())
    norms = [np.exp(-0.5 * (np.arange(-half, half + 1) / s) ** 2).sum() for s in sigma_voxels]
    voxels = {k: np.argwhere(labels[boxes[k - 1]] == k) + [b.start for b in boxes[k - 1]] for k in order}
    omega = np.zeros((len(order), len(order)))
    for j, kj in enumerate(order):
        p = np.asarray(peaks[kj])
        for i, ki in enumerate(order):
            box = boxes[ki - 1]
            if any(p[a] < box[a].start - reach[a] or p[a] >= box[a].stop + reach[a] for a in range(3)):
                continue
            d = (voxels[ki] - p) / sigma_voxels
            omega[j, i] = float(np.exp(-0.5 * (d * d).sum(axis=1)).sum() / np.prod(norms))
    uptake = np.linalg.lstsq(omega, np.array([above[k] for k in order]), rcond=None)[0]
    cross = omega * np.maximum(uptake, 0.0)[None, :]
    return {k: float(cross[j].sum() - cross[j, j]) for j, k in enumerate(order)}


def hot_distance_mm(voxels: np.ndarray, tree: cKDTree, hot_voxels: np.ndarray,
                    spacing: tuple[float, float, float]) -> float:
    """Distance (mm) from the nearest of ``voxels`` (indices) to the nearest hot voxel (``hot_voxels``, indices,
    in ``tree`` at physical scale): the minimum over ``voxels`` of ``distance_transform_edt(~hot)``, computed as it
    computes it (offsets scaled by the spacing, squared, summed per axis), at the cost of a k-d tree query instead
    of a transform of the whole scan."""
    _, nearest = tree.query(voxels * np.asarray(spacing))
    offsets = (hot_voxels[nearest] - voxels).astype(np.float64) * np.asarray(spacing)
    return float(np.sqrt(np.add.reduce(offsets * offsets, axis=1)).min())


def blurred_window(image: np.ndarray, sigma: list[float], window: tuple[slice, ...]) -> np.ndarray:
    """``ndimage.gaussian_filter(image, sigma, mode="constant")[window]``, filtering only the window grown by the
    kernel's reach (4 σ, scipy's truncation): the same sums in the same order, so the same values."""
    grown = _grown_window(window, [int(4.0 * s + 0.5) for s in sigma], image.shape)
    blurred = ndimage.gaussian_filter(image[grown], sigma, mode="constant")
    return blurred[tuple(slice(w.start - g.start, w.stop - g.start) for w, g in zip(window, grown))]


def _grown_window(box: tuple[slice, ...], reach: list[int], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(b.start - r, 0), min(b.stop + r, n)) for b, r, n in zip(box, reach, shape))


def read_lesions(fes: np.ndarray, labels: np.ndarray, organs: dict[int, str], spacing: tuple[float, float, float],
                 reading: FesReadingSettings, threshold: float = 1.5) -> list[dict]:
    """One reading row per lesion label (see the module docstring).

    ``labels`` are the lesion labels carried onto the FES grid, used as they are; ``organs`` maps label → organ;
    ``threshold`` is the FES positivity threshold (SUV) of the evaluability reasons.
    """
    nan = float("nan")
    hot = hot_regions(fes, labels, spacing, reading)
    hot_voxels = np.argwhere(hot)
    tree = cKDTree(hot_voxels * np.asarray(spacing)) if len(hot_voxels) else None
    sigma = [reading.fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / s for s in spacing]
    hot_uptake = np.where(hot, fes, 0.0) if tree is not None else None
    reach = [int(np.ceil(2 * reading.fwhm_mm / s)) + 1 for s in spacing]
    boxes = ndimage.find_objects(labels) if labels.any() else []
    voxel_ml = float(np.prod(spacing)) / 1000.0
    shell_outer, shell_inner = sphere_offsets(spacing, 2 * reading.fwhm_mm), sphere_offsets(spacing, reading.fwhm_mm)
    rows, peaks = [], {}
    for label, organ in organs.items():
        box = boxes[label - 1] if 0 < label <= len(boxes) else None
        if box is None:
            rows.append({"label": label, "fes_evaluable": False,
                         "fes_not_evaluable_reason": "lesion not on the FES scan", **dict.fromkeys(MEASURES, nan)})
            continue
        win = _grown_window(box, reach, labels.shape)
        lab, img = labels[win], fes[win]
        mask = lab == label
        values = img[mask]
        voxels = np.argwhere(mask) + [w.start for w in win]
        near = hot_distance_mm(voxels, tree, hot_voxels, spacing) if tree is not None else float("inf")
        spill_in = blurred_window(hot_uptake, sigma, win)[mask] if hot_uptake is not None else np.zeros(values.shape)
        others = ndimage.binary_dilation((lab > 0) & ~mask, shell_inner)
        shell = ndimage.binary_dilation(mask, shell_outer) & ~ndimage.binary_dilation(mask, shell_inner) & \
            ~others & ~hot[win]
        ring = img[shell]
        background = float(np.median(ring)) if ring.size else nan
        suvmax = float(values.max())
        reads_positive = suvmax >= threshold
        if organ in NOT_EVALUABLE_ORGANS:
            reason = "liver"
        elif near < reading.hot_distance_mm and reads_positive and \
                (values - spill_in).max() < threshold + reading.spill_margin_suv:
            reason = "near high FES uptake (liver, gallbladder, bowel or bladder): positive only by spill-in"
        elif background >= threshold and reads_positive and near >= reading.hot_distance_mm:
            reason = "local background at or above the FES threshold"
        else:
            reason = ""
        rows.append({"label": label, "fes_evaluable": not reason, "fes_not_evaluable_reason": reason,
                     "fes_n_voxels": int(values.size),
                     "fes_diameter_mm": float((6.0 * values.size * voxel_ml * 1000.0 / np.pi) ** (1 / 3)),
                     "fes_background_median": background,
                     "fes_background_p95": float(np.percentile(ring, 95)) if ring.size else nan,
                     "fes_lbr": suvmax / background if background > 0 else nan,
                     "fes_hot_distance_mm": near, "fes_spill_in_suv": float(spill_in.max()),
                     "fes_suvmax_spill_corrected": float((values - spill_in).max()), "_suvmax": suvmax})
        peaks[label] = tuple(int(b.start) + int(i) for b, i in
                             zip(win, np.unravel_index(int(np.argmax(np.where(mask, img, -np.inf))), img.shape)))
    measured = [r for r in rows if "_suvmax" in r]
    above = {r["label"]: r["_suvmax"] - np.nan_to_num(r["fes_background_median"]) for r in measured}
    sigma_voxels = effective_sigma_mm(reading.fwhm_mm, spacing, reading.min_sigma_voxels) / np.asarray(spacing)
    neighbours = lesion_spill_in(labels, peaks, above, sigma_voxels)
    for r in measured:
        r["fes_lesion_spill_in_suv"] = neighbours[r["label"]]
    if measured:  # recovery coefficients and their correction for all lesions at once
        margin = reading.contour_margin_voxels * max(spacing)
        at = np.maximum([r["fes_diameter_mm"] - margin for r in measured], 0.0)
        rc = recovery_coefficient(np.maximum(at, 1e-3), reading.fwhm_mm, spacing, reading.min_sigma_voxels)
        for r, d, c in zip(measured, at, rc):
            r["fes_rc_diameter_mm"] = float(d)
            b = r["fes_background_median"] if np.isfinite(r["fes_background_median"]) else 0.0
            r.update(fes_rc=float(c), fes_suvmax_pvc=b + (r.pop("_suvmax") - b) / max(float(c), PVC_MIN_RC))
    return rows


def patient_rows(labels: list[int], organs: dict[int, str], reason: str) -> list[dict]:
    """Reading rows of a patient whose FES cannot be read at all (no scan, failed or poor registration)."""
    return [{"label": k, "fes_evaluable": False, "fes_not_evaluable_reason": reason,
             **dict.fromkeys(MEASURES, float("nan"))} for k in labels if k in organs]
