"""Helpers the tests import (``from tests.helpers import ...``): the public reference data beside the checkout,
the simulated analysis inputs, the IBSI feature families. Fixtures are in ``conftest.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from sonimage.synth.tables import CohortTables, simulate_cohort_tables
from sonimage.tables.parquet import write_table

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """Where the public reference data lives: $SONIMAGE_SHARED_DATA, else ../shared/data beside the checkout."""
    return Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


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
