"""Kaplan–Meier estimates and calibration of predicted risks (Austin, Harrell & van Klaveren, Stat Med 2020)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonimage.survival.cox import fit_cox


def kaplan_meier(time: np.ndarray, event: np.ndarray, weights: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct event times and the Kaplan–Meier survival just after each (``weights``: weighted KM, e.g. IPTW)."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    uniq = np.unique(time[event == 1])
    if uniq.size == 0:
        return np.array([]), np.array([])
    if weights is None:
        at_risk = time.size - np.searchsorted(np.sort(time), uniq, side="left")
        deaths = np.bincount(np.searchsorted(uniq, time[event == 1]), minlength=uniq.size)
    else:
        w = np.asarray(weights, float)
        order = np.argsort(time, kind="stable")
        tail = np.r_[np.cumsum(w[order][::-1])[::-1], 0.0]  # Σ w over rows with time ≥ each sorted time
        at_risk = tail[np.searchsorted(time[order], uniq, side="left")]
        deaths = np.bincount(np.searchsorted(uniq, time[event == 1]), w[event == 1], minlength=uniq.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return uniq, np.cumprod(np.where(at_risk > 0, 1.0 - deaths / np.where(at_risk > 0, at_risk, 1), 1.0))


def km_median(times: np.ndarray, survival: np.ndarray) -> float | None:
    """Median survival of a Kaplan–Meier curve (first time S ≤ 0.5), None when not reached."""
    below = np.flatnonzero(np.asarray(survival) <= 0.5)
    return float(times[below[0]]) if below.size else None


def step_at(times: np.ndarray, values: np.ndarray, t: np.ndarray | float, left: bool = False) -> np.ndarray:
    """A right-continuous step function starting at 1, evaluated at ``t`` (``left``: just before ``t``)."""
    t = np.atleast_1d(np.asarray(t, float))
    idx = np.searchsorted(times, t, side="left" if left else "right") - 1
    return np.where(idx >= 0, np.asarray(values)[np.clip(idx, 0, None)] if len(values) else 1.0, 1.0)


def km_at(time: np.ndarray, event: np.ndarray, t: float, weights: np.ndarray | None = None) -> float:
    """Kaplan–Meier survival at ``t`` (optionally weighted)."""
    return float(step_at(*kaplan_meier(time, event, weights), t)[0])


def rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis (Harrell's ``rcs``): columns x and the k−2 non-linear terms."""
    k = np.asarray(knots, float)
    scale = (k[-1] - k[0]) ** 2
    cols = [x]
    for j in range(len(k) - 2):
        cols.append((np.clip(x - k[j], 0, None) ** 3
                     - np.clip(x - k[-2], 0, None) ** 3 * (k[-1] - k[j]) / (k[-1] - k[-2])
                     + np.clip(x - k[-1], 0, None) ** 3 * (k[-2] - k[j]) / (k[-1] - k[-2])) / scale)
    return np.column_stack(cols)


def flexible_calibration(time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float,
                         n_grid: int = 50) -> dict:
    """Austin 2020: Cox model of the outcome on rcs(cloglog(risk), 3 knots at the 10/50/90th percentiles).

    Returns ICI (mean |observed − predicted|), E50, E90, Emax and a smoothed curve (predicted, observed).
    """
    cll = np.log(-np.log(np.clip(1.0 - np.asarray(risk, float), 1e-12, 1 - 1e-12)))
    knots = np.quantile(cll, [0.1, 0.5, 0.9])
    if np.unique(knots).size < 3:
        return {"ici": float("nan"), "e50": float("nan"), "e90": float("nan"), "emax": float("nan"),
                "curve": {"predicted": [], "observed": [], "reason": "fewer than 3 distinct knots (predicted risks "
                          "tied)"}, "knots": knots.tolist()}
    basis = rcs_basis(cll, knots)
    df = pd.DataFrame({"cll": basis[:, 0], "cll_nl": basis[:, 1], "t": time, "e": event})
    model = fit_cox(df, "t", "e", "cll + cll_nl", source="calibration").model
    observed = model.risk(df, horizon)
    diff = np.abs(observed - risk)
    grid = np.quantile(risk, np.linspace(0.01, 0.99, n_grid))
    g_cll = np.log(-np.log(np.clip(1.0 - grid, 1e-12, 1 - 1e-12)))
    gb = rcs_basis(g_cll, knots)
    grid_obs = model.risk(pd.DataFrame({"cll": gb[:, 0], "cll_nl": gb[:, 1]}), horizon)
    return {"ici": float(diff.mean()), "e50": float(np.median(diff)), "e90": float(np.quantile(diff, 0.9)),
            "emax": float(diff.max()), "curve": {"predicted": grid.tolist(), "observed": grid_obs.tolist()},
            "knots": knots.tolist()}


def calibration_slope(time: np.ndarray, event: np.ndarray, lp: np.ndarray) -> dict:
    """Slope of the linear predictor in a Cox model of the outcome (1 = ideal), with its Wald 95 % CI.

    Undefined (NaN) when the predictions do not vary.
    """
    if np.ptp(lp) == 0:
        return {"estimate": float("nan"), "lower": float("nan"), "upper": float("nan"), "ci": "undefined"}
    df = pd.DataFrame({"lp": lp, "t": time, "e": event})
    s = fit_cox(df, "t", "e", "lp", source="calibration slope").summary.loc["lp"]
    return {"estimate": float(s["coef"]), "lower": float(s["lower"]), "upper": float(s["upper"]),
            "ci": "Wald 95 %"}


def grouped_calibration(time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float,
                        groups: int = 5) -> pd.DataFrame:
    """Mean predicted risk vs Kaplan–Meier observed risk by quantile group of predicted risk."""
    q = pd.qcut(pd.Series(risk).rank(method="first"), groups, labels=False)
    rows = []
    for g in range(groups):
        m = (q == g).to_numpy()
        rows.append({"group": g + 1, "n": int(m.sum()), "predicted": float(np.mean(risk[m])),
                     "observed": 1.0 - km_at(time[m], event[m], horizon)})
    return pd.DataFrame(rows)
