"""Individual benefit of treatment from a frozen model, and how well benefit is predicted where both arms exist.

Benefit is the predicted PFS probability under treatment minus under control (positive = treatment helps),
and the difference in restricted mean survival time up to the largest horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonimage.survival.calibration import km_at
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


def _c_for_benefit(pred: np.ndarray, obs: np.ndarray) -> float:
    """Concordance of predicted with observed pair benefit over pairs of pairs with unequal observed benefit."""
    dp = pred[:, None] - pred[None, :]
    do = obs[:, None] - obs[None, :]
    usable = do > 0
    if not usable.any():
        return float("nan")
    return float(((dp > 0) + 0.5 * (dp == 0))[usable].mean())


def _rank_pick(idx: np.ndarray, m: int) -> np.ndarray:
    """``m`` rows spread evenly over ``idx`` (sorted by predicted benefit): 1:1 matching on benefit rank."""
    return idx[np.round(np.linspace(0, idx.size - 1, m)).astype(int)]


def c_for_benefit(time: np.ndarray, event: np.ndarray, treated_mask: np.ndarray, control_mask: np.ndarray,
                  benefit: np.ndarray, horizon: float) -> tuple[float, int]:
    """van Klaveren's c-for-benefit on the binary outcome 'event by the horizon' and the number of matched pairs.

    Treated and control rows are matched 1:1 on the rank of predicted benefit; rows censored before the horizon
    have an unknown outcome and are left out.
    """
    known = (time > horizon) | (event == 1)
    y = ((time <= horizon) & (event == 1)).astype(float)
    tr, co = np.flatnonzero(known & treated_mask), np.flatnonzero(known & control_mask)
    m = min(tr.size, co.size)
    if m < 2:
        return float("nan"), m
    tr = _rank_pick(tr[np.argsort(benefit[tr], kind="stable")], m)
    co = _rank_pick(co[np.argsort(benefit[co], kind="stable")], m)
    return _c_for_benefit((benefit[tr] + benefit[co]) / 2.0, y[co] - y[tr]), m


def benefit_validation(model: FrozenCox, df: pd.DataFrame, time: str, event: str, treatment: str, horizon: float,
                       control: float = 0, treated: float = 1, groups: int = 3, source: str = "data",
                       n_boot: int = 200, seed: int = 0) -> dict:
    """c-for-benefit (van Klaveren et al. 2018, percentile bootstrap CI) and calibration of benefit by groups of
    predicted benefit (Kaplan–Meier difference per group).

    Where the data hold one arm only, nothing is estimated and the reason says why.
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
    cfb, m = c_for_benefit(t, e, arm == treated, arm == control, ben, horizon)
    boot = []
    for b in range(n_boot):
        i = np.random.default_rng([seed, b]).integers(0, t.size, t.size)
        boot.append(c_for_benefit(t[i], e[i], arm[i] == treated, arm[i] == control, ben[i], horizon)[0])
    boot = np.array(boot)[np.isfinite(boot)] if n_boot else np.array([])
    lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size >= max(10, n_boot // 2) else (np.nan, np.nan)
    q = pd.qcut(pd.Series(ben).rank(method="first"), groups, labels=False).to_numpy()
    rows = []
    for g in range(groups):
        in_g = q == g
        a, c = in_g & (arm == treated), in_g & (arm == control)
        observed = (km_at(t[a], e[a], horizon) - km_at(t[c], e[c], horizon)) if a.any() and c.any() else np.nan
        rows.append({"group": g + 1, "n_treated": int(a.sum()), "n_control": int(c.sum()),
                     "predicted_benefit": float(ben[in_g].mean()), "observed_benefit": float(observed)})
    return {"estimable": True, "c_for_benefit": {"estimate": cfb, "lower": float(lo), "upper": float(hi)},
            "matched_pairs": int(m), "horizon": float(horizon), "calibration_of_benefit": rows,
            "method": "pairs matched 1:1 on rank of predicted benefit; outcome = event by the horizon (censored "
                      "before it left out); percentile bootstrap CI; observed benefit per group = KM(treated) - "
                      "KM(control) at the horizon"}
