"""The lean NIfTI reader gives what SimpleITK gives: voxels, type, spacing, origin and direction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from sonimage.nifti import read_nifti
from sonimage.volumes.volume import Volume
from tests.helpers import require


def assert_same(path) -> None:
    ours, theirs = read_nifti(path), Volume.from_sitk(sitk.ReadImage(str(path)))
    assert ours.array.dtype == theirs.array.dtype and ours.array.flags.writeable
    np.testing.assert_array_equal(ours.array, theirs.array)
    np.testing.assert_allclose(ours.spacing, theirs.spacing, atol=1e-6)
    np.testing.assert_allclose(ours.origin, theirs.origin, atol=1e-4)
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-6)


def test_real_pet_lesions_and_phantoms(shared_data):
    files = sorted(require(shared_data / "ibsi-sts-pet-nifti").glob("STS_*/*.nii.gz"))
    files += sorted(require(shared_data / "ibsi-2" / "ibsi_2_ct_radiomics_phantom" / "nifti").rglob("*.nii.gz"))
    assert len(files) == 104
    for path in files:
        assert_same(path)


@pytest.mark.parametrize("pixel", [sitk.sitkInt16, sitk.sitkUInt8, sitk.sitkFloat64])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_oblique_anisotropic_written_by_simpleitk(tmp_path, pixel, suffix):
    """An oblique, anisotropic, off-origin image of each type, gzipped or not, reads back as SimpleITK reads it."""
    rng = np.random.default_rng(2)
    image = sitk.Cast(sitk.GetImageFromArray(rng.integers(0, 200, (5, 6, 7)).astype(np.float64)), pixel)
    image.SetSpacing((0.8, 1.3, 3.0))
    image.SetOrigin((-12.5, 40.25, 7.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(image, str(path))
    assert_same(path)


def test_not_nifti_falls_back_to_simpleitk_error(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(RuntimeError):
        read_nifti(bad)
