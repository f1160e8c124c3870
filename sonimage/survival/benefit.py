"""Individual benefit of treatment from a frozen model, and how well benefit is predicted where both arms exist.

Benefit is the predicted PFS probability under treatment minus under control (positive = treatment helps),
and the difference in restricted mean survival time up to the largest horizon.

How well benefit is predicted (PATH statement, Kent et al. 2020):

- c-for-benefit (van Klaveren et al., J Clin Epidemiol 2018): treated and control patients are matched 1:1 on
  the rank of predicted benefit; a pair's observed benefit is (event by the horizon under control) − (event
  under treatment) ∈ {−1, 0, 1}, its predicted benefit the pair's mean. Censoring before the horizon is handled
  by inverse probability of censoring weighting (IPCW; as Uno's C and the IPCW Brier score): a pair whose two
  outcomes are known is weighted 1 / (Ĝ(t₁ ∧ h⁻) Ĝ(t₂ ∧ h⁻)), Ĝ the Kaplan–Meier of censoring, so pairs with a
  patient censored before the horizon are not silently dropped (that over-represents early events).
- E-for-benefit (Maas et al., BMC Med Res Methodol 2023): a weighted local-linear smooth of observed on
  predicted pair benefit; Eavg / E90 are the mean / 90th centile of |smooth − predicted|. The smooth is the
  calibration-of-benefit curve.
- Calibration of benefit by quantile groups of predicted benefit: KM(treated) − KM(control) at the horizon per
  group (weighted KM when ``weights``, e.g. propensity weights in an observational cohort), bootstrap CIs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonimage.survival.calibration import kaplan_meier, km_at, step_at
from sonimage.survival.cox import FrozenCox
from sonimage.survival.data import SurvivalDataError, check_columns, survival_outcome


def _rmst(model: FrozenCox, df: pd.DataFrame, tau: float, source: str) -> np.ndarray:
    """Restricted mean survival time up to ``tau`` of each row (area under the predicted step curve)."""
    knots = np.array([0.0, *[t for t in model.baseline_time if t < tau], tau])
    surv = model.survival(df, knots[:-1], source)
    return surv @ np.diff(knots)


def predict_benefit(model: FrozenCox, df: pd.DataFrame, treatment: str, horizons: list[float],
                    control: float = 0, treated: float = 1, source: str = "data") -> pd.DataFrame:
    """Per row: survival at each horizon under control and treatment, their difference, and the RMST difference."""
    if treatment not in model.design.variables:
        raise SurvivalDataError(f"the model has no term in {treatment!r} (terms {list(model.terms)}): "
                                "it cannot predict a treatment benefit")
    check_columns(df, [v for v in model.design.variables if v != treatment], source)
    arms = {"control": df.assign(**{treatment: control}), "treated": df.assign(**{treatment: treated})}
    out = pd.DataFrame(index=df.index)
    for h in horizons:
        for arm, d in arms.items():
            out[f"pfs_{arm}_{h:g}"] = model.survival(d, h, source)[:, 0]
        out[f"benefit_{h:g}"] = out[f"pfs_treated_{h:g}"] - out[f"pfs_control_{h:g}"]
    tau = max(horizons)
    rm = {arm: _rmst(model, d, tau, source) for arm, d in arms.items()}
    out[f"rmst_control_{tau:g}"], out[f"rmst_treated_{tau:g}"] = rm["control"], rm["treated"]
    out[f"rmst_benefit_{tau:g}"] = rm["treated"] - rm["control"]
    return out


def ipcw_known(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Event by the horizon (0/1) and the IPCW weight of each row: 1/Ĝ(t⁻) for an event by the horizon, 1/Ĝ(h)
    for a row followed beyond it, 0 when censored before the horizon (status unknown)."""
    g_t, g_s = kaplan_meier(time, 1 - event)
    died = (time <= horizon) & (event == 1)
    alive = time > horizon
    w = np.zeros(time.size)
    w[died] = 1.0 / step_at(g_t, g_s, time[died], left=True)
    w[alive] = 1.0 / step_at(g_t, g_s, horizon)[0]
    return died.astype(float), w


def _rank_pick(idx: np.ndarray, m: int) -> np.ndarray:
    """``m`` rows spread evenly over ``idx`` (sorted by predicted benefit): 1:1 matching on benefit rank."""
    return idx[np.round(np.linspace(0, idx.size - 1, m)).astype(int)]


