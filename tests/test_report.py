"""The study report: one self-contained HTML file, metrics.json, frozen models and per-patient benefit."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_BOOTSTRAPS, write_simulated_tables
from sonimage.survival.cox import FrozenCox
from sonimage.cli import main
from sonimage.settings import Settings, StudySettings
from sonimage.study import run_study_analysis
from sonimage.survival.objectives import model_table
from sonimage.synth.tables import simulate_cohort_tables
from sonimage.tables.patients import fes_complete_case
from sonimage.tables.study import join_patient_table

SECTIONS = ["Key results", "Table 1: patients per cohort", "What this study can show: sample size and power",
            "Objective 1: PFS1 and FES/FDG heterogeneity",
            "Objective 2: does heterogeneity modify the CDK4/6i effect?", "Objective 3: lesion response",
            "Objective 4: predicted individual benefit of CDK4/6i", "Objective 5: external validation",
            "Sensitivity analyses", "Primary analyses and multiplicity", "TRIPOD items filled by this run",
            "Methods and conventions"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The analysis stage (`sonimage analyse`, partial settings file) over tables as the feature stage and the
    trial office write them."""
    base = tmp_path_factory.mktemp("study")
    t = write_simulated_tables(base)
    (base / "run.json").write_text(json.dumps(SMALL_BOOTSTRAPS))
    assert main(["analyse", str(base), "--clinical", str(base / "clinical"), "--settings", str(base / "run.json")]) == 0
    out = base / "report"
    assert len(pd.read_parquet(out / "excluded.parquet")) == 0
    return out / "report.html", out, t


def test_report_is_one_self_contained_file(run):
    path, out, _ = run
    html = path.read_text()
    assert path.name == "report.html"
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html) and "<script" not in html
    assert "<link" not in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 10
    positions = [html.index(f">{s}</h2>".replace("&", "&amp;")) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "cannot be validated in this cohort" in html and "TRANSCAN" in html
    assert "SONIA-0001" not in html  # no per-patient identifiers in the report


def test_metrics_json_and_models(run):
    _, out, t = run
    m = json.loads((out / "metrics.json").read_text())
    assert m["sections"] == SECTIONS
    ext = m["objective5"]
    assert set(ext) == {"impact", "transcan"} and set(ext["impact"]) == {"risk", "effect"}
    for k in ("harrell_c", "uno_c", "auc", "oe_ratio", "calibration_slope", "ici", "e50", "e90", "brier", "ipa"):
        assert {"estimate", "lower", "upper"} <= set(ext["impact"]["effect"][k])
    stats = m["statistics"]
    assert stats["external"]["impact"]["effect"]["estimable"] is True
    assert stats["external"]["impact"]["effect"]["propensity"]["max_abs_smd_after"] < 1e-6  # overlap weights
    assert stats["external"]["transcan"]["effect"]["estimable"] is False
    assert "cannot be validated" in stats["external"]["transcan"]["effect"]["statement"]
    assert [r["model"] for r in stats["sample_size"]] == ["risk", "effect"]
    assert all(r["n_needed"] > r["n_available"] for r in stats["sample_size"])  # n = 100 is too few, as Riley says
    power = stats["power"][0]
    assert power["simulations"] == 20 and 0 <= power["power"] <= 1 and power["mc_se"] >= 0
    for h in ("12", "24"):
        cfb = stats["benefit"]["effect"][h]["metrics"]["c_for_benefit"]
        assert cfb["corrected"] == pytest.approx(cfb["apparent"] - cfb["optimism"])
    labels = [r["scenario"] for r in stats["sensitivity"]]
    assert labels[0].startswith("primary") and "SUVmax > 2" in labels and any("imputed" in x for x in labels)
    fam = stats["multiplicity"]["Objective 2: treatment x heterogeneity"]
    assert [r["role"] for r in fam].count("primary") == 1 and all(r["p_holm"] >= r["p"] for r in fam)
    assert m["objective4"]["effect"]["internal_validation"]["bootstrap_replicates"] == 8
    assert {r["subgroup"] for r in m["objective2"]["forest"]} >= {"All patients", "FES pattern: mixed"}
    # the frozen model file reproduces the per-patient predictions without refitting
    model = FrozenCox.load(out / "models" / "effect.json")
    benefit = pd.read_parquet(out / "benefit.parquet")
    dev, _ = fes_complete_case(model_table(join_patient_table(t["sonia"].patients, t["sonia"].patient_table)))
    treated = model.survival(dev.assign(cdk46i=1), 12.0)[:, 0]
    np.testing.assert_allclose(benefit["effect_pfs_treated_12"], treated)


def test_bad_input_is_named():
    t = simulate_cohort_tables("sonia", 30)
    with pytest.raises(ValueError, match="development cohort 'nope'"):
        run_study_analysis({"sonia": t.patients}, {"sonia": t.lesion_table}, "/tmp/unused",
                           Settings(study=StudySettings(development="nope")))
    with pytest.raises(ValueError, match="no lesion table"):
        run_study_analysis({"sonia": t.patients}, {}, "/tmp/unused")


def test_patients_without_fes_evaluable_lesions_are_counted_and_left_out(run):
    """The liver-only patient of each full-size cohort: missing FES metrics, complete-case, count in the report."""
    path, out, t = run
    liver_only = t["sonia"].patients.loc[t["sonia"].patients.n_fes_evaluable == 0, "subject_id"]
    assert len(liver_only) >= 1
    dev = model_table(join_patient_table(t["sonia"].patients, t["sonia"].patient_table)).set_index("subject_id")
    assert dev.loc[liver_only, "fes_positive_fraction"].isna().all()
    assert dev.loc[liver_only, "any_fes_negative"].isna().all()
    assert (dev.loc[liver_only, "fes_missing_reason"] == "no FES-evaluable lesion").all()
    m = json.loads((out / "metrics.json").read_text())
    assert m["not_fes_evaluable"]["sonia"] == {"no FES-evaluable lesion": len(liver_only)}
    html = path.read_text()
    assert "Not FES-evaluable (missing FES is not negative FES)" in html
    assert f"no FES-evaluable lesion: {len(liver_only)}" in html
    everyone = next(r for r in m["objective2"]["forest"] if r["subgroup"] == "All patients")
    assert everyone["n"] == len(t["sonia"].patients) - len(liver_only)  # complete-case analysis set
