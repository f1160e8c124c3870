"""FES reading: evaluability with reasons, FES-seeded re-search, rigid registration with a quality threshold."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from sonimage.lesions.fes_reading import FesReading, read_lesions
from sonimage.lesions.registration import MIN_NCC, Rigid, map_labels, register_rigid
from sonimage.synth import render
from sonimage.synth.anatomy import Grid, label_map, make_body
from sonimage.volume import Volume

SPACING = (3.0, 3.0, 3.0)


def ball(shape: tuple[int, int, int], centre: tuple[int, int, int], radius_vox: float) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius_vox**2


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str], np.ndarray]:
    """FES image (bone-like background, a hot bowel block, a warm region) with four lesions; FDG on the same
    grid; the true lesion labels."""
    shape = (40, 40, 60)
    fes = np.full(shape, 1.0)
    fes[:, :, 48:] = 6.0  # bowel: 40 x 40 x 12 voxels of SUV 6 (> 10 mL)
    fes[:, :, :8] = 2.0  # warm background (below the hot level, above the FES threshold)
    truth = np.zeros(shape, np.uint8)
    for label, centre in ((1, (20, 20, 45)), (2, (20, 20, 25)), (3, (10, 30, 25)), (4, (20, 20, 4)),
                          (6, (8, 8, 45))):
        truth[ball(shape, centre, 2.0)] = label
    fes[truth == 1] = 1.2  # FES-negative lesion touching the bowel
    fes[truth == 2] = 4.0  # FES-positive lesion far from everything
    fes[truth == 3] = 0.6  # FES-negative lesion, far
    fes[truth == 4] = 1.0  # in the warm region
    fes[truth == 6] = 5.0  # FES-positive lesion touching the bowel
    fes = ndimage.gaussian_filter(fes, 6.5 / 2.3548 / 3.0)
    fdg = ndimage.gaussian_filter(np.where(truth > 0, 8.0, 1.0), 6.5 / 2.3548 / 3.0)
    return fes, fdg, truth, {1: "bone", 2: "bone", 3: "lymph_node", 4: "bone", 6: "bone"}, truth


def test_evaluability_reasons() -> None:
    fes, fdg, labels, organs, _ = scene()
    organs = {**organs, 5: "liver"}
    labels = labels.copy()
    labels[ball(labels.shape, (32, 8, 25), 2.0)] = 5
    _, rows = read_lesions(fes, fdg, labels, organs, SPACING, FesReading())
    by = {r["label"]: r for r in rows}
    assert by[1]["fes_not_evaluable_reason"].startswith("near high FES uptake") and not by[1]["fes_evaluable"]
    assert by[1]["fes_hot_distance_mm"] < 12 and by[1]["fes_suvmax_spill_corrected"] < 1.5 <= fes[labels == 1].max()
    assert by[6]["fes_evaluable"] and by[6]["fes_hot_distance_mm"] < 12  # positive beyond any spill-in
    assert by[2]["fes_evaluable"] and by[3]["fes_evaluable"] and by[2]["fes_not_evaluable_reason"] == ""
    assert by[4]["fes_not_evaluable_reason"] == "local background at or above the FES threshold"
    assert by[4]["fes_background_suv"] >= 1.5
    assert by[5]["fes_not_evaluable_reason"] == "liver"
    # a shorter distance keeps the lesion near the bowel; a lesion reading negative there is a valid negative
    _, loose = read_lesions(fes, fdg, labels, organs, SPACING, FesReading(hot_distance_mm=3.0))
    assert next(r for r in loose if r["label"] == 1)["fes_evaluable"]
    cold = ndimage.gaussian_filter(np.where(labels == 1, 0.2, 1.0), 1.0)
    cold[:, :, 50:] = 6.0
    _, rows = read_lesions(cold, fdg, labels, organs, SPACING, FesReading())
    assert next(r for r in rows if r["label"] == 1)["fes_evaluable"]


def test_re_search_follows_a_fes_positive_lesion_but_not_a_negative_one() -> None:
    fes, fdg, truth, organs, _ = scene()
    # registration left the contours, and the FDG scan mapped with them, 6 mm off along x
    mapped, fdg = np.roll(truth, 2, axis=2), np.roll(fdg, 2, axis=2)
    moved, rows = read_lesions(fes, fdg, mapped, organs, SPACING, FesReading(research_mm=7.0))
    by = {r["label"]: r for r in rows}
    assert np.array_equal(moved == 2, truth == 2)  # the FES-positive lesion is found back
    assert by[2]["research_shift_mm"] == pytest.approx(6.0) and by[2]["research_r"] > by[2]["registered_r"]
    assert by[3]["research_shift_mm"] == 0.0 and np.array_equal(moved == 3, mapped == 3)  # nothing to follow
    _, off = read_lesions(fes, fdg, mapped, organs, SPACING, FesReading(research_mm=0.0))
    assert all(r["research_shift_mm"] == 0.0 for r in off)


def _ct(grid: Grid, body) -> Volume:
    hu = render.ct_image(label_map(body, grid), [], [], np.random.default_rng(1))
    return Volume(hu, grid.spacing, (float(grid.xs[0]), float(grid.ys[0]), float(grid.zs[0])),
                  (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))


def test_rigid_registration_recovers_rotation_and_translation_and_rates_itself() -> None:
    body = make_body(165.0, 65.0)
    zs = np.arange(-380.0, -720.0, -4.0)  # thorax and upper abdomen
    grid = Grid.centred(96, 4.0, zs)
    fixed = _ct(grid, body)
    truth = Rigid((0.0, 0.0, np.radians(4.0), 5.0, -3.0, 4.0), (0.0, 0.0, -550.0))
    resampled = sitk.Resample(fixed.to_sitk(), fixed.to_sitk(), truth.transform().GetInverse(), sitk.sitkLinear,
                              -1000.0)  # the moving scan: the body rotated by 4 degrees and shifted
    moving = Volume.from_sitk(resampled)
    found = register_rigid(fixed, moving)
    probe = np.array([[60.0, 30.0, -500.0], [-80.0, -40.0, -620.0]])
    expect = [truth.transform().TransformPoint(tuple(p)) for p in probe]
    got = [found.transform().TransformPoint(tuple(p)) for p in probe]
    assert np.max(np.abs(np.subtract(got, expect))) < 2.0, (got, expect)
    assert found.record()["rotation_z_deg"] == pytest.approx(4.0, abs=0.5)
    assert found.ncc > 0.9 and found.body_dice > 0.95
    labels = Volume(np.zeros(fixed.array.shape, np.uint8), fixed.spacing, fixed.origin, fixed.direction)
    assert map_labels(labels, moving, found).array.shape == moving.array.shape
    noise = Volume(np.random.default_rng(2).normal(0, 300, fixed.array.shape).astype(np.int16), fixed.spacing,
                   fixed.origin, fixed.direction)
    assert not register_rigid(fixed, noise).ncc >= MIN_NCC  # a scan that is not this patient's: below threshold
