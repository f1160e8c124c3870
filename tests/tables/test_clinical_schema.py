"""The clinical table schema: a trial office's table is checked, and each error names its row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sonimage.synth.tables import simulate_cohort_tables
from sonimage.tables.clinical import CLINICAL_SCHEMA, ClinicalTableError, read_clinical, validate_clinical


@pytest.fixture(scope="module")
def clinical() -> pd.DataFrame:
    """A synthetic cohort's clinical table, as the synthetic trial office delivers it."""
    return simulate_cohort_tables("sonia", 12, seed=4).patients


def test_the_synthetic_trial_office_table_follows_the_schema(clinical: pd.DataFrame, tmp_path: Path) -> None:
    checked = validate_clinical(clinical, "patients.parquet", "sonia")
    assert list(checked.columns) == list(clinical.columns) and len(checked) == 12
    assert checked.de_novo.dtype == bool and checked.ecog.dtype == int and checked.pfs1_months.dtype == float
    clinical.to_csv(tmp_path / "patients.csv", index=False)  # the same table as CSV reads the same
    from_csv = read_clinical(tmp_path / "patients.csv", "sonia")
    pd.testing.assert_frame_equal(from_csv[list(CLINICAL_SCHEMA)], checked[list(CLINICAL_SCHEMA)])


def test_each_error_names_row_and_column(clinical: pd.DataFrame, tmp_path: Path) -> None:
    bad = clinical.astype({"age": object, "ecog": object, "de_novo": object, "pfs1_event": object}).copy()
    bad.loc[0, "age"] = "sixty"
    bad.loc[2, "ecog"] = 7
    bad.loc[3, "de_novo"] = "maybe"
    bad.loc[4, "pfs1_event"] = 2
    bad.loc[5, "pfs1_months"] = -1.0
    bad.loc[6, "subject_id"] = "../x"
    bad.loc[7, "subject_id"] = bad.loc[8, "subject_id"]
    bad.loc[9, "arm"] = None
    bad.to_csv(tmp_path / "patients.csv", index=False)
    with pytest.raises(ClinicalTableError) as err:
        read_clinical(tmp_path / "patients.csv", "sonia")
    message = str(err.value)
    assert str(tmp_path / "patients.csv") in message and "8 error(s)" in message
    for expected in ("row 2, column age: 'sixty' is not a number", "row 4, column ecog: 7 is not an ECOG status",
                     "row 5, column de_novo: 'maybe' is not true/false", "row 6, column pfs1_event: 2 is not 0 or 1",
                     "row 7, column pfs1_months: -1.0 is not a time", "row 8, column subject_id: '../x'",
                     f"row 10, column subject_id: '{bad.loc[8, 'subject_id']}' is also on row 9",
                     "row 11, column arm: empty"):
        assert expected in message, (expected, message)


def test_missing_columns_and_wrong_cohort_are_named(clinical: pd.DataFrame) -> None:
    with pytest.raises(ClinicalTableError, match="missing column\\(s\\) pfs1_months, pfs1_event"):
        validate_clinical(clinical.drop(columns=["pfs1_months", "pfs1_event"]), "t.parquet")
    with pytest.raises(ClinicalTableError, match="row 2, column cohort: 'sonia' is not this folder's cohort 'impact'"):
        validate_clinical(clinical, "t.parquet", "impact")
