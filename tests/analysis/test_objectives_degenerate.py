"""Objectives 1 and 2 when every patient reads an FES-negative lesion (many small lesions at coarse resolution):
the heterogeneity column does not vary, so those models are reported as not estimable instead of failing."""

from __future__ import annotations

import math

from sonimage.settings import StudySettings
from sonimage.analysis.objectives import model_table, objective1, objective2
from sonimage.synth.tables import simulate_cohort_tables, truth_lesion_table
from sonimage.tables.patients import patient_metrics
from sonimage.tables.clinical import join_patient_table


def test_constant_any_fes_negative_is_not_estimable_and_the_rest_runs():
    t = simulate_cohort_tables("sonia", 40, seed=9)  # < 50: no liver-only patient
    raw = t.lesions.copy()
    first = raw[raw["fes_evaluable"]].groupby("subject_id").head(1).index
    raw.loc[first, "fes_suv"] = 1.0  # every patient now has an FES-negative lesion
    lesions = truth_lesion_table("sonia", raw)
    df = model_table(join_patient_table(t.patients, patient_metrics(lesions)))
    assert df["any_fes_negative"].nunique() == 1
    o1 = objective1(df, lesions, StudySettings(fes_thresholds=(1.5,)))
    row = next(r for r in o1["univariable"] if r["term"] == "any_fes_negative")
    assert row["hr"] is None and "does not vary" in row["not_estimable"]
    assert o1["primary"]["hr"] is None and "does not vary" in o1["primary"]["not_estimable"]
    assert "not_assessed" in o1["ph_test"]
    assert "any_fes_negative" not in o1["multivariable"]["formula"]
    assert all(math.isfinite(r["hr"]) for r in o1["multivariable"]["rows"])
    o2 = objective2(df)
    assert o2["interaction"]["hr"] is None and math.isfinite(o2["interaction_continuous"]["hr"])
    n_ai, n_cdk = (int((df["cdk46i"] == arm).sum()) for arm in (0, 1))  # the counts behind it, per arm
    assert f"AI: {n_ai} of {n_ai} patients any FES-negative" in o2["interaction"]["not_estimable"]
    assert f"AI + CDK4/6i: {n_cdk} of {n_cdk} patients" in o2["interaction"]["not_estimable"]
