"""Benefit statistics with known answers: IPCW c-for-benefit, bootstrap optimism of benefit metrics, treatment
decision curves, propensity weighting, multiple imputation, simulation-based power, penalty path."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from distributed import Client

from sonimage.cluster import local_cluster
from sonimage.report.appraisal_sections import key_lines
from sonimage.analysis.appraisal import benefit_appraisal, power_rows
from sonimage.survival.benefit import benefit_metrics, c_for_benefit, predict_benefit
from sonimage.survival.cox import fit_cox
from sonimage.survival.data import SurvivalDataError
from sonimage.survival.decision import net_benefit, treatment_net_benefit
from sonimage.survival.imputation import mi_cox, mice, rubin
from sonimage.survival.internal import (BenefitSpec, EffectModel, bootstrap_optimism, effect_formula,
                                        log_penalty_path)
from sonimage.analysis.objectives import CLINICAL, EVENT, TIME, TRT, model_table
from sonimage.survival.power import term_power
from sonimage.survival.propensity import observed_benefit
from sonimage.analysis.sensitivity import (SensitivitySpec, complete_cases, delineation_columns, scenario_summary,
                                           scenarios)
from sonimage.synth.tables import simulate_cohort_tables
from sonimage.tables.clinical import join_patient_table


def _brute_c_for_benefit(time, event, treated, benefit, horizon) -> float:
    """The IPCW c-for-benefit written out with loops (equal arm sizes: the i-th lowest predicted benefit among
    the treated is paired with the i-th lowest among the controls)."""
    n = len(time)

    def g(s: float, strictly_before: bool) -> float:  # KM of censoring at s (or just before s)
        out = 1.0
        for c in sorted({time[i] for i in range(n) if event[i] == 0}):
            if c < s or (c == s and not strictly_before):
                at_risk = sum(time[j] >= c for j in range(n))
                out *= 1 - sum(time[j] == c and event[j] == 0 for j in range(n)) / at_risk
        return out

    y, w = [], []
    for i in range(n):
        if time[i] <= horizon and event[i] == 1:
            y.append(1), w.append(1 / g(time[i], True))
        elif time[i] > horizon:
            y.append(0), w.append(1 / g(horizon, False))
        else:
            y.append(0), w.append(0.0)
    tr = sorted([i for i in range(n) if treated[i]], key=lambda i: benefit[i])
    co = sorted([i for i in range(n) if not treated[i]], key=lambda i: benefit[i])
    pairs = [((benefit[a] + benefit[b]) / 2, y[b] - y[a], w[a] * w[b]) for a, b in zip(tr, co)]
    num = den = 0.0
    for p1, o1, w1 in pairs:
        for p2, o2, w2 in pairs:
            if o1 > o2 and w1 * w2 > 0:
                den += w1 * w2
                num += w1 * w2 * (1.0 if p1 > p2 else 0.5 if p1 == p2 else 0.0)
    return num / den


def test_ipcw_c_for_benefit_matches_brute_force():
    rng = np.random.default_rng(4)
    n = 60
    time = np.round(rng.exponential(14, n), 0) + 1  # ties between events and censorings
    event = (rng.random(n) < 0.6).astype(int)
    treated = np.arange(n) % 2 == 1
    benefit = np.round(rng.normal(0.1, 0.05, n), 2)  # ties in predicted benefit
    c, known = c_for_benefit(time, event, treated, ~treated, benefit, 12.0)
    assert known < n // 2  # some pairs have a patient censored before the horizon
    assert c == pytest.approx(_brute_c_for_benefit(time, event, treated, benefit, 12.0), abs=1e-12)


def _null_benefit_cohort(n: int, seed: int) -> pd.DataFrame:
    """Four covariates, one prognostic, no treatment effect at all: every patient's true benefit is 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    t = rng.exponential(1 / (np.exp(0.7 * x[:, 0]) / 18))
    c = rng.uniform(6, 48, n)
    return pd.DataFrame({**{f"x{j}": x[:, j] for j in range(4)}, "trt": rng.integers(0, 2, n),
                         "time": np.minimum(t, c), "event": (t <= c).astype(int)})


