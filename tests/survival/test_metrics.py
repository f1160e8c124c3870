"""Validation metrics against independent implementations (lifelines, scikit-survival) and known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_rossi
from sksurv.metrics import brier_score
from sksurv.util import Surv

from sonimage.survival.calibration import flexible_calibration, kaplan_meier, rcs_basis
from sonimage.survival.cox import fit_cox
from sonimage.survival.decision import net_benefit
from sonimage.survival.external import harrell_c, ipcw_brier, point_metrics, validate
from sonimage.synth.tables import simulate_cohort_tables


@pytest.fixture(scope="module")
def sim():
    p = simulate_cohort_tables("impact", 600, seed=9).patients
    m = fit_cox(p, "pfs1_months", "pfs1_event", "age + ecog + visceral + cdk46i*fes_positive_fraction").model
    # PFS1 lies on the 12-week visit grid, so events and censorings tie; censoring is placed just after the events
    # of its visit (the usual convention), where the IPCW conventions of scikit-survival and ours coincide
    t = p["pfs1_months"].to_numpy() + np.where(p["pfs1_event"].to_numpy() == 1, 0.0, 1e-6)
    return t, p["pfs1_event"].to_numpy(), m.linear_predictor(p), m.risk(p, 12.0)


def test_kaplan_meier_matches_lifelines():
    r = load_rossi()
    t, s = kaplan_meier(r["week"].to_numpy(), r["arrest"].to_numpy())
    km = KaplanMeierFitter().fit(r["week"], r["arrest"]).survival_function_.iloc[:, 0]
    np.testing.assert_allclose(s, km.loc[t].to_numpy(), atol=1e-12)


def test_ipcw_brier_matches_scikit_survival(sim):
    t, e, _, risk = sim
    y = Surv.from_arrays(e.astype(bool), t)
    _, ref = brier_score(y, y, (1 - risk)[:, None], [12.0])
    assert ipcw_brier(t, e, 1 - risk, 12.0) == pytest.approx(float(ref[0]), abs=1e-6)


def test_flexible_calibration_detects_miscalibration(sim):
    t, e, _, risk = sim
    good = flexible_calibration(t, e, risk, 12.0)
    bad = flexible_calibration(t, e, np.clip(risk * 1.6, 0, 0.999), 12.0)
    assert good["ici"] < 0.03 < bad["ici"] and bad["e90"] > bad["e50"]
    basis = rcs_basis(np.linspace(-3, 3, 50), np.array([-1.0, 0.0, 1.0]))
    beyond = basis[np.linspace(-3, 3, 50) > 1.0, 1]
    assert np.allclose(np.diff(beyond, 2), 0, atol=1e-9)  # linear beyond the last knot (restricted)


def test_flexible_calibration_without_distinct_knots_says_why(sim):
    t, e, _, risk = sim
    tied = flexible_calibration(t, e, np.where(risk > np.quantile(risk, 0.05), 0.4, risk), 12.0)
    assert np.isnan(tied["ici"]) and tied["curve"]["predicted"] == [] and "knots" in tied["curve"]["reason"]


def test_point_metrics_ranges_and_null_model(sim):
    t, e, lp, risk = sim
    m = point_metrics(t, e, lp, risk, 12.0)
    assert 0.6 < m["harrell_c"] < 0.8 and 0.6 < m["uno_c"] < 0.85 and 0.6 < m["auc"] < 0.9
    assert m["ipa"] > 0 and m["oe_ratio"] == pytest.approx(1.0, abs=0.1)
    flat = point_metrics(t, e, np.zeros_like(lp), np.full_like(risk, risk.mean()), 12.0)
    assert flat["harrell_c"] == pytest.approx(0.5) and abs(flat["ipa"]) < 0.02


def test_harrell_c_without_a_comparable_pair_is_nan_and_the_bootstrap_goes_on():
    # all censored, or one event at the latest time: no admissible pair (lifelines raises ZeroDivisionError)
    assert np.isnan(harrell_c(np.array([1.0, 2, 3]), np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3])))
    assert np.isnan(harrell_c(np.array([1.0, 2, 3]), np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3])))
    # a small validation cohort (10 patients, as the quick demo's) whose resamples include some with no comparable
    # pair: validation completes, each metric from the resamples where it is defined
    p = simulate_cohort_tables("impact", 600, seed=9).patients
    model = fit_cox(p, "pfs1_months", "pfs1_event", "age + ecog").model
    small = pd.concat([p[p.pfs1_event == 0].head(8), p[p.pfs1_event == 1].head(2)])  # ~1 in 9 resamples: no event
    out = validate(model, small, "pfs1_months", "pfs1_event", 12.0, n_boot=200, seed=1)
    assert out["settings"]["bootstrap_used"] <= 200 and out["settings"]["n"] == 10
    assert 0 <= out["harrell_c"]["estimate"] <= 1
    assert all(k in out for k in ("harrell_c", "uno_c", "brier"))


def test_net_benefit_of_acting_on_all_and_none():
    t = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    e = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    nb = net_benefit(t, e, np.linspace(0.1, 0.9, 8), horizon=4.5, thresholds=(0.2, 0.5))
    # 4 of 8 progress by 4.5 (KM risk 0.5): acting on all gives 0.5 - 0.5 * pt / (1 - pt)
    assert nb["treat_all"] == pytest.approx([0.5 - 0.5 * 0.25, 0.0])
    assert nb["treat_none"] == [0.0, 0.0] and len(nb["model"]) == 2
    assert pd.Series(nb["model"]).notna().all()
