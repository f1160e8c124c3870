"""Published reference: the Rossi recidivism Cox model, against R's coxph (Efron ties).

Reference values: R survival::coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio,
data = Rossi), as printed by summary() in J. Fox & S. Weisberg, "Cox Proportional-Hazards Regression for Survival
Data in R" (appendix to An R Companion to Applied Regression), and reproduced with the same digits in public
R course notes (carData::Rossi; there race and mar are factors with the opposite reference level, so their signs
flip): coef / se(coef) as below, "Concordance= 0.64 (se = 0.027)", "Likelihood ratio test= 33.27 on 7 df".
R prints the concordance to two decimals only, so it is checked at that precision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from sonimage.survival.cox import FrozenCox, fit_cox

R_COXPH = {  # term: (coef, se)
    "fin": (-0.37942, 0.19138), "age": (-0.05744, 0.02200), "race": (0.31390, 0.30799),
    "wexp": (-0.14980, 0.21222), "mar": (-0.43370, 0.38187), "paro": (-0.08487, 0.19576),
    "prio": (0.09150, 0.02865),
}
FORMULA = "fin + age + race + wexp + mar + paro + prio"


@pytest.fixture(scope="module")
def rossi_fit():
    return fit_cox(load_rossi(), "week", "arrest", FORMULA, source="rossi")


def test_coefficients_and_standard_errors_match_r(rossi_fit):
    for term, (coef, se) in R_COXPH.items():
        assert rossi_fit.summary.loc[term, "coef"] == pytest.approx(coef, abs=1e-4), term
        assert rossi_fit.summary.loc[term, "se"] == pytest.approx(se, abs=1e-4), term


def test_concordance_and_likelihood_ratio_match_r(rossi_fit):
    assert round(rossi_fit.concordance, 2) == 0.64
    null_ll = fit_cox(load_rossi().assign(z=np.arange(432.0)), "week", "arrest", "z", penalizer=1e6).log_likelihood
    assert 2 * (rossi_fit.log_likelihood - null_ll) == pytest.approx(33.27, abs=0.01)


def test_concordance_agrees_with_an_independent_implementation_to_1e4(rossi_fit):
    # R prints only 0.64; lifelines' concordance_index is a separate implementation of Harrell's C with R's
    # tie conventions, so the fourth decimal is checked against it.
    from lifelines.utils import concordance_index

    rossi = load_rossi()
    lp = rossi_fit.model.linear_predictor(rossi)
    assert rossi_fit.concordance == pytest.approx(concordance_index(rossi.week, -lp, rossi.arrest), abs=1e-4)


def test_frozen_model_round_trip(tmp_path, rossi_fit):
    path = rossi_fit.model.save(tmp_path / "rossi.json")
    loaded = FrozenCox.load(path)
    rossi = load_rossi()
    np.testing.assert_allclose(loaded.survival(rossi, [10, 30, 52]), rossi_fit.model.survival(rossi, [10, 30, 52]))
    assert loaded.sonimage_version and loaded.settings["ties"] == "efron"
    # survival at the covariate means reproduces the Breslow baseline of lifelines (same convention)
    from lifelines import CoxPHFitter
    cph = CoxPHFitter(baseline_estimation_method="breslow").fit(rossi, "week", "arrest")
    mean_row = pd.DataFrame([rossi.drop(columns=["week", "arrest"]).mean()])
    np.testing.assert_allclose(loaded.survival(mean_row, [52.0])[0, 0],
                               cph.predict_survival_function(mean_row, times=[52.0]).iloc[0, 0], atol=1e-6)
