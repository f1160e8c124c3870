"""Reading FES per lesion so that spill-in from excreting organs is not called FES-positive.

FES is metabolised in the liver and excreted through bile, bowel and urine: liver, gallbladder, bowel and
bladder are hot (SUV 5–20), and the scanner's point-spread function (FWHM 5–7 mm) spills that activity into
lesions nearby. After the lesion labels are carried onto the FES scan (:mod:`sonimage.lesions.registration`),
every lesion gets an evaluability flag and, when not evaluable, a reason, checked in this order:

1. ``no FES scan`` / ``registration failed`` / ``registration below quality threshold`` (NCC of the CTs below
   :attr:`FesReading.min_ncc`): the whole patient;
2. ``liver``: FES-PET cannot read liver lesions (EANM/SNMMI FES guideline 2024);
3. ``near high FES uptake``: the lesion lies within :attr:`FesReading.hot_distance_mm` of extra-lesional
   uptake ≥ :attr:`FesReading.hot_suv` forming a region of at least :attr:`FesReading.hot_min_ml` (liver,
   gallbladder, bowel, bladder; the lesions themselves, grown by one PSF FWHM, are excluded), it reads positive,
   and it might not without the spill-in. Spill-in is estimated as that hot uptake blurred by a Gaussian PSF of
   :attr:`FesReading.fwhm_mm` and subtracted voxel by voxel; the estimate runs low for lesions touching an organ
   (the organ's blurred edge is below the hot level), so the corrected SUVmax must stay
   :attr:`FesReading.spill_margin_suv` above the threshold (1 SUV: chosen on the truth benchmark,
   ``bench/truth.py``, where spill-in next to SUV-10 organs was underestimated by up to ~4 SUV). Spill-in only
   adds activity, so a lesion that reads negative next to the bowel is a valid negative, and one that stays
   clearly positive after the correction a valid positive. The default 12 mm is about two FWHM of a clinical PET:
   spill-in from an SUV-20 organ falls below 0.05 SUV there;
4. ``local background at or above the FES threshold``: away from such uptake, the lesion reads positive and the
   median FES SUV of a shell 1–2 FWHM around it (other lesions excluded) itself reaches the positivity threshold
   (:class:`sonimage.tables.patients.FesRule`), so the lesion cannot be told from its background.

Remaining limitation (measured in ``bench/truth.py``): SUVmax of faint, truly FES-negative lesions (true SUV
1.1–1.4) reads ≥ 1.5 from image noise alone; the SUVpeak rule (``FesRule(statistic="suvpeak")``) is the
sensitivity analysis for that.

FES-seeded re-search: residual misregistration (rotation, breathing, non-rigid motion) can put the mapped
contour beside the lesion. The FDG PET is mapped onto the FES grid with the same transform, and the lesion's
FDG pattern (the contour grown by one FWHM) is correlated with the FES image at every voxel shift within
:attr:`FesReading.research_mm`; the contour is moved to the best shift only when FES shows the lesion there
(Pearson r ≥ :attr:`FesReading.research_min_r`, and better than at the registered position). A FES-negative
lesion has no FES pattern to follow, so it stays where registration put it and is not pulled onto hot
neighbours. Every lesion's shift, correlation, background and distance are recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from sonimage.lesions.liver import sphere_offsets
from sonimage.lesions.registration import MIN_NCC

NOT_EVALUABLE_ORGANS = ("liver",)
MEASURES = ("fes_hot_distance_mm", "fes_spill_in_suv", "fes_suvmax_spill_corrected", "fes_background_suv")


@dataclass(frozen=True)
class FesReading:
    """Settings of the FES reading (written with its outputs)."""

    min_ncc: float = MIN_NCC  # registration quality (CT NCC) below which a patient's lesions are not evaluable
    hot_suv: float = 2.5  # extra-lesional FES uptake counted as excretion / metabolism
    hot_min_ml: float = 10.0  # smallest such region (smaller hot spots are lesions the reader did not draw)
    hot_distance_mm: float = 12.0  # lesions closer than this to such a region are not evaluable
    fwhm_mm: float = 6.5  # PET resolution used to grow lesions and place the background shell
    research_mm: float = 6.0  # radius of the FES-seeded re-search (0 switches it off)
    research_min_r: float = 0.5  # correlation the re-search needs to move a contour
    spill_margin_suv: float = 1.0  # how far above the threshold the spill-corrected SUVmax must stay near hot uptake

    def as_dict(self) -> dict[str, float]:
        """Settings as a flat dict (QC tables, metrics.json)."""
        return asdict(self)


def grow(mask: np.ndarray, spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """``mask`` dilated by a ball of ``radius_mm``."""
    return ndimage.binary_dilation(mask, sphere_offsets(spacing, radius_mm)) if radius_mm > 0 else mask.copy()


def hot_regions(fes: np.ndarray, lesions: np.ndarray, spacing: tuple[float, float, float],
                reading: FesReading) -> np.ndarray:
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


def _window(mask: np.ndarray, reach: tuple[int, int, int]) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - r, 0), min(int(i.max()) + 1 + r, n))
                 for i, r, n in zip(idx, reach, mask.shape))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def research_shift(fes: np.ndarray, fdg: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float],
                   reading: FesReading) -> tuple[tuple[int, int, int], float, float]:
    """Voxel shift (z, y, x) that moves the lesion onto its FES pattern, the correlation there and at no shift."""
    pattern = grow(mask, spacing, reading.fwhm_mm)
    reach = [int(np.ceil((reading.research_mm + reading.fwhm_mm) / s)) + 1 for s in spacing]
    box = _window(mask, reach)
    fes_w, fdg_w, pat_w = fes[box], fdg[box], pattern[box]
    template = fdg_w[pat_w]
    steps = [int(np.floor(reading.research_mm / s)) for s in spacing]
    at_zero = _corr(template, fes_w[pat_w])
    best, best_r = (0, 0, 0), at_zero
    for dz in range(-steps[0], steps[0] + 1):
        for dy in range(-steps[1], steps[1] + 1):
            for dx in range(-steps[2], steps[2] + 1):
                if (dz * spacing[0]) ** 2 + (dy * spacing[1]) ** 2 + (dx * spacing[2]) ** 2 > reading.research_mm ** 2:
                    continue
                moved = np.roll(pat_w, (dz, dy, dx), axis=(0, 1, 2))
                if moved.sum() != pat_w.sum():  # rolled over the window edge
                    continue
                r = _corr(template, fes_w[moved])
                if np.isfinite(r) and (not np.isfinite(best_r) or r > best_r):
                    best, best_r = (dz, dy, dx), r
    if best != (0, 0, 0) and not best_r >= reading.research_min_r:
        best, best_r = (0, 0, 0), at_zero
    return best, best_r, at_zero


def read_lesions(fes: np.ndarray, fdg_on_fes: np.ndarray | None, labels: np.ndarray, organs: dict[int, str],
                 spacing: tuple[float, float, float], reading: FesReading,
                 threshold: float = 1.5) -> tuple[np.ndarray, list[dict]]:
    """The lesion labels after re-search (on the FES grid) and one reading row per lesion label.

    ``labels`` are the lesion labels carried onto the FES grid; ``organs`` maps label → organ; ``fdg_on_fes`` is
    the FDG PET on the FES grid (None: no re-search); ``threshold`` is the FES positivity threshold (SUV).
    """
    out = labels.copy()
    rows = []
    voxel = np.asarray(spacing)
    if reading.research_mm > 0 and fdg_on_fes is not None:
        for label in organs:
            mask = labels == label
            if not mask.any():
                continue
            shift, r, r0 = research_shift(fes, fdg_on_fes, mask, spacing, reading)
            if shift != (0, 0, 0):
                target = np.roll(mask, shift, axis=(0, 1, 2))
                out[mask & (out == label)] = 0
                out[target & (out == 0)] = label
            rows.append({"label": label, "research_shift_mm": float(np.linalg.norm(np.multiply(shift, voxel))),
                         "research_r": r, "registered_r": r0})
    research = {r["label"]: r for r in rows}
    hot = hot_regions(fes, out, spacing, reading)
    distance = ndimage.distance_transform_edt(~hot, sampling=spacing) if hot.any() else None
    sigma = [reading.fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / s for s in spacing]
    spill = ndimage.gaussian_filter(np.where(hot, fes, 0.0), sigma, mode="constant") if hot.any() else None
    reach = [int(np.ceil(2 * reading.fwhm_mm / s)) + 1 for s in spacing]
    result = []
    for label, organ in organs.items():
        box = _window(out == label, reach) if (out == label).any() else None
        mask = out[box] == label if box else np.zeros((0, 0, 0), bool)
        row = {"label": label, "research_shift_mm": 0.0, "research_r": float("nan"),
               "registered_r": float("nan"), **research.get(label, {})}
        if not mask.any():
            result.append({**row, "fes_evaluable": False, "fes_not_evaluable_reason": "lesion not on the FES scan",
                           **dict.fromkeys(MEASURES, float("nan"))})
            continue
        values = fes[box][mask]
        near = float(distance[box][mask].min()) if distance is not None else float("inf")
        spill_in = spill[box][mask] if spill is not None else np.zeros(values.shape)
        others = grow((out[box] > 0) & ~mask, spacing, reading.fwhm_mm)
        shell = grow(mask, spacing, 2 * reading.fwhm_mm) & ~grow(mask, spacing, reading.fwhm_mm) & ~others
        background = float(np.median(fes[box][shell])) if shell.any() else float("nan")
        reads_positive = bool(values.max() >= threshold)
        if organ in NOT_EVALUABLE_ORGANS:
            reason = "liver"
        elif near < reading.hot_distance_mm and reads_positive and \
                (values - spill_in).max() < threshold + reading.spill_margin_suv:
            reason = "near high FES uptake (liver, gallbladder, bowel or bladder): positive only by spill-in"
        elif background >= threshold and reads_positive and near >= reading.hot_distance_mm:
            reason = "local background at or above the FES threshold"
        else:
            reason = ""
        result.append({**row, "fes_evaluable": not reason, "fes_not_evaluable_reason": reason,
                       "fes_hot_distance_mm": near, "fes_spill_in_suv": float(spill_in.max()),
                       "fes_suvmax_spill_corrected": float((values - spill_in).max()),
                       "fes_background_suv": background})
    return out, result


def patient_rows(labels: list[int], organs: dict[int, str], reason: str) -> list[dict]:
    """Reading rows of a patient whose FES cannot be read at all (no scan, failed or poor registration)."""
    nan = float("nan")
    return [{"label": k, "fes_evaluable": False, "fes_not_evaluable_reason": reason, "research_shift_mm": nan,
             "research_r": nan, "registered_r": nan, **dict.fromkeys(MEASURES, nan)} for k in labels if k in organs]
