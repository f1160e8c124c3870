"""Automatic delineation: each method's MTV against lesions of known size, the PERCIST liver VOI, the IBSI volume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from sonimage.lesions.delineation import DEFAULT_METHODS, delineate, delineation_row, delineation_rows
from sonimage.settings import DelineationSettings, Method
from sonimage.lesions.liver import liver_reference
from sonimage.synth import render
from sonimage.synth.anatomy import Tissue, label_map, make_body
from sonimage.synth.generate import SIZES, pet_grid
from sonimage.synth.scanners import SITE_PROFILES
from sonimage.volumes.volume import Volume

SPACING = (3.0, 3.0, 3.0)
FWHM = 6.5


def sphere_scene(diameter_mm: float, suv: float = 8.0, background: float = 1.0, noise: float = 0.0,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A sphere of ``suv`` in a uniform ``background``, blurred by a 6.5 mm PSF (SUV image, true mask)."""
    n = 48
    c = (np.arange(n) - (n - 1) / 2) * SPACING[0]
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    truth = zz**2 + yy**2 + xx**2 <= (diameter_mm / 2) ** 2
    activity = np.where(truth, suv, background)
    image = ndimage.gaussian_filter(activity, FWHM / 2.3548 / SPACING[0], mode="nearest")
    if noise:
        image = image + noise * np.sqrt(image) * np.random.default_rng(seed).standard_normal(image.shape)
    return image, truth


@pytest.mark.parametrize("diameter", [20.0, 30.0, 40.0])
def test_each_method_against_a_sphere_of_known_size(diameter: float) -> None:
    image, truth = sphere_scene(diameter)
    true_ml = truth.sum() * np.prod(SPACING) / 1000
    contour = ndimage.binary_dilation(truth, iterations=1)  # a generous reader contour as the seed region
    mtv = {}
    for method in DEFAULT_METHODS:
        mask, threshold, touches = delineate(image, contour, SPACING, method, percist_threshold_suv=3.0)
        row = delineation_row(image, mask, SPACING, method, threshold, touches)
        assert not touches and row["mtv_ml"] > 0 and row["tlg"] == pytest.approx(row["suvmean"] * row["mtv_ml"])
        mtv[method.label] = row["mtv_ml"]
    err = {k: (v - true_ml) / true_ml for k, v in mtv.items()}
    # EANM 50 % of SUVmax falls on the edge of a blurred uniform sphere of >= 2 cm (the half maximum); 41 % is a
    # little larger, and a fixed SUV 2.5 (here 30 % of SUVmax) over-segments by the PSF's tail.
    assert abs(err["pct50"]) < 0.05 and 0 <= err["pct41"] < 0.20, err
    # background-adapted half contrast: the background, taken within 10 mm of the lesion, holds some of the PSF's
    # tail, which lifts the threshold a little above the half maximum
    assert -0.20 < err["a50"] <= 0.0, err
    assert mtv["pct50"] <= mtv["pct41"] < mtv["suv2p5"], mtv
    assert 0.2 < err["suv2p5"] < 0.6, err
    assert mtv["contour"] == pytest.approx(contour.sum() * 0.027)


@pytest.mark.parametrize("diameter", [15.0, 20.0, 30.0])
def test_low_contrast_lesions_need_the_background_adapted_threshold(diameter: float) -> None:
    """A lesion of SUV 3 on marrow-like uptake of 1.3 (FDG in bone): 41 % of SUVmax lies below the background, so
    the component fills the search box and says so; the background-adapted A50 closes on the lesion."""
    image, truth = sphere_scene(diameter, suv=3.0, background=1.3)
    leaked, threshold, touches = delineate(image, truth, SPACING, Method("relative", 0.41))
    assert touches and leaked.sum() > 2 * truth.sum()
    row = delineation_row(image, leaked, SPACING, Method("relative", 0.41), threshold, touches)
    assert np.isnan(row["mtv_ml"]) and np.isnan(row["tlg"]) and row["n_voxels"] == leaked.sum()  # not an MTV
    mask, threshold, touches = delineate(image, truth, SPACING, Method("adaptive", 0.5))
    background = 1.3
    assert not touches
    assert threshold == pytest.approx(background + 0.5 * (image[truth].max() - background), abs=0.01)
    assert abs(mask.sum() / truth.sum() - 1) < 0.20
    noisy, truth = sphere_scene(diameter, suv=3.0, background=1.3, noise=0.1, seed=1)
    mask, _, touches = delineate(noisy, truth, SPACING, Method("adaptive", 0.5))
    assert not touches and -0.5 < mask.sum() / truth.sum() - 1 < 0.0  # noise lifts SUVmax: the edge moves in