def test_bootstrap_corrects_optimism_of_benefit_metrics():
    """No true benefit anywhere: the unpenalised effect model's apparent c-for-benefit is optimistic; the
    bootstrap-corrected value lies closer to its performance on a large independent cohort (the truth)."""
    apparent, corrected, truth = [], [], []
    spec = BenefitSpec("trt", (12.0,))
    pipe = EffectModel("x0 + x1 + x2 + x3 + trt*(x0 + x1 + x2 + x3)", "time", "event")
    big = _null_benefit_cohort(3000, 99)
    for seed in (1, 2, 3, 4):
        dev = _null_benefit_cohort(150, seed)
        res = bootstrap_optimism(pipe, dev, n_boot=25, seed=seed, benefit=spec)
        model = pipe.fit(dev)
        ben = predict_benefit(model, big, "trt", [12.0])["benefit_12"].to_numpy()
        arm = big["trt"].to_numpy()
        truth.append(benefit_metrics(big["time"].to_numpy(), big["event"].to_numpy(), arm == 1, arm == 0, ben,
                                     12.0)["c_for_benefit"])
        apparent.append(res["apparent"]["c_for_benefit_12"])
        corrected.append(res["corrected"]["c_for_benefit_12"])
        assert res["optimism"]["c_for_benefit_12"] > 0
    apparent, corrected, truth = map(np.mean, (apparent, corrected, truth))
    assert truth == pytest.approx(0.5, abs=0.03)
    assert apparent > truth + 0.05  # apparent c-for-benefit ≈ 0.60 where the truth is ≈ 0.51
    assert corrected < apparent - 0.03 and abs(corrected - truth) < abs(apparent - truth)


def test_treatment_decision_curve_constructed_case():
    """Group A (predicted benefit 0.3): risk 50 % untreated, 20 % treated; group B (0.0): 30 % in both arms;
    no censoring. At threshold 0.1 treating A only avoids 0.15 events per patient at a cost of 0.5 × 0.1:
    net benefit 0.10; treating all: 0.15 − 0.1 = 0.05."""
    rows = []
    for group, ben, risk_c, risk_t in (("A", 0.3, 0.5, 0.2), ("B", 0.0, 0.3, 0.3)):
        for trt, risk in ((0, risk_c), (1, risk_t)):
            n_event = int(round(100 * risk))
            rows += [{"ben": ben, "trt": trt, "time": 5.0, "event": 1}] * n_event
            rows += [{"ben": ben, "trt": trt, "time": 30.0, "event": 0}] * (100 - n_event)
    d = pd.DataFrame(rows)
    res = treatment_net_benefit(d["time"], d["event"], d["trt"], d["ben"], 12.0, thresholds=(0.1, 0.35))
    assert res["model"][0] == pytest.approx(0.10) and res["treat_all"][0] == pytest.approx(0.05)
    assert res["model"][1] == pytest.approx(0.0) and res["share_treated"] == [0.5, 0.0]
    assert res["risk_control"] == pytest.approx(0.4) and res["risk_treated"] == pytest.approx(0.25)


def test_risk_decision_curve_agrees_with_dcurves():
    """Our survival decision curve against dcurves (an independent implementation of Vickers' method)."""
    import dcurves  # test dependency ([test] extra)
    rng = np.random.default_rng(7)
    n = 300
    risk = rng.uniform(0.05, 0.9, n)
    t = rng.exponential(12 / risk)
    c = rng.uniform(3, 40, n)
    d = pd.DataFrame({"risk": risk, "time": np.minimum(t, c), "event": (t <= c).astype(int)})
    thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    ours = net_benefit(d["time"].to_numpy(), d["event"].to_numpy(), risk, 12.0, tuple(thresholds))
    ref = dcurves.dca(data=d, outcome="event", modelnames=["risk"], thresholds=thresholds, time=12.0,
                      time_to_outcome_col="time")
    ref_model = ref[ref["model"] == "risk"]["net_benefit"].to_numpy()
    ref_all = ref[ref["model"] == "all"]["net_benefit"].to_numpy()
    np.testing.assert_allclose(ours["model"], ref_model, atol=1e-9)
    np.testing.assert_allclose(ours["treat_all"], ref_all, atol=1e-9)


