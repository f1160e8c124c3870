"""`sonimage model fit | validate | benefit` on real CSV/Parquet files, through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from sonimage.cli import main
from sonimage.synth.tables import simulate_cohort_tables

METRIC_KEYS = {"harrell_c", "uno_c", "auc", "oe_ratio", "calibration_slope", "ici", "e50", "e90", "brier", "ipa",
               "net_benefit"}


def sonimage(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "sonimage"  # the installed console script
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    load_rossi().to_csv(d / "rossi.csv", index=False)
    simulate_cohort_tables("sonia", 150, seed=1).patients.to_csv(d / "dev.csv", index=False)
    simulate_cohort_tables("impact", 120, seed=2).patients.to_parquet(d / "val.parquet")
    return d


def test_fit_any_csv_reproduces_r(tables):
    r = sonimage("model", "fit", "--data", tables / "rossi.csv", "--time", "week", "--event", "arrest",
                 "--formula", "fin + age + race + wexp + mar + paro + prio", "--out", tables / "rossi.json")
    assert r.returncode == 0, r.stderr
    model = json.loads((tables / "rossi.json").read_text())
    assert model["coefficients"]["fin"] == pytest.approx(-0.37942, abs=1e-4)
    assert model["format"] == "sonimage-cox/1" and model["baseline_time"] and model["centre"]
    assert len(model["baseline_survival"]) == len(model["baseline_time"]) and model["sonimage_version"]


def test_fit_validate_benefit_chain(tables):
    assert main(["model", "fit", "--data", str(tables / "dev.csv"), "--time", "pfs1_months", "--event",
                 "pfs1_event", "--formula", "ecog + visceral + cdk46i*(fes_positive_fraction)", "--penalizer",
                 "0,0.1,1", "--penalize", "interactions", "--folds", "3", "--out", str(tables / "m.json")]) == 0
    r = sonimage("model", "validate", "--model", tables / "m.json", "--data", tables / "val.parquet", "--time",
                 "pfs1_months", "--event", "pfs1_event", "--horizon", "12", "--bootstrap", "12", "--treatment",
                 "cdk46i", "--out", tables / "metrics.json")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tables / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    for k in METRIC_KEYS - {"net_benefit"}:
        m = metrics[k]
        if m["lower"] is None:  # too few bootstrap replicates gave a value: said, not a NaN
            assert m["ci_note"].startswith("not estimable") and m["upper"] is None, k
        else:
            assert m["lower"] <= m["estimate"] <= m["upper"], k
    assert 0.5 < metrics["harrell_c"]["estimate"] < 0.9 and metrics["benefit"]["estimable"]
    assert main(["model", "benefit", "--model", str(tables / "m.json"), "--data", str(tables / "val.parquet"),
                 "--treatment", "cdk46i", "--horizon", "12,24", "--keep", "subject_id", "--out",
                 str(tables / "benefit.parquet")]) == 0
    b = pd.read_parquet(tables / "benefit.parquet")
    assert len(b) == 120 and {"subject_id", "pfs_control_12", "pfs_treated_24", "benefit_24",
                              "rmst_benefit_24"} <= set(b.columns)


def test_errors_name_file_and_column(tables, capsys):
    """Same dispatcher as the console script, called in-process (exit code 2 and the message on stderr)."""
    dev = pd.read_csv(tables / "dev.csv")
    dev.loc[3, "ecog"] = None
    dev.to_csv(tables / "holes.csv", index=False)
    fit = ["model", "fit", "--time", "pfs1_months", "--event", "pfs1_event", "--out", str(tables / "x.json")]
    assert main([*fit, "--data", str(tables / "holes.csv"), "--formula", "ecog"]) == 2
    err = capsys.readouterr().err
    assert "holes.csv" in err and "'ecog'" in err and "missing" in err
    assert main([*fit, "--data", str(tables / "dev.csv"), "--formula", "ecog + tumour_grade"]) == 2
    err = capsys.readouterr().err
    assert "dev.csv" in err and "tumour_grade" in err
    assert main(["model", "validate", "--model", str(tables / "nope.json"), "--data", str(tables / "dev.csv"),
                 "--time", "pfs1_months", "--event", "pfs1_event", "--horizon", "12", "--out",
                 str(tables / "m.json")]) == 2
    assert not (tables / "x.json").exists()
