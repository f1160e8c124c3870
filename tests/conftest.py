"""Shared test fixtures: the public reference data beside the checkout, the IBSI phantoms (helpers the tests
import are in ``tests/helpers.py``). The tests are packages (``tests/<package>/``, mirroring ``sonimage/`` and
``flows/``), so pytest puts the repository root on ``sys.path`` and ``tests.helpers`` imports alike everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sonimage.features.base import Roi
from tests.helpers import require, shared_data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder; tests that need it skip with a clear message where it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"public reference data not found at {root} (set SONIMAGE_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def phantom(shared_data: Path) -> tuple[Roi, pd.DataFrame]:
    """The IBSI digital phantom as a ROI (2 mm voxels) and its reference values."""
    folder = require(shared_data / "ibsi-digital-phantom")
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "phantom.nii.gz"))).astype(np.float64)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "mask.nii.gz"))) > 0
    reference = pd.read_csv(folder / "reference_values.csv", keep_default_na=False, na_values={"value": [""]})
    return Roi(image, mask, (2.0, 2.0, 2.0)), reference


@pytest.fixture(scope="session")
def ct_phantom(shared_data: Path) -> Roi:
    """The IBSI CT radiomics phantom (a lung tumour, 0.977 × 0.977 × 3 mm) as a ROI; CC BY-NC, read only."""
    folder = require(shared_data / "ibsi-2" / "ibsi_2_ct_radiomics_phantom" / "nifti")
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))) > 0
    return Roi(sitk.GetArrayFromImage(image).astype(np.float64), mask, tuple(reversed(image.GetSpacing())))
