"""Generator physics: EARL1 recovery of the NEMA spheres at full size, the generator's own rendering path giving the
same recovery, the organ approximation's error bound, both scan days through one path (the motion moves the
geometry), and a PSF resolved by the voxels at every size."""

from __future__ import annotations

import numpy as np
import pytest

from sonimage.synth import render
from sonimage.synth.anatomy import Body, Cylinder, Ellipsoid, Grid, Tissue
from sonimage.synth.psf import (EARL1_RC_MAX, FWHM_PER_SIGMA, MIN_SIGMA_VOXELS, NEMA_DIAMETERS_MM,
                                NEMA_SPHERE_TO_BACKGROUND, psf_fwhm_zyx, recovery_coefficients, sphere_rc_max)
from sonimage.synth.scanners import SITE_PROFILES
from sonimage.synth.generate import SIZES, recovery

FULL_VOXELS = sorted({(p.slice_mm, p.pixel_mm, p.pixel_mm) for p in SITE_PROFILES.values()})
TABLE = np.zeros(len(Tissue), np.float32)
TABLE[Tissue.SOFT], TABLE[Tissue.LIVER] = 1.0, 10.0
PHANTOM = ((Cylinder(0, 0, 150, 150, -300, 100), Tissue.SOFT),)  # uniform background of SUV 1


def _sigma(spacing: tuple[float, float, float]) -> tuple[float, ...]:
    return tuple(f / FWHM_PER_SIGMA for f in psf_fwhm_zyx(spacing, render.PSF_FWHM_MM))


@pytest.mark.parametrize("spacing", FULL_VOXELS)
def test_nema_spheres_at_full_size_recover_inside_the_earl1_bands(spacing):
    """Noise-free, 10:1 sphere to background, max voxel / true uptake, mean over 8 random sub-voxel centres: every
    NEMA IEC sphere inside its EARL1 band (Boellaard et al. 2015) on every vendor's full-size voxels."""
    rc = recovery_coefficients(spacing, render.PSF_FWHM_MM)
    assert rc["earl1_compliant"] and rc["diameters_mm"] == list(NEMA_DIAMETERS_MM)
    for d, v in zip(rc["diameters_mm"], rc["rc_max"]):
        lo, hi = EARL1_RC_MAX[d]
        assert lo <= v <= hi, (spacing, d, v)
    assert np.all(np.diff(rc["rc_max"]) >= -1e-6)  # larger spheres recover more


def test_small_and_tiny_report_their_own_recovery_and_fall_outside_earl1():
    """Coarse sizes widen the PSF to σ >= 0.5 voxel; their 10 mm recovery is below EARL1's band, and says so."""
    for size in ("small", "tiny"):
        r = recovery("sonia", size)
        assert r["size"] == size and not r["earl1_compliant"]
        assert r["rc_max"][0] < EARL1_RC_MAX[10.0][0]
        sigma_voxels = np.array(r["psf_fwhm_mm"]) / FWHM_PER_SIGMA / np.array(r["voxel_mm"])
        assert (sigma_voxels >= MIN_SIGMA_VOXELS - 1e-3).all()  # (rounded to 0.001 mm)
    assert recovery("sonia", "full")["earl1_compliant"]
    spec = SIZES["small"]
    assert spec.pixel_factor > 1  # the sizes do coarsen the voxels: the widening is needed


