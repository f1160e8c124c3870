"""The automatic PERCIST liver VOI (:mod:`sonimage.lesions.liver`) on phantoms built with the library's volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sonimage.lesions.liver import (IN_PLANE, VOI_DIAMETER_MM, _body_columns, _fill_holes_in_plane, _on_pet_grid,
                                    liver_reference)
from sonimage.synth import render
from sonimage.synth.anatomy import Tissue, label_map, make_body
from sonimage.synth.generate import SIZES, pet_grid
from sonimage.synth.scanners import SITE_PROFILES
from sonimage.volumes.volume import Volume

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def edge_phantom(liver_slices: int = 6) -> tuple[Volume, Volume]:
    """PET (SUV) and CT (HU) of a trunk cut off at the image's lower edge (5 mm voxels, z up towards the head):
    soft tissue with lungs (0.35 L each) from slice 10 up, and a liver (SUV 3 on a body of SUV 1) on the patient's right filling
    only the lowest ``liver_slices`` slices, so that the best liver candidates touch the image's edge."""
    shape, spacing = (24, 48, 48), (5.0, 5.0, 5.0)
    k, j, i = np.indices(shape)
    x, y = (i - 23.5) * spacing[2], (j - 23.5) * spacing[1]
    body = (x / 100) ** 2 + (y / 80) ** 2 <= 1
    hu = np.where(body, 40, -1000).astype(np.int16)
    hu[(k >= 10) & ((((x - 50) / 40) ** 2 + (y / 40) ** 2 <= 1) | (((x + 50) / 40) ** 2 + (y / 40) ** 2 <= 1))] = -800
    suv = np.where(body, 1.0, 0.0)
    suv[body & (k < liver_slices) & (x < -10)] = 3.0
    origin = (-117.5, -117.5, 0.0)
    return Volume(suv, spacing, origin, IDENTITY), Volume(hu, spacing, origin, IDENTITY)


def test_liver_voi_at_the_image_edge_is_placed_whole_inside_the_image() -> None:
    """Regression (08e2c24): a liver whose candidate region reaches the image's edge raised IndexError (the 3 cm
    window around a centre less than a radius from the edge was empty); the sphere now lies whole inside."""
    pet, ct = edge_phantom()
    ref = liver_reference(pet, ct)
    assert ref.note == "" and ref.suv_mean == pytest.approx(3.0, abs=0.05)
    assert ref.n_voxels == 123  # the whole 3 cm sphere at 5 mm voxels
    k = pet.physical_to_index(np.array([[ref.centre_x_mm, ref.centre_y_mm, ref.centre_z_mm]]))[0][0]
    assert k >= (VOI_DIAMETER_MM / 2) // pet.spacing[0]


def fes_day_scan(seed: int) -> tuple[Volume, Volume, np.ndarray, float, render.Pose]:
    """A synthetic second-day FES PET/CT (no lesions) through the synthetic study's own renderer: FES physiology
    (liver SUV 8–15, gallbladder and bowel hot: hepatobiliary excretion) and the patient's repositioning between
    the scan days (rotation and mild deformation). Returns PET, CT, the body-frame tissue labels on the PET grid,
    the liver's SUV and the day's pose."""
    body = make_body(165.0, 70.0)
    grid, ct_grid = pet_grid(next(iter(SITE_PROFILES.values())), SIZES["small"], body)
    rng = np.random.default_rng(seed)
    pose = render.Pose(np.zeros(3), render.random_motion(np.array([0.0, 0.0, -0.5 * body.length_mm]), rng))
    table = render.physiology("FES", rng)
    blurred, _ = render.noise_free_image(body, grid, pose, table, render.PSF_FWHM_MM, [])
    hu = render.ct_image(label_map(body, ct_grid), [], [], rng, (ct_grid, pose.motion))
    return (_volume(render.add_noise(blurred, rng), grid), _volume(hu, ct_grid), label_map(body, grid),
            float(table[Tissue.LIVER]), pose)


@pytest.mark.parametrize("seed", [3, 6])
def test_fes_liver_voi_is_found_in_the_liver_of_a_repositioned_patient(seed: int) -> None:
    """On the FES day the CT of a repositioned patient has thin air gaps and gas outside the lungs; counted as
    lung they put the "lung base" in the pelvis and the FES VOI 470 mm from the liver (synthetic IMPACT-0068:
    SUV 0.82). Only the large air components are lungs now: the VOI lies in the liver and reads its SUV, away
    from the gallbladder and bowel that FES also lights up."""
    pet, ct, labels, liver_suv, pose = fes_day_scan(seed)
    ref = liver_reference(pet, ct)
    assert ref.note == ""
    body_point = pose.to_body(np.array([[ref.centre_x_mm, ref.centre_y_mm, ref.centre_z_mm]]))
    k, j, i = np.rint(pet.physical_to_index(body_point)[0]).astype(int)
    assert labels[k, j, i] == Tissue.LIVER and ref.centre_x_mm < 0  # the patient's right (LPS)
    assert ref.suv_mean == pytest.approx(liver_suv, rel=0.08)


def _volume(array: np.ndarray, grid) -> Volume:
    """A volume on a synthetic grid (z descending, head first)."""
    sz, sy, sx = grid.spacing
    return Volume(array, (sz, sy, sx), (float(grid.xs[0]), float(grid.ys[0]), float(grid.zs[0])),
                  (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))


def test_in_plane_hole_filling_equals_scipy_s() -> None:
    """The labelling fill gives ``binary_fill_holes`` with the in-plane structure, holes at the image's edges and
    in the first and last slices included."""
    rng = np.random.default_rng(4)
    for density in (0.3, 0.5, 0.7):
        mask = ndimage.binary_opening(rng.random((6, 30, 40)) < density)
        mask[2, 5:15, 5:15], mask[2, 8:12, 8:12] = True, False  # a square ring: a hole
        expected = ndimage.binary_fill_holes(mask, IN_PLANE)
        assert (expected != mask).any()
        assert np.array_equal(_fill_holes_in_plane(mask), expected)


def test_the_liver_search_keeps_every_body_column_of_the_pet_grid() -> None:
    """Outside the PET columns the search keeps, the CT resampled onto the whole PET grid is air, with the margin:
    the search there gives what the whole grid gives."""
    pet, ct, _, _, _ = fes_day_scan(3)
    margin = 5
    rows, cols = _body_columns(ct, pet, margin)
    hu = _on_pet_grid(ct, pet, slice(None), slice(None))
    outside = np.ones(hu.shape, bool)
    outside[:, rows, cols] = False
    assert outside.any() and (hu[outside] <= -500).all()
    inner = np.zeros(hu.shape, bool)  # the columns less the margin hold every body voxel
    inner[:, rows.start + margin:rows.stop - margin, cols.start + margin:cols.stop - margin] = True
    assert (hu > -500).any() and not ((hu > -500) & ~inner).any()
    # the same CT values there (the first voxel's position is rounded otherwise: differences of ~1e-12 HU)
    assert np.allclose(_on_pet_grid(ct, pet, rows, cols), hu[:, rows, cols], rtol=0, atol=1e-6)
