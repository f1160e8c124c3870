"""The synthetic study is not trivially recoverable: lesion burden, FES continuity, visit grid, confounding,
ET-FES selection. Tables only (fast); each test fails for the naive method it names."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonimage.survival.cox import fit_cox
from sonimage.synth.tables import (ASSESSMENT_INTERVAL_MONTHS, ETFES_THRESHOLD, FES_THRESHOLD, etfes_suv,
                                   simulate_cohort_tables)

CLINICAL = "age + ecog + de_novo + visceral + prior_endocrine"


def test_lesion_burden_and_organ_mix_near_nienhuis():
    """Nienhuis 2018: 1,617 lesions / 91 patients (17.8), 78 % bone, 15 % node, 4 % lung, 2 % liver."""
    t = simulate_cohort_tables("sonia", 400, seed=1)
    per = t.patients["n_lesions"]
    assert 12 < per.mean() < 20 and per.median() < per.mean() and per.max() >= 40  # skewed: some very many
    share = t.lesions["organ"].value_counts(normalize=True)
    assert 0.72 < share["bone"] < 0.84 and 0.11 < share["lymph_node"] < 0.21
    assert 0.02 < share["lung"] < 0.06 and 0.01 < share["liver"] < 0.04
    assert 0.05 < t.lesions["fdg_negative"].mean() < 0.2  # FDG-negative lesions exist
    assert (t.lesions.loc[t.lesions["fdg_negative"], "fdg_suv"] < 2.5).mean() > 0.9


def test_fes_values_continuous_through_the_threshold():
    """No empty band around 1.5: a reader that is off by 0.1 SUV changes some lesions' status."""
    les = simulate_cohort_tables("sonia", 400, seed=1).lesions
    ev = les[les["fes_evaluable"]]
    below = ev["fes_suv"].between(1.4, FES_THRESHOLD, inclusive="left")
    above = ev["fes_suv"].between(FES_THRESHOLD, 1.6, inclusive="left")
    assert below.sum() >= 20 and above.sum() >= 20 and (below | above).mean() > 0.01
    assert (ev["fes_positive"] == ev["er_positive"]).all()  # the clinical truth: the class, not the uptake
    assert ((ev["fes_suv"] >= FES_THRESHOLD) != ev["er_positive"]).mean() < 0.03  # uptake and class rarely disagree


def test_progression_is_seen_at_scheduled_visits():
    """PFS1 = the visit that detects progression (12-weekly grid), deaths on the day, censoring at the last
    assessment: an analysis on the true event times is not what a trial sees."""
    p = simulate_cohort_tables("sonia", 600, seed=2).patients
    visits = p["pfs1_months"] / ASSESSMENT_INTERVAL_MONTHS
    on_grid = np.isclose(visits, np.round(visits), atol=1e-3)
    prog, death, cens = (p["pfs1_event_type"] == k for k in ("progression", "death", "censored"))
    assert on_grid[prog].all() and on_grid[cens].all()
    assert (p.loc[death, "pfs1_months"] == p.loc[death, "pfs1_true_months"]).all() and death.sum() > 10
    lag = p.loc[prog, "pfs1_months"] - p.loc[prog, "pfs1_true_months"]
    assert (lag >= -1e-3).all() and (lag <= ASSESSMENT_INTERVAL_MONTHS + 1e-3).all() and lag.mean() > 0.8
    after_first = cens & (p["pfs1_true_months"] >= ASSESSMENT_INTERVAL_MONTHS)  # censored at least at the first
    assert (p.loc[after_first, "pfs1_months"] <= p.loc[after_first, "pfs1_true_months"] + 1e-3).all()
    assert (p["pfs1_event"] == (~cens).astype(int)).all()


def test_impact_treatment_is_confounded_and_the_propensity_model_is_recorded():
    """IMPACT-MBC gives CDK4/6i to fitter patients: the naive treatment log-HR is biased towards benefit, adjusting
    for the confounders removes the bias (SONIA, randomised, shows none); the recorded propensity is recovered."""
    import statsmodels.api as sm

    def gap(cohort: str) -> float:
        p = simulate_cohort_tables(cohort, 3000, seed=4).patients
        naive = fit_cox(p, "pfs1_months", "pfs1_event", "cdk46i + fes_positive_fraction").summary
        adjusted = fit_cox(p, "pfs1_months", "pfs1_event", f"cdk46i + fes_positive_fraction + {CLINICAL}").summary
        return float(naive.loc["cdk46i", "coef"] - adjusted.loc["cdk46i", "coef"])

    # SONIA's small gap is the Cox model's non-collapsibility (adjusting for prognostic factors moves a randomised
    # HR away from 1), not confounding: it points the other way
    assert gap("impact") < -0.15 and abs(gap("sonia")) < 0.1
    t = simulate_cohort_tables("impact", 3000, seed=4)
    p, logit = t.patients, t.truth["allocation"]["propensity_logit"]
    x = p.assign(intercept=1.0, age_centred=p["age"] - t.truth["case_mix"]["age_mean"])[list(logit)].astype(float)
    fit = sm.Logit(p["cdk46i"].to_numpy(float), x).fit(disp=0)
    for term, beta in logit.items():  # within 3 SE (5 terms: a 95 % CI would miss one in ~4 seeds)
        assert abs(fit.params[term] - beta) < 3 * fit.bse[term], term
    expected = 1.0 / (1.0 + np.exp(-(x.to_numpy() @ np.array(list(logit.values())))))
    np.testing.assert_allclose(p["allocation_probability"], expected, atol=1e-4)


def test_transcan_selects_by_fes_of_the_three_largest_lesions():
    """ET-FES: SUV >= 2 -> endocrine therapy; SUV < 2 -> randomised ET vs chemotherapy (about 1:1)."""
    t = simulate_cohort_tables("transcan", 600, seed=5)
    p = t.patients.set_index("subject_id")
    suv = etfes_suv(t.lesions).reindex(p.index)
    np.testing.assert_allclose(p["fes_suv3_largest"], suv)
    high = p["fes_suv3_largest"] >= ETFES_THRESHOLD
    assert (p.loc[high, "arm"] == "ET").all() and (p.loc[high, "chemo"] == 0).all()
    low = p[~high]
    assert 0.1 < len(low) / len(p) < 0.35 and abs(low["chemo"].mean() - 0.5) < 0.06
    assert (p["chemo"] == (p["arm"] == "chemotherapy")).all() and (p["cdk46i"] == 0).all()
    assert t.truth["cox"]["log_hr"]["chemo"] < 0 and "chemo:fes_positive_fraction" in t.truth["cox"]["log_hr"]
    # the three largest by diameter, not the three hottest
    les = t.lesions[t.lesions["fes_evaluable"]]
    hottest = les.sort_values("fes_suv", ascending=False).groupby("subject_id")["fes_suv"].apply(
        lambda s: s.head(3).mean()).reindex(p.index)
    assert (hottest > suv + 1e-9).any()


def test_cohorts_have_their_own_baseline_hazard():
    scales = {c: simulate_cohort_tables(c, 20, seed=0).truth["cox"]["baseline"]["scale_months"]
              for c in ("sonia", "impact", "transcan")}
    assert len(set(scales.values())) == 3
    pd.testing.assert_series_equal(*(pd.Series(simulate_cohort_tables(c, 20, seed=0).truth["cox"]["log_hr"])
                                     .drop(["chemo", "chemo:fes_positive_fraction"], errors="ignore")
                                     for c in ("sonia", "impact")))