def test_small_lesions_are_overestimated_by_relative_thresholds_and_search_regions_matter() -> None:
    image, truth = sphere_scene(10.0, noise=0.1)
    contour = truth.copy()
    mask, threshold, _ = delineate(image, contour, SPACING, Method("relative", 0.41))
    assert threshold == pytest.approx(0.41 * image[contour].max())
    assert mask.sum() > truth.sum()  # partial volume: a 1 cm sphere is blurred wider than it is
    # hot physiological uptake touching the lesion: SUV >= 2.5 runs into it; the box limits the damage and says so
    image[:, :, 26:] = 6.0
    boxed, _, boxed_touches = delineate(image, contour, SPACING, Method("fixed", 2.5, "box", 3.0))
    whole, _, touches = delineate(image, contour, SPACING, Method("fixed", 2.5, "whole-body"))
    assert whole.sum() > 10 * boxed.sum() and not boxed[:, :, 28:].any() and whole[:, :, 40:].any()
    assert touches and boxed_touches


def test_methods_are_validated_and_named() -> None:
    assert [m.label for m in DEFAULT_METHODS] == ["contour", "suv2p5", "pct41", "pct50", "a50", "percist"]
    assert Method("fixed", 3.0).parameters == "SUV >= 3" and Method("fixed", 3.0).label == "suv3"
    with pytest.raises(ValueError, match="fraction of SUVmax"):
        Method("relative", 41)
    with pytest.raises(ValueError, match="unknown delineation method"):
        Method("otsu")
    image, truth = sphere_scene(20.0)
    rows = delineation_rows(image, truth, SPACING, DelineationSettings(), float("nan"), 0.7)
    percist = next(r for r in rows if r["method"] == "percist")
    assert np.isnan(percist["mtv_ml"]) and "liver reference" in percist["error"]
    pct41 = next(r for r in rows if r["label"] == "pct41")
    assert pct41["threshold_sul"] == pytest.approx(pct41["threshold_suv"] * 0.7)
    with pytest.raises(ValueError, match="lean-body-mass formula"):
        DelineationSettings(lbm_formula="Boer")
    with pytest.raises(ValueError, match="is not computed"):
        DelineationSettings(method="pct41", relative=(0.5,))
    assert DelineationSettings(lbm_formula="James").sul_ratio_key == "ratio_sul_james"
    assert [m.label for m in DelineationSettings(fixed_suv=(3.0,), relative=(), adaptive=(),
                                                 percist=False).methods] == ["contour", "suv3"]
    assert Method("adaptive", 0.5).label == "a50" and "background" in Method("adaptive", 0.5).parameters


def test_contour_volume_is_the_ibsi_voxel_count_volume(phantom) -> None:
    roi, reference = phantom
    row = delineation_row(roi.image, roi.mask, roi.spacing, Method("contour"), float("nan"), False)
    ref = reference[reference.ibsi_code == "YEKZ"].iloc[0]  # volume (voxel counting), mm^3
    assert abs(row["mtv_ml"] * 1000 - float(ref.value)) <= float(ref.tolerance)


def test_percist_liver_voi_is_found_in_the_right_liver_lobe() -> None:
    """The synthetic phantom's PET and CT: the 3 cm VOI lies inside the liver, on the right, and reads its SUV."""
    body = make_body(165.0, 70.0)
    grid, ct_grid = pet_grid(next(iter(SITE_PROFILES.values())), SIZES["small"], body)
    rng = np.random.default_rng(4)
    labels = label_map(body, grid)
    table = render.physiology("FDG", rng)
    suv = render.scanner_image(render.true_activity(labels, grid, table, [], np.array([])), grid.spacing, rng)
    hu = render.ct_image(label_map(body, ct_grid), [], [], rng)
    pet = _volume(suv, grid)
    ref = liver_reference(pet, _volume(hu, ct_grid), sul_ratio=0.7)
    assert ref.note == "" and ref.n_voxels > 20
    k, j, i = np.rint(pet.physical_to_index(np.array([[ref.centre_x_mm, ref.centre_y_mm, ref.centre_z_mm]]))[0])
    assert labels[int(k), int(j), int(i)] == Tissue.LIVER and ref.centre_x_mm < 0  # patient's right (LPS)
    assert ref.suv_mean == pytest.approx(table[Tissue.LIVER], rel=0.08)
    assert ref.percist_threshold_suv == pytest.approx(1.5 * ref.suv_mean + 2 * ref.suv_sd)
    assert ref.sul_mean == pytest.approx(0.7 * ref.suv_mean)
    missing = liver_reference(pet, _volume(np.full(hu.shape, -1000, np.int16), ct_grid))
    assert np.isnan(missing.suv_mean) and missing.note


def _volume(array: np.ndarray, grid) -> Volume:
    """A volume on a synthetic grid (z descending, head first)."""
    sz, sy, sx = grid.spacing
    return Volume(array, (sz, sy, sx), (float(grid.xs[0]), float(grid.ys[0]), float(grid.zs[0])),
                  (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))


def test_rows_carry_method_parameters_and_formula() -> None:
    image, truth = sphere_scene(20.0)
    rows = pd.DataFrame(delineation_rows(image, truth, SPACING, DelineationSettings(), 3.0, 0.7))
    assert set(rows.columns) >= {"method", "label", "parameters", "region", "threshold_suv", "threshold_sul",
                                 "mtv_ml", "tlg", "suvmean", "sul_lbm_formula"}
    assert (rows.sul_lbm_formula == "Janmahasatian").all() and (rows.error == "").all()
