"""The study report: one self-contained HTML file, metrics.json, frozen models and per-patient benefit."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from sonimage.survival.cox import FrozenCox
from sonimage.cli import main
from sonimage.settings import Settings, StudySettings
from sonimage.stages.analyse import run_study_analysis
from sonimage.analysis.objectives import model_table
from sonimage.synth.tables import simulate_cohort_tables
from sonimage.tables.patients import fes_complete_case
from sonimage.tables.clinical import join_patient_table
from tests.helpers import SMALL_BOOTSTRAPS, write_simulated_tables

pytestmark = pytest.mark.slow  # runs the whole analysis twice (~100 s); one test starts headless Chromium

SECTIONS = ["Key results", "Synthetic study: estimates beside the truth", "Table 1: patients per cohort", "What this study can show: sample size and power",
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
    _write_truth(base, t)
    (base / "run.json").write_text(json.dumps(SMALL_BOOTSTRAPS))
    assert main(["analyse", str(base), "--clinical", str(base / "clinical"), "--settings", str(base / "run.json")]) == 0
    out = base / "report"
    assert len(pd.read_parquet(out / "excluded.parquet")) == 0
    return out / "report.html", out, t


RECOVERY = {"earl1_compliant": False, "diameters_mm": [10, 13, 17, 22, 28, 37],
            "rc_max": [0.21, 0.45, 0.66, 0.80, 0.88, 0.94]}


def _write_truth(base, tables) -> None:
    """truth.json beside each synthetic cohort's clinical tables, as the generator writes it (``sonimage synth``
    puts the trial office's tables in truth/<cohort>/); IMPACT's images outside EARL1, the others without a
    recovery record (older truth files)."""
    for c, x in tables.items():
        doc = {"cohort": c, "tables": x.truth, **({"recovery": RECOVERY} if c == "impact" else {})}
        (base / "clinical" / c / "truth.json").write_text(json.dumps(doc))


def _strict(path):
    """metrics.json through a parser that refuses NaN and Infinity."""
    def refuse(token):
        raise ValueError(f"{path}: non-standard JSON constant {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def _nulls_have_reasons(obj, where="") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.endswith("_null_reason"):
                base = k[: -len("_null_reason")]
                assert base in obj and (obj[base] is None or None in obj[base]), where + k
                assert v, where + k
            _nulls_have_reasons(v, f"{where}{k}/")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _nulls_have_reasons(v, f"{where}{i}/")


IMPOSSIBLE = re.compile(r"\b(nan|inf|infinity)\b|(^|[\s(–])-\d", re.IGNORECASE)  # a hyphen used as a minus


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
    m = _strict(out / "metrics.json")
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
    assert stats["sensitivity"][0]["o1"] == {k: v for k, v in m["objective1"]["primary"].items() if k != "formula"}
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


def test_metrics_json_is_strict_with_a_reason_beside_every_null(run):
    _, out, _ = run
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    m = _strict(out / "metrics.json")
    _nulls_have_reasons(m)
    assert m["synthetic"] is True and m["run_date"]
    # the decision curves hold undefined points (no treated patient among those recommended): null with why
    dc = m["statistics"]["external"]["impact"]["effect"]["horizons"]["12"]["decision_curve"]
    assert None not in dc["model"] or dc["model_null_reason"]


def test_one_primary_objective1_result_everywhere(run):
    """The pre-specified primary result reads the same in the key results, objective 1, the multiplicity family
    and the first (primary) row of the sensitivity table."""
    path, out, _ = run
    m = _strict(out / "metrics.json")
    primary = m["objective1"]["primary"]
    family = m["statistics"]["multiplicity"]["Objective 1: heterogeneity and PFS1"]
    assert [r for r in family if r["role"] == "primary"] == [family[0]]
    assert {k: family[0][k] for k in ("hr", "lower", "upper", "p")} == {k: primary[k] for k in ("hr", "lower",
                                                                                                "upper", "p")}
    from sonimage.report.text import ci
    text = ci(primary["hr"], primary["lower"], primary["upper"])
    html = path.read_text()
    sections = html.split("<section")
    for heading in ("Key results", "Objective 1: PFS1", "Sensitivity analyses", "Primary analyses and multiplicity"):
        body = next(b for b in sections if f"<h2>{heading}" in b)
        assert text in body, heading
    assert "Objective 1, primary" in html


def test_synthetic_study_shows_the_truth_and_image_recovery(run):
    path, out, t = run
    html = path.read_text()
    assert "Synthetic study: simulated patients and images" in html
    m = _strict(out / "metrics.json")
    assert m["run_date"] in html
    rows = {r["term"]: r for r in m["truth_check"]["generating_model"]["rows"]}
    assert rows["cdk46i:fes_positive_fraction"]["true_log_hr"] == t["sonia"].truth["cox"]["log_hr"][
        "cdk46i:fes_positive_fraction"]
    assert "True log-HR" in html and "IMPACT: the images fall outside EARL1" in html
    assert "SONIA: the images fall outside" not in html  # no recovery record: nothing claimed


def test_report_reads_as_a_journal_would(run):
    path, _, _ = run
    html = path.read_text()
    visible = re.sub(r'src="data:[^"]+"', "", html)
    assert not IMPOSSIBLE.search(re.sub(r"<[^>]+>", " ", visible))
    assert "−" in visible and " to " in visible  # real minus signs, intervals "(a to b)"
    assert "Any FES-negative lesion (yes vs no)" in visible and "{'" not in visible  # labels; no dict reprs
    assert "class='scroll'" in visible


@pytest.fixture(scope="module")
def separated(tmp_path_factory):
    """A development cohort with separation: no patient of the AI arm with an FES-negative lesion progresses,
    so the per-arm hazard ratio has a monotone likelihood."""
    base = tmp_path_factory.mktemp("separated")
    t = write_simulated_tables(base)
    neg = set(t["sonia"].patient_table.loc[t["sonia"].patient_table["any_fes_negative"].eq(True), "patient"])
    p = t["sonia"].patients
    p.loc[p.subject_id.isin(neg) & p.cdk46i.eq(0), "pfs1_event"] = 0
    p.to_parquet(base / "clinical" / "sonia" / "patients.parquet")
    settings = {**SMALL_BOOTSTRAPS, "study": {**SMALL_BOOTSTRAPS["study"], "fes_thresholds": [1.5]}}
    (base / "run.json").write_text(json.dumps(settings))
    assert main(["analyse", str(base), "--clinical", str(base / "clinical"), "--settings", str(base / "run.json")]) == 0
    return base / "report"


def test_separation_is_estimated_by_firth_and_every_number_is_finite(separated):
    from sonimage.survival.cox import FIRTH
    m = _strict(separated / "metrics.json")
    arm = m["objective2"]["hr_per_arm"][0]
    assert arm["method"] == FIRTH and 0 < arm["lower"] < arm["hr"] < arm["upper"] < 1
    _nulls_have_reasons(m)
    html = (separated / "report.html").read_text()
    visible = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", html))
    assert not IMPOSSIBLE.search(visible)
    assert "Firth penalised Cox, profile-likelihood CI" in visible and "Heinze" in visible


def test_report_renders_in_headless_chromium(run, separated, tmp_path):
    """Both reports in a real browser at 800 px: no console error, every figure drawn with a size, no 'nan' or
    'inf' on the page, wide tables scroll inside their boxes instead of widening the page."""
    from tests.report import chromium
    for path in (run[0], separated / "report.html"):
        try:
            seen = chromium.inspect(path, tmp_path / f"profile-{path.parent.parent.name}")
        except chromium.ChromiumUnavailable as exc:
            pytest.skip(f"chromium cannot start here: {exc}")
        assert seen["errors"] == [], seen["errors"]
        assert len(seen["images"]) >= 10
        assert all(i["natural"] > 0 and i["width"] > 0 and i["height"] > 0 for i in seen["images"]), seen["images"]
        assert not re.search(r"\b(nan|inf|infinity)\b", seen["text"], re.IGNORECASE)
        assert seen["overflow"] <= 0 and seen["scrollBoxes"] > 10
        assert ("Synthetic study" in seen["text"]) == (path == run[0])  # the separated study has no truth.json
        assert seen["screenshot"][:8] == b"\x89PNG\r\n\x1a\n"
        (tmp_path / f"{path.parent.parent.name}.png").write_bytes(seen["screenshot"])
