"""Riley minimum sample size against pmsampsize's published test values; multiplicity adjustments against R."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sonimage.cli import main
from sonimage.survival.multiplicity import adjust_family, benjamini_hochberg, holm
from sonimage.survival.samplesize import _risk_margin, r2_cs_from_c, survival_sample_size

# cran/pmsampsize tests/testthat/test_surv.R (version with unrounded max R2): inputs (R2cs, parameters, rate,
# timepoint, meanfup) -> sample sizes of criteria 1, 2, 3, final and the final EPP.
PMSAMPSIZE_SURV = [
    ((0.051, 25, 0.065, 2, 2.07), (4286, 866, 4286, 4286), 23.07),
    ((0.065, 25, 0.065, 2, 2.07), (3335, 859, 3335, 3335), 17.95),
    ((0.051, 50, 0.065, 2, 2.07), (8572, 1731, 8572, 8572), 23.07),
    ((0.051, 25, 0.1, 2, 2.07), (4286, 731, 4286, 4286), 35.49),
    ((0.051, 25, 0.065, 4, 2.07), (4286, 866, 4286, 4286), 23.07),
    ((0.051, 25, 0.065, 2, 4), (4286, 679, 4286, 4286), 44.57),
    ((0.06, 40, 0.08, 3, 5), (5798, 969, 5798, 5798), 57.98),
    ((0.03, 10, 0.09, 3, 3), (2950, 272, 2950, 2950), 79.65),
    ((0.3, 80, 0.03, 1, 5), (1974, 2272, 2272, 2272), 4.26),
]


@pytest.mark.parametrize("inputs,sizes,epp", PMSAMPSIZE_SURV)
def test_pmsampsize_reference_values(inputs, sizes, epp):
    r = survival_sample_size(*inputs)
    assert (r.n_shrinkage, r.n_optimism, r.n_pmsampsize, r.n_final) == sizes
    assert round(r.epp_final, 2) == epp


def test_precise_overall_risk_binds_for_a_small_study():
    """With few parameters and a high event rate, the ±0.05 margin on the 12-month risk is what sets n."""
    r = survival_sample_size(0.25, 3, rate=0.04, timepoint=12, meanfup=20)
    assert r.n_precise_risk > r.n_pmsampsize and r.n_final == r.n_precise_risk
    assert _risk_margin(r.n_final, 0.04, 12, 20) <= 0.05 < _risk_margin(r.n_final - 1, 0.04, 12, 20)
    lo, est, hi = r.risk_ci_at_final
    assert lo < est < hi and hi - est <= 0.05


def test_c_statistic_conversion_and_errors():
    assert r2_cs_from_c(0.5001, 0.7) == pytest.approx(0, abs=1e-6)
    assert 0 < r2_cs_from_c(0.65, 0.5) < r2_cs_from_c(0.65, 0.8) < r2_cs_from_c(0.75, 0.8) < 1
    with pytest.raises(ValueError, match="exceeds its maximum"):
        survival_sample_size(0.85, 10, rate=0.001, timepoint=1, meanfup=1)


def test_cli_samplesize(tmp_path, capsys):
    out = tmp_path / "ss.json"
    assert main(["model", "samplesize", "--r2", "0.051", "--parameters", "25", "--rate", "0.065",
                 "--timepoint", "2", "--meanfup", "2.07", "--available", "100", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_final"] == 4286 and res["available"] == 100
    assert "below the minimum" in capsys.readouterr().out


def test_holm_and_bh_match_r_p_adjust():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.030 0.060 0.060 0.020; "BH" = 0.02 0.04 0.04 0.02
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm(p)[4]) and np.isnan(benjamini_hochberg(p)[4])
    rows = adjust_family([{"term": "a", "p": 0.01}, {"term": "b", "p": 0.04}], primary="a")
    assert [r["role"] for r in rows] == ["primary", "exploratory"] and rows[1]["p_holm"] == pytest.approx(0.04)