def _confounded(n: int, seed: int, treat: int | None = None) -> pd.DataFrame:
    """Sicker patients (high x) are treated more often and progress sooner; treatment halves the hazard."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    b = rng.integers(0, 2, n)
    z = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x - 0.5 * b)))).astype(int) if treat is None else np.full(n, treat)
    t = rng.exponential(1 / (np.exp(0.9 * x + 0.4 * b + np.log(0.5) * z) / 15))
    c = rng.uniform(12, 40, n)
    return pd.DataFrame({"x": x, "b": b, "z": z, "time": np.minimum(t, c), "event": (t <= c).astype(int)})


def test_propensity_weighting_recovers_known_benefit():
    """The true 12-month benefit (ATE) is the difference of the two potential-outcome survival curves; the IPTW
    estimate recovers it where the crude difference is confounded."""
    truth = float(np.mean(_confounded(200000, 5, 1)["time"] > 12) - np.mean(_confounded(200000, 5, 0)["time"] > 12))
    d = _confounded(2000, 6)
    res = observed_benefit(d, "time", "event", "z", ["x", "b"], 12.0, method="iptw", n_boot=20)
    assert res["estimate"] == pytest.approx(truth, abs=0.04)
    assert abs(res["unadjusted"] - truth) > 0.08
    assert res["lower"] < res["estimate"] < res["upper"]
    smd = pd.DataFrame(res["balance"]).set_index("covariate")
    assert smd.loc["x", "smd_before"] > 0.5 and abs(smd.loc["x", "smd_after"]) < 0.1
    overlap = observed_benefit(d, "time", "event", "z", ["x", "b"], 12.0, method="overlap", n_boot=0)
    assert overlap["max_abs_smd_after"] < 1e-6  # overlap weights balance the means exactly (Li et al. 2018)


def test_multiple_imputation_and_rubins_rules():
    # Rubin's rules by hand: m = 2, estimates 1 and 3 with variances 1 and 1 -> T = 1 + 1.5 * 2 = 4
    r = rubin(np.array([[1.0], [3.0]]), np.array([[1.0], [1.0]]), n=10_000)
    assert r["coef"][0] == 2.0 and r["se"][0] == pytest.approx(2.0)
    rng = np.random.default_rng(8)
    n = 300
    x1, x2 = rng.normal(size=n), rng.integers(0, 2, n).astype(float)
    t = rng.exponential(1 / (np.exp(0.6 * x1 + 0.5 * x2) / 10))
    c = rng.uniform(5, 30, n)
    full = pd.DataFrame({"x1": x1, "x2": x2, "time": np.minimum(t, c), "event": (t <= c).astype(int)})
    holes = full.copy()
    holes.loc[rng.random(n) < 0.25, "x1"] = np.nan
    holes.loc[rng.random(n) < 0.15, "x2"] = np.nan
    with pytest.raises(SurvivalDataError, match="missing value"):
        fit_cox(holes, "time", "event", "x1 + x2")
    res = mi_cox(holes, "time", "event", "x1 + x2", m=5, iterations=5)
    ref = fit_cox(full, "time", "event", "x1 + x2").summary
    assert res["counts"]["complete"] < n and res["counts"]["missing_by_column"]["x1"] > 50
    for term in ("x1", "x2"):
        assert abs(res["summary"].loc[term, "coef"] - ref.loc[term, "coef"]) < 2 * ref.loc[term, "se"]
        assert res["summary"].loc[term, "se"] > ref.loc[term, "se"]  # missing information costs precision
    completed = mice(holes, ["x1", "x2"], "time", "event", m=1, iterations=2)[0]
    assert completed[["x1", "x2"]].notna().all().all() and set(completed["x2"]) <= {0.0, 1.0}  # PMM keeps 0/1


@pytest.mark.slow  # starts a Dask cluster
def test_simulated_power_has_nominal_size_and_grows_with_effect():
    rng = np.random.default_rng(9)
    n = 100
    d = pd.DataFrame({"trt": rng.integers(0, 2, n), "m": rng.integers(0, 2, n)})
    t = rng.exponential(20, n)
    c = rng.uniform(10, 40, n)
    d = d.assign(time=np.minimum(t, c), event=(t <= c).astype(int))
    with local_cluster(2) as cluster, Client(cluster) as client:  # replicates pickled to Dask worker processes
        null = term_power(d, "time", "event", "trt*m", "trt:m", n_sim=120, log_effect=0.0, executor=client)
    with ThreadPoolExecutor(2) as pool:
        strong = term_power(d, "time", "event", "trt*m", "trt:m", n_sim=60, log_effect=np.log(6), n=300,
                            executor=pool)
    assert null == term_power(d, "time", "event", "trt*m", "trt:m", n_sim=120, log_effect=0.0)  # executor-free
    assert null["power"] < 0.12 and null["mc_se"] == pytest.approx(np.sqrt(null["power"] * (1 - null["power"]) / 120))
    assert abs(null["mean_events"] - null["cohort_events"]) < 0.15 * null["cohort_events"]
    assert strong["power"] > 0.8 and strong["effect_ratio"] == pytest.approx(6)


def test_penalty_path_and_model_hierarchy():
    path = log_penalty_path(1e-3, 100.0, per_decade=2)
    assert path[0] == 0.0 and path[1] == 0.001 and path[-1] == 100.0 and len(path) == 12
    assert effect_formula("trt", ["m"], "age + m") == "age + m + trt*(m)"
    d = _null_benefit_cohort(120, 3)
    m = EffectModel("x0 + trt*(x0 + x1)", "time", "event", path[1:], folds=3).fit(d)
    assert m.settings["penalizer_at_edge"] in (None, "largest", "smallest")
    assert len(m.settings["cv_partial_loglik"]) == len(path) - 1
    with pytest.raises(SurvivalDataError, match="without the main effect"):
        EffectModel("x0 + trt + trt:x1", "time", "event").fit(d)


def test_sensitivity_leaves_out_or_imputes_incomplete_patients():
    """Primary analysis: complete case with counts per reason; the imputation scenario keeps every patient and
    pools the Cox estimates by Rubin's rules; a per-method MTV column becomes a delineation scenario."""
    tabs = {c: simulate_cohort_tables(c, n, seed=4) for c, n in (("sonia", 80), ("impact", 80))}
    cohorts = {c: model_table(join_patient_table(x.patients, x.patient_table)) for c, x in tabs.items()}
    dev = cohorts["sonia"]
    no_fes = int(dev["fes_positive_fraction"].isna().sum())  # the truth's patients without a FES-evaluable lesion
    assert no_fes >= 1  # the liver-only edge case of every cohort of 50 or more
    with_fes = dev.index[dev["fes_positive_fraction"].notna()]
    dev.loc[with_fes[:5], ["fes_positive_fraction", "any_fes_negative"]] = np.nan  # five more without FES data
    dev.loc[with_fes[10:13], "ecog"] = np.nan  # three with a missing clinical covariate
    complete, left_out = complete_cases(cohorts, CLINICAL)
    n_complete = 80 - no_fes - 5 - 3
    assert left_out["sonia"] == {"without_fes": no_fes + 5, "missing_clinical": 3}
    assert len(complete["sonia"]) == n_complete
    spec = SensitivitySpec(TIME, EVENT, TRT, CLINICAL, effect_formula(TRT, ["fes_positive_fraction"], "age + ecog"),
                           (0.0, 1.0), 12.0, "sonia", {"sonia": "randomised", "impact": "observational"}, folds=3,
                           imputations=2)
    listed = scenarios((1.5,), delineation_columns(["fdg_mtv_ml", "fdg_mtv_ml_pct41", "fes_mtv_ml_pct41"]))
    assert [s.group for s in listed] == ["primary", "FES threshold", "delineation", "missing data"]
    primary = scenario_summary(listed[0], cohorts, spec)
    imputed = scenario_summary(listed[-1], cohorts, spec)
    assert primary["n"] == n_complete and imputed["n"] == 80 and imputed["incomplete"] == 80 - n_complete
    assert 0 < imputed["o1"]["lower"] < imputed["o1"]["hr"] < imputed["o1"]["upper"]
    assert np.isfinite(imputed["o5"]["impact"]["c_for_benefit"]) and "o1_mtv" in primary


