"""Synthetic clinical and ground-truth tables: determinism, schema, pattern mix, response, truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sonimage.dicom.body import lbm_janmahasatian
from sonimage.synth.tables import COHORTS, recist_category, simulate_cohort_tables, truth_lesion_table
from sonimage.tables.patients import patient_metrics

PATIENT_COLUMNS = {
    "subject_id", "cohort", "site", "age", "weight_kg", "height_cm", "sex", "ecog", "de_novo", "bone_only",
    "visceral", "prior_endocrine", "arm", "cdk46i", "fdg_day", "fes_day", "pfs1_months", "pfs1_event",
    "n_lesions", "n_fes_evaluable", "n_fes_positive", "fes_positive_fraction", "fes_pattern",
}
LESION_COLUMNS = {"subject_id", "lesion_id", "organ", "diameter_mm", "fdg_suv", "fes_suv", "fes_evaluable",
                  "fes_positive", "response_pct", "response", "recist_measurable", "baseline_size_mm",
                  "sulpeak_change_pct", "true_size_change_pct", "fdg_negative", "necrotic_core_fraction"}


@pytest.fixture(scope="module", params=list(COHORTS))
def tables(request):
    return simulate_cohort_tables(request.param, seed=3)


def test_deterministic_by_cohort_n_seed():
    a, b = simulate_cohort_tables("sonia", 60, seed=7), simulate_cohort_tables("sonia", 60, seed=7)
    pd.testing.assert_frame_equal(a.patients, b.patients)
    pd.testing.assert_frame_equal(a.lesions, b.lesions)
    assert a.truth == b.truth
    c = simulate_cohort_tables("sonia", 60, seed=8)
    assert not a.patients["pfs1_months"].equals(c.patients["pfs1_months"])


def test_schema_and_consistency(tables):
    p, les, spec = tables.patients, tables.lesions, COHORTS[tables.cohort]
    assert PATIENT_COLUMNS <= set(p.columns) and LESION_COLUMNS <= set(les.columns)
    assert len(p) == spec.n_patients and p["subject_id"].is_unique
    assert p["subject_id"].str.fullmatch(rf"{spec.prefix}-\d{{4}}").all()
    assert set(p["sex"]) == {"F"} and set(p["ecog"]) <= {0, 1, 2} and set(p["site"]) <= set(spec.sites)
    assert set(p["arm"]) <= set(spec.arms) and set(p["pfs1_event"]) <= {0, 1}
    assert (p["pfs1_months"] > 0).all()
    assert (p["fdg_day"] < 0).all() and (p["fes_day"] < 0).all() and (p["fdg_day"] != p["fes_day"]).all()
    assert not (p["bone_only"] & p["visceral"]).any()
    assert set(les["organ"]) <= {"bone", "lymph_node", "lung", "liver"}
    assert les.groupby("subject_id")["lesion_id"].apply(lambda s: list(s) == list(range(1, len(s) + 1))).all()
    assert (les["fes_evaluable"] == (les["organ"] != "liver")).all()
    assert (les["fes_positive"] == (les["fes_evaluable"] & les["er_positive"])).all()  # the clinical truth
    assert (les["fes_true_suv"] == les["fes_suv"]).all()
    counts = les.groupby("subject_id").agg(n=("lesion_id", "size"), pos=("fes_positive", "sum")).loc[p["subject_id"]]
    assert (counts["n"].to_numpy() == p["n_lesions"]).all() and (counts["pos"].to_numpy() == p["n_fes_positive"]).all()
    np.testing.assert_allclose(p["fes_positive_fraction"], p["n_fes_positive"] / p["n_lesions"])
    json.dumps(tables.truth)  # JSON-serialisable


def test_patient_truth_is_the_patient_tables_own(tables):
    """The generator's patient truth is :func:`patient_metrics` of the true calls (issue 16 point 5): the same
    counts and the same missing-value rules (NaN / NA / "not evaluable" without an FES-evaluable lesion); SUL uses
    the one lean-body-mass formula of :mod:`sonimage.dicom.body`."""
    p, les = tables.patients.set_index("subject_id"), tables.lesions
    table = truth_lesion_table(tables.cohort, les)
    calls = np.where(~les["fes_evaluable"], "not evaluable", np.where(les["er_positive"], "positive", "negative"))
    ref = patient_metrics(table, calls=pd.Series(calls, index=table.index)).set_index("patient").reindex(p.index)
    for c in ("n_lesions", "n_fes_evaluable", "n_fes_positive", "fes_positive_fraction",
              "fes_positive_fraction_evaluable", "any_fes_negative", "fes_pattern"):
        pd.testing.assert_series_equal(p[f"true_{c}"], ref[c], check_names=False, check_dtype=False)
    pd.testing.assert_series_equal(p["any_fes_negative"], ref["any_fes_negative"], check_names=False)
    none = p["true_n_fes_evaluable"] == 0
    assert none.any() and p.loc[none, "any_fes_negative"].isna().all()
    assert p.loc[none, "true_fes_positive_fraction"].isna().all()
    assert (p.loc[none, "fes_pattern"] == "not evaluable").all()
    assert (p.loc[none, "fes_positive_fraction"] == 0).all()  # the generating model's covariate needs a value
    lbm = [lbm_janmahasatian(w, h, "F") / w for w, h in zip(p["weight_kg"], p["height_cm"])]
    np.testing.assert_allclose(p["sul_ratio"], np.round(lbm, 4))


def test_pattern_mix_and_edge_cases(tables):
    p = tables.patients
    share = p["fes_pattern"].value_counts(normalize=True)
    assert {"all positive", "mixed"} <= set(share.index)
    assert (p.loc[p["fes_pattern"] == "not evaluable", "n_fes_evaluable"] == 0).all()
    assert (p["fes_pattern"] == "not evaluable").sum() >= 1  # the liver-only edge case
    if tables.cohort == "sonia":
        assert 0.1 < share["mixed"] < 0.45


def test_case_mix_differs_between_cohorts():
    s, i, t = (simulate_cohort_tables(c, seed=0) for c in ("sonia", "impact", "transcan"))
    assert i.patients["ecog"].mean() > s.patients["ecog"].mean() > t.patients["ecog"].mean()
    assert t.patients["de_novo"].sum() == 0 and set(t.patients["arm"]) == {"ET", "chemotherapy"}
    assert i.truth["linear_predictor_sd"] > s.truth["linear_predictor_sd"] > t.truth["linear_predictor_sd"]


def test_organ_mix_and_lesion_ranges():
    les = simulate_cohort_tables("sonia", 400, seed=1).lesions
    share = les["organ"].value_counts(normalize=True)
    assert 0.7 < share["bone"] < 0.86 and share["liver"] < 0.06
    assert les["diameter_mm"].between(5, 45).all()


def test_response_follows_truth():
    """Size change of every lesion (the truth column) follows the model; the clinic reports it only for RECIST
    measurable lesions (NaN and category NE otherwise)."""
    t = simulate_cohort_tables("sonia", 1500, seed=2)
    les = t.lesions.merge(t.patients[["subject_id", "cdk46i"]], on="subject_id")
    les = les[(les["true_size_change_pct"] > -100) & (les["organ"] == "bone")]
    x = np.column_stack([np.ones(len(les)), np.log(les["fes_suv"]), np.log(les["fdg_suv"]), les["cdk46i"],
                         np.log(np.maximum(les["baseline_size_mm"], 1.0) / 10.0)])
    beta = np.linalg.lstsq(x, les["true_size_change_pct"].to_numpy(), rcond=None)[0]
    r = t.truth["response"]
    assert beta[1] == pytest.approx(r["log_fes_suv"], abs=1.5)
    assert beta[3] == pytest.approx(r["cdk46i"], abs=1.5)
    assert list(recist_category(np.array([-100, -45, -10, 25, np.nan]))) == ["CR", "PR", "SD", "PD", "NE"]
    measured = t.lesions["recist_measurable"]
    assert t.lesions.loc[measured, "response_pct"].notna().all() and t.lesions.loc[~measured, "response_pct"].isna().all()
    assert (t.lesions["response"] == recist_category(t.lesions["response_pct"].to_numpy())).all()


def test_pfs_medians_near_sonia():
    from lifelines import KaplanMeierFitter

    p = simulate_cohort_tables("sonia", 2000, seed=0).patients
    med = {a: KaplanMeierFitter().fit(g["pfs1_months"], g["pfs1_event"]).median_survival_time_
           for a, g in p.groupby("arm")}
    assert 13 < med["AI"] < 19 and 21 < med["AI+CDK4/6i"] < 29


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown cohort"):
        simulate_cohort_tables("nope")
    with pytest.raises(ValueError, match="unknown log_hr"):
        simulate_cohort_tables("sonia", log_hr={"bogus": 1.0})
