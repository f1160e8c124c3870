"""Firth's penalised Cox likelihood (Heinze & Schemper 2001), checked on its defining properties: the modified
score is the gradient of l(β) + ½ log|I(β)|, estimates stay finite under complete separation where the ordinary
fit diverges, the profile-likelihood bounds sit where the penalised likelihood falls by χ²₁(0.95)/2, and the
penalty's effect vanishes as n grows. ``cox_terms`` picks Firth only under separation and says "not estimable"
with the reason where no estimate exists."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sonimage.survival.cox import (CHI2_95, FIRTH, WALD, _Breslow, _firth_maximise, cox_terms, efron_newton,
                                   firth_cox, partial_log_likelihood)
from sonimage.survival.data import SurvivalDataError


def _data(n: int, seed: int, separate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous times (no ties), a binary and a continuous covariate; ``separate``: no event when x1 = 1."""
    rng = np.random.default_rng(seed)
    x = np.c_[rng.integers(0, 2, n), rng.normal(size=n)].astype(float)
    t = rng.exponential(np.exp(-(0.7 * x[:, 0] - 0.4 * x[:, 1])))
    e = (rng.random(n) < 0.75).astype(int)
    if separate:
        e[x[:, 0] == 1] = 0
    return x, t, e


def _penalised(rs: _Breslow, beta: np.ndarray) -> float:
    ll, _, info, _ = rs.evaluate(beta, third=False)
    return ll + 0.5 * np.linalg.slogdet(info)[1]


def test_modified_score_is_the_gradient_of_the_penalised_likelihood():
    x, t, e = _data(80, 1)
    rs = _Breslow(x, t, e)
    beta = np.array([0.3, -0.5])
    ll, score, info, dinfo = rs.evaluate(beta)
    ustar = score + 0.5 * np.einsum("ij,jir->r", np.linalg.inv(info), dinfo)
    h = 1e-5
    numeric = [(_penalised(rs, beta + h * d) - _penalised(rs, beta - h * d)) / (2 * h) for d in np.eye(2)]
    np.testing.assert_allclose(ustar, numeric, rtol=1e-6, atol=1e-7)
    # without ties, Breslow's log partial likelihood is the one every Cox program computes
    assert ll == pytest.approx(partial_log_likelihood(t, e, (x - x.mean(0)) @ beta), rel=1e-12)


def test_finite_under_complete_separation_where_the_ordinary_fit_diverges():
    x, t, e = _data(60, 0, separate=True)
    ordinary = efron_newton(x, t, e)[0]
    assert ordinary[0] < -15  # monotone likelihood: the ordinary estimate runs off
    beta, terms = firth_cox(x, t, e)
    assert np.all(np.isfinite(beta)) and -6 < beta[0] < -1
    f = terms[0]
    assert all(math.isfinite(v) for v in (f.lower, f.upper, f.se, f.p)) and f.lower < f.coef < f.upper < 0
    # the profile bounds are where the penalised likelihood has fallen by χ²₁(0.95)/2
    rs = _Breslow(x, t, e)
    top = _firth_maximise(rs, np.zeros(2), np.ones(2, bool), 1e-10, 100, 0.5)[1]
    for bound in (f.lower, f.upper):
        fixed = _firth_maximise(rs, np.array([bound, 0.0]), np.array([False, True]), 1e-10, 100, 0.5)[1]
        assert 2 * (top - fixed) == pytest.approx(CHI2_95, abs=1e-3)
    # the estimate is a stationary point of the penalised likelihood
    h = 1e-5
    grad = [(_penalised(rs, beta + h * d) - _penalised(rs, beta - h * d)) / (2 * h) for d in np.eye(2)]
    np.testing.assert_allclose(grad, 0, atol=1e-4)


def test_agrees_with_ordinary_cox_as_n_grows():
    gaps = []
    for n in (60, 2000):
        x, t, e = _data(n, 2)
        gaps.append(np.abs(firth_cox(x, t, e, profile=[])[0] - efron_newton(x, t, e)[0]).max())
    assert gaps[1] < 0.01 and gaps[1] < gaps[0] / 5  # the penalty's bias correction is O(1/n)


def test_cox_terms_chooses_the_method_and_names_what_cannot_be_estimated():
    x, t, e = _data(60, 0)
    df = pd.DataFrame({"t": t, "e": e, "x1": x[:, 0], "x2": x[:, 1]})
    ordinary = cox_terms(df, "t", "e", "x1 + x2")
    assert [r["method"] for r in ordinary] == [WALD, WALD]
    sep = df.assign(e=np.where(df.x1 == 1, 0, df.e))
    rows = cox_terms(sep, "t", "e", "x1 + x2", ["x1"])
    assert rows[0]["method"] == FIRTH and all(math.isfinite(rows[0][k]) for k in ("hr", "lower", "upper", "p"))
    assert rows[0]["upper"] < 1
    const = cox_terms(df.assign(x1=1.0), "t", "e", "x1 + x2", ["x1"])[0]
    assert const["hr"] is None and "does not vary" in const["not_estimable"]
    collinear = cox_terms(df.assign(x3=2 * df.x2 + 1), "t", "e", "x1 + x2 + x3", ["x2"])[0]
    assert collinear["hr"] is None and "collinear" in collinear["not_estimable"]


@pytest.mark.parametrize("p", [1, 3])
def test_risk_set_moments_match_a_direct_sum_over_each_risk_set(p):
    """The one-pass moments (distinct products, block sums) equal the textbook sums over each risk set, ties
    included (Breslow: d events at a time share its risk set)."""
    rng = np.random.default_rng(p)
    x = rng.normal(size=(25, p))
    t = rng.integers(1, 9, 25).astype(float)  # many ties
    e = (rng.random(25) < 0.7).astype(int)
    beta = rng.normal(size=p) * 0.5
    ll, score, info, dinfo = _Breslow(x, t, e).evaluate(beta)
    xc = x - x.mean(0)
    want_ll, want_score, want_info, want_dinfo = 0.0, np.zeros(p), np.zeros((p, p)), np.zeros((p, p, p))
    for u in np.unique(t[e == 1]):
        d = np.sum((t == u) & (e == 1))
        w = np.exp(xc[t >= u] @ beta)
        xs = xc[t >= u]
        m1 = w @ xs / w.sum()
        c = xs - m1
        want_ll += np.sum(xc[(t == u) & (e == 1)] @ beta) - d * np.log(w.sum())
        want_score += xc[(t == u) & (e == 1)].sum(0) - d * m1
        want_info += d * np.einsum("i,ij,ik->jk", w, c, c) / w.sum()
        want_dinfo += d * np.einsum("i,ij,ik,ir->jkr", w, c, c, c) / w.sum()
    assert ll == pytest.approx(want_ll, rel=1e-12)
    np.testing.assert_allclose(score, want_score, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(info, want_info, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dinfo, want_dinfo, rtol=1e-9, atol=1e-12)


def test_no_event_is_a_clear_error():
    with pytest.raises(SurvivalDataError, match="no event"):
        firth_cox(np.arange(6.0)[:, None], np.arange(1.0, 7.0), np.zeros(6, int))
