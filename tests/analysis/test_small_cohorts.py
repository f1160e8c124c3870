"""The analysis at 2 and 10 patients per cohort (a quick demo, an early look at a trial) finishes and says what
cannot be estimated instead of failing (it stopped on np.ptp of an empty column and on unfittable models)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sonimage.cli import main
from sonimage.synth.tables import simulate_cohort_tables
from sonimage.tables.parquet import write_table
from tests.helpers import SMALL_BOOTSTRAPS


@pytest.mark.parametrize("n", [2, 10])
def test_small_cohorts_finish_and_name_what_is_not_estimable(n, tmp_path):
    t = {c: simulate_cohort_tables(c, n, seed=5) for c in ("sonia", "impact", "transcan")}
    for c, x in t.items():  # as the feature stage and the trial office write them
        write_table(x.patients, tmp_path / "clinical" / c / "patients.parquet")
        write_table(x.lesions, tmp_path / "clinical" / c / "lesions.parquet")
    write_table(pd.concat([x.lesion_table.drop(columns=["response_pct", "response"]) for x in t.values()]),
                tmp_path / "features" / "lesions.parquet")
    write_table(pd.concat([x.patient_table for x in t.values()]), tmp_path / "features" / "patients.parquet")
    (tmp_path / "run.json").write_text(json.dumps(SMALL_BOOTSTRAPS))
    assert main(["analyse", str(tmp_path), "--clinical", str(tmp_path / "clinical"), "--settings",
                 str(tmp_path / "run.json")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Objective 5: external validation" in html
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())  # strict JSON: a reason beside nulls
    assert "not_estimable" in json.dumps(metrics)
    if n == 2:  # Cox models of 2 patients per cohort: none is estimable, and the report says why
        assert "not_estimable" in metrics["objective4"]["effect"]
        assert metrics["objective1"]["primary"]["hr"] is None and metrics["objective1"]["primary"]["not_estimable"]
        assert "not estimable" in html