def benefit_pairs(time: np.ndarray, event: np.ndarray, treated_mask: np.ndarray, control_mask: np.ndarray,
                  benefit: np.ndarray, horizon: float, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Matched pairs: predicted pair benefit, observed pair benefit and the pair's weight (IPCW × ``weights``).

    Matching uses every patient (censored ones too); pairs with an unknown outcome get weight 0.
    """
    y, w = ipcw_known(time, event, horizon)
    if weights is not None:
        w = w * np.asarray(weights, float)
    tr, co = np.flatnonzero(treated_mask), np.flatnonzero(control_mask)
    m = min(tr.size, co.size)
    if m == 0:
        return {"predicted": np.array([]), "observed": np.array([]), "weight": np.array([])}
    tr = _rank_pick(tr[np.argsort(benefit[tr], kind="stable")], m)
    co = _rank_pick(co[np.argsort(benefit[co], kind="stable")], m)
    return {"predicted": (benefit[tr] + benefit[co]) / 2.0, "observed": y[co] - y[tr], "weight": w[tr] * w[co]}


def weighted_pair_concordance(pred: np.ndarray, obs: np.ndarray, w: np.ndarray) -> float:
    """Σ wᵢwⱼ·[concordant + ½ tie in prediction] / Σ wᵢwⱼ over pairs of pairs with obsᵢ > obsⱼ."""
    usable = (obs[:, None] > obs[None, :]) & (w[:, None] * w[None, :] > 0)
    if not usable.any():
        return float("nan")
    dp = pred[:, None] - pred[None, :]
    ww = (w[:, None] * w[None, :])[usable]
    return float(np.sum(ww * ((dp > 0) + 0.5 * (dp == 0))[usable]) / ww.sum())


def c_for_benefit(time: np.ndarray, event: np.ndarray, treated_mask: np.ndarray, control_mask: np.ndarray,
                  benefit: np.ndarray, horizon: float, weights: np.ndarray | None = None) -> tuple[float, int]:
    """IPCW c-for-benefit and the number of pairs with a known outcome (see the module docstring)."""
    p = benefit_pairs(time, event, treated_mask, control_mask, benefit, horizon, weights)
    known = int((p["weight"] > 0).sum())
    if known < 2:
        return float("nan"), known
    return weighted_pair_concordance(p["predicted"], p["observed"], p["weight"]), known


def local_linear(x: np.ndarray, y: np.ndarray, w: np.ndarray, at: np.ndarray, span: float = 0.75) -> np.ndarray:
    """Weighted local-linear regression of ``y`` on ``x`` evaluated at ``at`` (tricube kernel, nearest-neighbour
    bandwidth covering ``span`` of the points, as loess with degree 1)."""
    keep = w > 0
    x, y, w = x[keep], y[keep], w[keep]
    out = np.full(np.size(at), np.nan)
    if x.size < 3 or np.ptp(x) == 0:
        return out
    k = max(3, int(np.ceil(span * x.size)))
    for i, a in enumerate(np.atleast_1d(at)):
        d = np.abs(x - a)
        h = max(np.sort(d)[k - 1], 1e-12) * 1.000001
        kw = w * np.clip(1 - (d / h) ** 3, 0, None) ** 3
        sw = kw.sum()
        mx = (kw * x).sum() / sw
        sxx = (kw * (x - mx) ** 2).sum()
        my = (kw * y).sum() / sw
        slope = (kw * (x - mx) * (y - my)).sum() / sxx if sxx > 1e-12 else 0.0
        out[i] = my + slope * (a - mx)
    return out


def benefit_metrics(time: np.ndarray, event: np.ndarray, treated_mask: np.ndarray, control_mask: np.ndarray,
                    benefit: np.ndarray, horizon: float, weights: np.ndarray | None = None) -> dict[str, float]:
    """c-for-benefit, Eavg- and E90-for-benefit and the number of pairs with a known outcome."""
    p = benefit_pairs(time, event, treated_mask, control_mask, benefit, horizon, weights)
    known = p["weight"] > 0
    if known.sum() < 2:
        return {"c_for_benefit": float("nan"), "e_avg_for_benefit": float("nan"),
                "e90_for_benefit": float("nan"), "known_pairs": int(known.sum())}
    smooth = local_linear(p["predicted"], p["observed"], p["weight"], p["predicted"][known])
    err = np.abs(smooth - p["predicted"][known])
    ok = np.isfinite(err)
    wk = p["weight"][known][ok]
    return {"c_for_benefit": weighted_pair_concordance(p["predicted"], p["observed"], p["weight"]),
            "e_avg_for_benefit": float(np.sum(wk * err[ok]) / wk.sum()) if ok.any() else float("nan"),
            "e90_for_benefit": float(np.quantile(err[ok], 0.9)) if ok.any() else float("nan"),
            "known_pairs": int(known.sum())}


BENEFIT_METRICS = ("c_for_benefit", "e_avg_for_benefit", "e90_for_benefit")
BENEFIT_RANGE = (0.0, 1.0)  # each metric's range: a concordance, or an absolute difference of two probabilities


def _group_benefit(time: np.ndarray, event: np.ndarray, arm_t: np.ndarray, arm_c: np.ndarray, group: np.ndarray,
                   groups: int, horizon: float, weights: np.ndarray | None) -> np.ndarray:
    """Observed benefit per group: KM(treated) − KM(control) at the horizon (NaN when an arm is empty)."""
    out = np.full(groups, np.nan)
    for g in range(groups):
        a, c = (group == g) & arm_t, (group == g) & arm_c
        if a.any() and c.any():
            wa = None if weights is None else weights[a]
            wc = None if weights is None else weights[c]
            out[g] = km_at(time[a], event[a], horizon, wa) - km_at(time[c], event[c], horizon, wc)
    return out


def benefit_validation(model: FrozenCox, df: pd.DataFrame, time: str, event: str, treatment: str, horizon: float,
                       control: float = 0, treated: float = 1, groups: int = 3, source: str = "data",
                       n_boot: int = 200, seed: int = 0, weights: np.ndarray | None = None,
                       weights_note: str = "none (randomised)") -> dict:
    """c-for-benefit, E-for-benefit and calibration of benefit by groups of predicted benefit (observed =
    KM(treated) − KM(control)), each with a percentile bootstrap 95 % CI, and the smoothed calibration curve.

    ``weights`` (e.g. propensity-score weights for an observational cohort) enter every observed benefit; they
    are held fixed over bootstrap resamples. Where the data hold one arm only, nothing is estimated and the
    reason says why.
    """
    t, e = survival_outcome(df, time, event, source)
    check_columns(df, [treatment], source)
    arm = df[treatment].to_numpy(float)
    present = sorted(set(arm.tolist()))
    if not ({control, treated} <= set(present)):
        return {"estimable": False,
                "reason": f"{source} has one arm only ({treatment} = {present}): observed benefit needs patients "
                          f"under both {treatment} = {control} and {treatment} = {treated}, so c-for-benefit and "
                          "calibration of benefit are not estimable"}
    ben = predict_benefit(model, df, treatment, [horizon], control, treated, source)[f"benefit_{horizon:g}"]
    ben = ben.to_numpy()
    w = None if weights is None else np.asarray(weights, float)
    is_t, is_c = arm == treated, arm == control
    est = benefit_metrics(t, e, is_t, is_c, ben, horizon, w)
    q = pd.qcut(pd.Series(ben).rank(method="first"), groups, labels=False).to_numpy()
    obs_groups = _group_benefit(t, e, is_t, is_c, q, groups, horizon, w)
    boot_m, boot_g = [], []
    for b in range(n_boot):
        i = np.random.default_rng([seed, b]).integers(0, t.size, t.size)
        wi = None if w is None else w[i]
        boot_m.append(benefit_metrics(t[i], e[i], is_t[i], is_c[i], ben[i], horizon, wi))
        boot_g.append(_group_benefit(t[i], e[i], is_t[i], is_c[i], q[i], groups, horizon, wi))
    metrics = {}
    for k in BENEFIT_METRICS:
        metrics[k] = {"estimate": est[k], **_percentile_ci([r[k] for r in boot_m], n_boot)}
    boot_g = np.array(boot_g).reshape(-1, groups)
    rows = []
    for g in range(groups):
        in_g = q == g
        rows.append({"group": g + 1, "n_treated": int((in_g & is_t).sum()), "n_control": int((in_g & is_c).sum()),
                     "predicted_benefit": float(ben[in_g].mean()), "observed_benefit": float(obs_groups[g]),
                     **_percentile_ci(boot_g[:, g], n_boot)})
    pairs = benefit_pairs(t, e, is_t, is_c, ben, horizon, w)
    grid = np.quantile(ben, np.linspace(0.05, 0.95, 19))
    curve = local_linear(pairs["predicted"], pairs["observed"], pairs["weight"], grid)
    return {"estimable": True, **metrics, "matched_pairs": int(pairs["weight"].size),
            "known_pairs": est["known_pairs"], "horizon": float(horizon), "calibration_of_benefit": rows,
            "smoothed_curve": {"predicted": grid.tolist(), "observed": curve.tolist()},
            "weights": weights_note, "bootstrap_replicates": int(n_boot),
            "method": "pairs matched 1:1 on rank of predicted benefit; outcome = event by the horizon; IPCW for "
                      "censoring before the horizon (van Klaveren 2018; Uno 2011); E-for-benefit from a weighted "
                      "local-linear smooth (Maas 2023); observed benefit per group = KM(treated) - KM(control) at "
                      "the horizon; percentile bootstrap 95 % CIs"}


def _percentile_ci(values, n_boot: int) -> dict[str, float]:
    """Percentile 95 % interval, NaN when fewer than half the replicates (at least 10) gave a value."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < max(10, n_boot // 2):
        return {"lower": float("nan"), "upper": float("nan")}
    lo, hi = np.quantile(v, [0.025, 0.975])
    return {"lower": float(lo), "upper": float(hi)}
