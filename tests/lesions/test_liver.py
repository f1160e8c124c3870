"""The automatic PERCIST liver VOI (:mod:`sonimage.lesions.liver`) on phantoms built with the library's volumes."""

from __future__ import annotations

import numpy as np
import pytest

from sonimage.lesions.liver import VOI_DIAMETER_MM, liver_reference
from sonimage.volumes.volume import Volume

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def edge_phantom(liver_slices: int = 6) -> tuple[Volume, Volume]:
    """PET (SUV) and CT (HU) of a trunk cut off at the image's lower edge (5 mm voxels, z up towards the head):
    soft tissue with lungs from slice 10 up, and a liver (SUV 3 on a body of SUV 1) on the patient's right filling
    only the lowest ``liver_slices`` slices, so that the best liver candidates touch the image's edge."""
    shape, spacing = (16, 48, 48), (5.0, 5.0, 5.0)
    k, j, i = np.indices(shape)
    x, y = (i - 23.5) * spacing[2], (j - 23.5) * spacing[1]
    body = (x / 100) ** 2 + (y / 80) ** 2 <= 1
    hu = np.where(body, 40, -1000).astype(np.int16)
    hu[(k >= 10) & ((((x - 45) / 30) ** 2 + (y / 30) ** 2 <= 1) | (((x + 45) / 30) ** 2 + (y / 30) ** 2 <= 1))] = -800
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