def test_power_not_estimable_is_said_not_hidden():
    """A cohort where every patient reads an FES-negative lesion cannot fit the interaction model: the report says
    power is not estimable and why, instead of a number or a crash."""
    d = _null_benefit_cohort(60, 5).assign(any_fes_negative=1)
    with pytest.raises((SurvivalDataError, np.linalg.LinAlgError)):
        power_rows(d, "time", "event", "trt*any_fes_negative + x0", "trt:any_fes_negative", 4)
    lines = key_lines({"power": [], "power_not_estimable": "the interaction model cannot be fitted: Singular",
                       "sample_size": [], "benefit": {}})
    assert any("not estimable here (the interaction model cannot be fitted" in line for line in lines)


def test_corrected_benefit_interval_stays_inside_the_metrics_range():
    """A location shift by a large optimism (small trials) would put the corrected c-for-benefit's interval below 0:
    it is cut at the range and says so, never printed as an impossible number."""
    dev = _null_benefit_cohort(120, 5)
    model = EffectModel("x0 + x1 + trt*(x0 + x1)", "time", "event").fit(dev)
    optimism = {f"{k}_12": 0.45 for k in ("c_for_benefit", "e_avg_for_benefit", "e90_for_benefit")}
    out = benefit_appraisal(model, {"optimism": optimism}, dev, "time", "event", "trt", (12.0,), n_boot=20, seed=1)
    metrics = out["12"]["metrics"]
    for m in metrics.values():
        assert all(0.0 <= m[k] <= 1.0 for k in ("corrected", "corrected_lower", "corrected_upper"))
    c = metrics["c_for_benefit"]
    assert c["apparent_lower"] - 0.45 < 0 and c["corrected_lower"] == 0.0 and c["corrected_cut_at_range"]
    assert c["corrected"] == pytest.approx(c["apparent"] - 0.45)
