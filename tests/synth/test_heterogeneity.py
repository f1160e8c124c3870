"""The synthetic truth's ER heterogeneity and outcome match the published series (shared SCIENCE.md). Tables only."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from sonimage.survival.cox import fit_cox
from sonimage.synth.tables import ETFES_THRESHOLD, heterogeneity_outcome_truth, simulate_cohort_tables


@pytest.fixture(scope="module")
def sonia():
    return simulate_cohort_tables("sonia", 3000, seed=17)


def test_er_negativity_in_the_published_ranges(sonia):
    """Lesion-level ER-negative 5–15 % (Liu 2022: 6.9 %), patients with >= 1 ER-negative lesion 15–45 % (Liu
    17.9 %, van Kruchten 2013 up to ~45 %), over FES-evaluable lesions and patients."""
    les, p = sonia.lesions, sonia.patients
    ev = les[les.fes_evaluable]
    assert 0.05 <= 1 - ev.er_positive.mean() <= 0.15
    share = p.true_any_fes_negative.dropna().astype(bool).mean()
    assert 0.15 <= share <= 0.45


def test_er_negative_lesions_cluster_in_patients(sonia):
    """The patient frailty: with lesions independent at the same overall rate, far more patients would have one
    (1 - (1 - q)^n per patient); observed is well below, and all-negative patients exist."""
    les, p = sonia.lesions, sonia.patients
    ev = les[les.fes_evaluable]
    q = 1 - ev.er_positive.mean()
    n = p.loc[p.true_n_fes_evaluable > 0, "true_n_fes_evaluable"].to_numpy()
    independent = float(np.mean(1 - (1 - q) ** n))
    observed = p.true_any_fes_negative.dropna().astype(bool).mean()
    assert observed < 0.7 * independent
    assert (p.true_fes_pattern == "all negative").sum() >= 10


def test_pfs1_medians_and_hazard_ratio_near_sonia(sonia):
    """SONIA PFS1: 16.1 months (AI) vs 24.7 (AI + CDK4/6i), HR 0.59 (ASCO 2023)."""
    p = sonia.patients
    med = {a: KaplanMeierFitter().fit(g.pfs1_months, g.pfs1_event).median_survival_time_ for a, g in p.groupby("arm")}
    assert 14.5 <= med["AI"] <= 17.5 and 22.5 <= med["AI+CDK4/6i"] <= 27.5
    hr = float(np.exp(fit_cox(p, "pfs1_months", "pfs1_event", "cdk46i").summary.loc["cdk46i", "coef"]))
    assert 0.5 <= hr <= 0.7


def test_transcan_share_below_fes_2_near_et_fes():
    """ET-FES (Gennari 2024): 30 of 147 patients (20 %) below FES SUV 2 over the 3 largest lesions."""
    p = simulate_cohort_tables("transcan", 2000, seed=17).patients
    assert 0.14 <= (p.fes_suv3_largest < ETFES_THRESHOLD).mean() <= 0.26


def test_lesion_sizes_keep_small_lesions_but_mostly_10_mm_or_more(sonia):
    d = sonia.lesions.diameter_mm
    assert 0.1 <= (d < 10).mean() <= 0.25 and d.between(5, 45).all() and 13 <= d.median() <= 17


def test_heterogeneity_outcome_truth_is_what_the_analyses_estimate():
    """truth.json's any-FES-negative log-HR and its CDK4/6i interaction: an independent cohort fitted with
    objective 1's model lands within 3 combined standard errors (prognostic: positive log-HR)."""
    truth = heterogeneity_outcome_truth("sonia")
    p = simulate_cohort_tables("sonia", 6000, seed=29).patients
    p = p[p.n_fes_evaluable > 0].assign(any_fes_negative=lambda d: d.any_fes_negative.astype(float))
    for c in ("de_novo", "visceral", "prior_endocrine"):
        p[c] = p[c].astype(int)
    fit = fit_cox(p, "pfs1_months", "pfs1_event", truth["any_fes_negative"]["model"].split(" (")[0]).summary
    est, se = fit.loc["any_fes_negative", "coef"], fit.loc["any_fes_negative", "se"]
    assert truth["any_fes_negative"]["log_hr"] > 0.1
    assert abs(est - truth["any_fes_negative"]["log_hr"]) < 3 * np.hypot(se, truth["any_fes_negative"]["se"])
    assert "log_hr" in truth["cdk46i:any_fes_negative"]
