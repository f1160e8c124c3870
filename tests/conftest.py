"""Shared test fixtures: the public reference data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sonimage.features.base import Roi
from sonimage.features.compliance import round_sig  # noqa: F401  (IBSI's rounding, for the phantom tests)
from sonimage.synth.tables import CohortTables, simulate_cohort_tables
from sonimage.tables.parquet import write_table

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """Where the public reference data lives: $SONIMAGE_SHARED_DATA, else ../shared/data beside the checkout."""
    return Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder; tests that need it skip with a clear message where it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"public reference data not found at {root} (set SONIMAGE_SHARED_DATA)")
    return root


def require(path: Path) -> Path:
    """``path`` if it exists, else skip the test saying which reference data set is missing."""
    if not path.exists():
        pytest.skip(f"reference data missing: {path}")
    return path


STUDY_SIZES = (("sonia", 100), ("impact", 120), ("transcan", 90))
SMALL_BOOTSTRAPS = {"study": {"n_boot_internal": 8, "n_boot_external": 12, "penalizers": [0.0, 0.5], "folds": 3,
                              "fes_thresholds": [1.5, 2.0]},
                    "statistics": {"power_simulations": 20, "n_boot_benefit": 12, "imputations": 2}}


def write_simulated_tables(base: Path, seed: int = 3) -> dict[str, CohortTables]:
    """The analysis stage's inputs without rendering images: the true values the synthetic generator writes,
    as the feature stage (``base/features/``) and the trial office (``base/clinical/<cohort>/``) write them."""
    t = {c: simulate_cohort_tables(c, n, seed=seed) for c, n in STUDY_SIZES}
    for c, x in t.items():
        write_table(x.patients, base / "clinical" / c / "patients.parquet")
        write_table(x.lesions, base / "clinical" / c / "lesions.parquet")
    write_table(pd.concat([x.lesion_table.drop(columns=["response_pct", "response"]) for x in t.values()]),
                base / "features" / "lesions.parquet")
    write_table(pd.concat([x.patient_table for x in t.values()]), base / "features" / "patients.parquet")
    return t


IBSI_FAMILIES = {
    "morphology": "Morphological features",
    "local_intensity": "Local intensity features",
    "statistics": "Intensity-based statistical features",
    "histogram": "Intensity histogram features",
    "ivh": "Intensity-volume histogram features",
    "glcm": "Grey level co-occurrence based features",
    "glrlm": "Grey level run length based features",
    "glszm": "Grey level size zone based features",
    "gldzm": "Grey level distance zone based features",
    "ngtdm": "Neighbourhood grey tone difference based features",
    "ngldm": "Neighbouring grey level dependence based features",
}
ALL_DIMS = ("2D", "2.5D", "3D")


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
