"""Truth checks on the synthetic cohorts: recovery of known coefficients, interaction power, case-mix shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonimage.survival.benefit import benefit_validation, predict_benefit
from sonimage.survival.cox import fit_cox
from sonimage.survival.external import validate
from sonimage.survival.internal import EffectModel, RiskModel, bootstrap_optimism
from sonimage.synth.tables import TRUE_LOG_HR, simulate_cohort_tables

TRUE_FORMULA = "age + ecog + de_novo + visceral + prior_endocrine + cdk46i*fes_positive_fraction"


def test_large_n_recovers_true_coefficients():
    """n = 3,000 (seed 1): every true log-HR inside its 95 % CI (with 8 terms, ~1 in 3 seeds has a miss)."""
    p = simulate_cohort_tables("sonia", 3000, seed=1).patients
    s = fit_cox(p, "pfs1_months", "pfs1_event", TRUE_FORMULA).summary
    for term, beta in TRUE_LOG_HR.items():
        assert s.loc[term, "lower"] < beta < s.loc[term, "upper"], (term, beta, s.loc[term].to_dict())


def _interaction_p(beta: float, seed: int, n: int) -> float:
    p = simulate_cohort_tables("sonia", n, seed=seed, log_hr={"cdk46i:fes_positive_fraction": beta}).patients
    return float(fit_cox(p, "pfs1_months", "pfs1_event", TRUE_FORMULA).summary.loc["cdk46i:fes_positive_fraction", "p"])


@pytest.mark.slow  # simulated cohorts fitted many times (~20 s)
def test_interaction_detected_when_strong_and_not_when_absent():
    """Strong interaction (log ratio of HRs −1.6, n = 1,200: with the published heterogeneity most patients' FES-positive
    fraction is near 1, so the fraction varies little and needs more patients): detected (p < 0.05) in ≥ 8 of 10
    simulations; none simulated: rejected in at most 3 of 20 (5 % nominal)."""
    assert sum(_interaction_p(-1.6, s, 1200) < 0.05 for s in range(10)) >= 8
    assert sum(_interaction_p(0.0, s, 300) < 0.05 for s in range(20)) <= 3


@pytest.fixture(scope="module")
def shift():
    dev = simulate_cohort_tables("sonia", 2000, seed=11).patients
    model = fit_cox(dev, "pfs1_months", "pfs1_event", TRUE_FORMULA).model
    val = {c: simulate_cohort_tables(c, 1500, seed=12).patients for c in ("sonia", "impact", "transcan")}
    # point estimates only (n_boot=0): the prediction is about where they land, at a size where noise is small
    return model, val, {c: validate(model, v, "pfs1_months", "pfs1_event", 12.0, n_boot=0) for c, v in val.items()}


def test_case_mix_shift_behaves_as_predicted(shift):
    """Prediction: shared log-HRs, so the calibration slope is near 1 where the model has every term (SONIA,
    IMPACT); IMPACT's shorter Weibull scale (truth) means more events than predicted (O/E above SONIA's), SONIA's
    own O/E near 1; discrimination follows the spread of the true linear predictor: IMPACT > SONIA > TRANSCAN."""
    _, val, m = shift
    scale = {c: simulate_cohort_tables(c, 10, seed=0).truth["cox"]["baseline"]["scale_months"] for c in m}
    assert scale["impact"] < scale["sonia"]
    assert m["sonia"]["oe_ratio"]["estimate"] == pytest.approx(1.0, abs=0.12)
    assert m["impact"]["oe_ratio"]["estimate"] > m["sonia"]["oe_ratio"]["estimate"] + 0.05
    for c in ("sonia", "impact"):
        assert m[c]["calibration_slope"]["estimate"] == pytest.approx(1.0, abs=0.15), c
        assert m[c]["ici"]["estimate"] < 0.05, c
    c = {k: m[k]["harrell_c"]["estimate"] for k in m}
    assert c["impact"] > c["sonia"] > c["transcan"]
    assert m["impact"]["uno_c"]["estimate"] > m["transcan"]["uno_c"]["estimate"]
    assert m["impact"]["ipa"]["estimate"] > m["transcan"]["ipa"]["estimate"] > 0


@pytest.mark.slow  # simulated cohorts fitted many times (~20 s)
def test_benefit_estimable_only_with_both_arms(shift):
    model, val, _ = shift
    one_arm = benefit_validation(model, val["transcan"], "pfs1_months", "pfs1_event", "cdk46i", 12.0,
                                 source="transcan")
    assert one_arm["estimable"] is False and "one arm" in one_arm["reason"]
    both = benefit_validation(model, val["sonia"], "pfs1_months", "pfs1_event", "cdk46i", 12.0)
    cfb = both["c_for_benefit"]
    assert both["estimable"] and 0.5 < cfb["estimate"] < 0.75 and cfb["lower"] < cfb["estimate"] < cfb["upper"]
    groups = pd.DataFrame(both["calibration_of_benefit"])
    assert (groups["predicted_benefit"].diff().dropna() > 0).all()
    b = predict_benefit(model, val["sonia"].head(5), "cdk46i", [12.0, 24.0])
    assert (b["benefit_12"] > 0).all() and (b["rmst_benefit_24"] > 0).all()
    np.testing.assert_allclose(b["benefit_24"], b["pfs_treated_24"] - b["pfs_control_24"])


def test_bootstrap_optimism_and_pipelines():
    p = simulate_cohort_tables("sonia", seed=5).patients
    effect = EffectModel("cdk46i*(fes_positive_fraction + ecog)", "pfs1_months", "pfs1_event",
                         penalizers=(0.0, 0.1, 1.0), folds=3)
    res = bootstrap_optimism(effect, p, n_boot=12)
    assert res["bootstrap_used"] == 12
    assert res["optimism"]["harrell_c"] > 0 and res["corrected"]["calibration_slope"] < 1.0
    risk = RiskModel("age + ecog + visceral + fes_positive_fraction", "cdk46i", "pfs1_months", "pfs1_event").fit(p)
    two_stage = fit_cox(p.assign(pi=0.0), "pfs1_months", "pfs1_event", "age + ecog + visceral + "
                        "fes_positive_fraction").model
    pi = two_stage.linear_predictor(p)
    g = risk.settings["stage2"]
    expected = g["treatment"] * p["cdk46i"] + g["index"] * pi + g["treatment:index"] * p["cdk46i"] * pi
    lp = risk.linear_predictor(p)
    np.testing.assert_allclose(lp - lp.mean(), expected - expected.mean(), atol=1e-8)


def test_bootstrap_fans_out_on_an_executor_with_identical_results():
    """Replicates are seeded by index, so a process pool (pickling everything) gives the serial answer."""
    from concurrent.futures import ProcessPoolExecutor

    p = simulate_cohort_tables("sonia", 80, seed=6).patients
    pipe = EffectModel("cdk46i*(fes_positive_fraction + ecog)", "pfs1_months", "pfs1_event", penalizers=(0.0, 1.0),
                       folds=3)
    serial = bootstrap_optimism(pipe, p, n_boot=6, n_chunks=3)
    with ProcessPoolExecutor(2) as pool:
        fanned = bootstrap_optimism(pipe, p, n_boot=6, executor=pool, n_chunks=3)
    assert fanned == serial