@pytest.mark.parametrize("diameter", [10.0, 17.0, 28.0])
def test_the_generators_rendering_gives_the_recovery_of_the_sphere_model(diameter):
    """A hot sphere in a uniform phantom through the generator (organs + lesion by linearity) reads what
    :func:`sphere_rc_max` computes for the same sub-voxel position."""
    grid = Grid.centred(40, 4.0728, np.arange(30.0, -150.0, -3.0))
    centre = np.array([1.1, -0.6, -60.8])
    image, rendered = render.noise_free_image(
        Body(165, 65, PHANTOM, ()), grid, render.Pose(np.zeros(3)), TABLE, render.PSF_FWHM_MM,
        [(centre, diameter, lambda rel: np.full(len(rel), NEMA_SPHERE_TO_BACKGROUND, np.float32))])
    nearest = np.array([grid.zs[np.argmin(abs(grid.zs - centre[2]))], grid.ys[np.argmin(abs(grid.ys - centre[1]))],
                        grid.xs[np.argmin(abs(grid.xs - centre[0]))]])
    offset = (centre[::-1] - nearest) / np.array(grid.spacing)
    expected = sphere_rc_max(diameter, grid.spacing, _sigma(grid.spacing), offset)
    assert image.max() / NEMA_SPHERE_TO_BACKGROUND == pytest.approx(expected, abs=2e-3)
    assert rendered[0].true_suvmax == pytest.approx(NEMA_SPHERE_TO_BACKGROUND)
    assert image[5, 5, 5] == pytest.approx(1.0, abs=1e-3)  # the background is untouched far away


@pytest.mark.parametrize("pixel,dz", [(4.0728, 3.0), (8.1456, 6.0)])
@pytest.mark.parametrize("day", ["FDG", "FES"])
def test_organ_approximation_error_is_bounded(pixel, dz, day):
    """Organs are rendered as partial-volume voxel means with first moments, blurred at voxel level; against the
    exact rendering (the same sphere through the <= 1 mm lesion path) the error stays under 5 % of the organ's
    contrast at its edge (and is ~0 inside and outside), on the first day and through the second day's motion
    (labels read from the painted lattice, mixed voxels evaluated exactly)."""
    grid = Grid.centred(48, pixel, np.arange(20.0, -220.0, -dz))
    centre, d = np.array([1.3, -0.7, -100.4]), 60.0
    organ = Body(165, 65, (*PHANTOM, (Ellipsoid(tuple(centre), (d / 2,) * 3), Tissue.LIVER)), ())
    pose = render.Pose(np.zeros(3)) if day == "FDG" else render.Pose(
        np.array([2.0, -3.0, 4.0]), render.random_motion(np.array([0.0, 0.0, -80.0]), np.random.default_rng(2)))
    approx, _ = render.noise_free_image(organ, grid, pose, TABLE, render.PSF_FWHM_MM, [])
    exact, _ = render.noise_free_image(Body(165, 65, PHANTOM, ()), grid, pose, TABLE, render.PSF_FWHM_MM,
                                       [(centre, d, lambda rel: np.full(len(rel), 10.0, np.float32))])
    err = np.abs(approx - exact) / 9.0
    assert err.max() < 0.05 and err.mean() < 1e-3


def test_second_day_motion_moves_the_geometry_not_the_image():
    """Both days through one path: a lesion seen after the FES day's rotation and deformation sits at the moved
    centre and reads the same recovery (a 22 mm sphere: insensitive to the voxel phase) as on the first day."""
    grid = Grid.centred(48, 4.0728, np.arange(30.0, -200.0, -3.0))
    body, centre = Body(165, 65, PHANTOM, ()), np.array([20.0, -10.0, -90.0])
    motion = render.random_motion(np.array([0.0, 0.0, -80.0]), np.random.default_rng(2))
    lesion = [(centre, 22.0, lambda rel: np.full(len(rel), 10.0, np.float32))]
    days = {}
    for name, pose in (("FDG", render.Pose(np.zeros(3))), ("FES", render.Pose(np.array([2.0, -3.0, 4.0]), motion))):
        image, _ = render.noise_free_image(body, grid, pose, TABLE, render.PSF_FWHM_MM, lesion)
        k, j, i = np.unravel_index(np.argmax(image), image.shape)
        days[name] = (image.max(), np.array([grid.xs[i], grid.ys[j], grid.zs[k]]), pose.from_body(centre)[0])
    assert days["FES"][0] == pytest.approx(days["FDG"][0], rel=0.02)
    moved = days["FES"][2]
    assert np.linalg.norm(moved - centre) > 3.0  # the lesion did move
    assert np.all(np.abs(days["FES"][1] - moved) <= np.array(grid.spacing)[::-1] / 2 + 1e-6)  # the peak followed it
