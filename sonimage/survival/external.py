"""External validation of a frozen Cox model (McLernon et al., Ann Intern Med 2023), with bootstrap CIs.

Conventions follow R (survival, riskRegression): censoring distributions for Uno's C, the time-dependent AUC
and the IPCW Brier score are Kaplan–Meier estimates on the *validation* data; the IPA's null model is the
Kaplan–Meier of the validation data; flexible calibration is Austin et al. (2020).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines.utils import concordance_index
from sksurv.metrics import concordance_index_ipcw, cumulative_dynamic_auc
from sksurv.util import Surv

from sonimage.parallel import Executor, chunks, parallel_map
from sonimage.survival.calibration import (calibration_slope, flexible_calibration, kaplan_meier, km_at,
                                           step_at)
from sonimage.survival.cox import FrozenCox
from sonimage.survival.data import survival_outcome
from sonimage.survival.decision import net_benefit

METRICS = ("harrell_c", "uno_c", "auc", "oe_ratio", "calibration_slope", "ici", "e50", "e90", "brier", "ipa")


def harrell_c(time: np.ndarray, event: np.ndarray, lp: np.ndarray) -> float:
    """Harrell's C: higher linear predictor, earlier event (ties in the predictor count one half); NaN when no pair
    is comparable (no event before another patient's time, e.g. a bootstrap resample of a small cohort whose events
    were all left out), where lifelines raises ``ZeroDivisionError``."""
    try:
        return float(concordance_index(time, -lp, event))
    except ZeroDivisionError:
        return float("nan")


def ipcw_brier(time: np.ndarray, event: np.ndarray, surv: np.ndarray, horizon: float) -> float:
    """Brier score at ``horizon`` with inverse probability of censoring weights (Graf et al. 1999)."""
    g_times, g_surv = kaplan_meier(time, 1 - event)
    died = (time <= horizon) & (event == 1)
    alive = time > horizon
    g_died = step_at(g_times, g_surv, time, left=True)
    g_h = step_at(g_times, g_surv, horizon)[0]
    res = np.zeros_like(surv)
    res[died] = surv[died] ** 2 / g_died[died]
    res[alive] = (1.0 - surv[alive]) ** 2 / g_h
    return float(res.mean())


def point_metrics(time: np.ndarray, event: np.ndarray, lp: np.ndarray, risk: np.ndarray, horizon: float) -> dict:
    """All scalar validation metrics at ``horizon`` (NaN where one is not computable on these data)."""
    y = Surv.from_arrays(event.astype(bool), time)
    out: dict[str, float] = {"harrell_c": harrell_c(time, event, lp)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out["uno_c"] = float(concordance_index_ipcw(y, y, lp, tau=horizon)[0])
        except ValueError:
            out["uno_c"] = float("nan")
        try:
            out["auc"] = float(cumulative_dynamic_auc(y, y, lp, [horizon])[0][0])
        except ValueError:
            out["auc"] = float("nan")
    km_risk = 1.0 - km_at(time, event, horizon)
    out["oe_ratio"] = float(km_risk / risk.mean())
    out["calibration_slope"] = calibration_slope(time, event, lp)["estimate"]
    flex = flexible_calibration(time, event, risk, horizon)
    out.update(ici=flex["ici"], e50=flex["e50"], e90=flex["e90"])
    out["brier"] = ipcw_brier(time, event, 1.0 - risk, horizon)
    null = ipcw_brier(time, event, np.full_like(risk, 1.0 - km_risk), horizon)
    out["ipa"] = float(1.0 - out["brier"] / null) if null > 0 else float("nan")
    return out


def _bootstrap_chunk(replicates: range, time: np.ndarray, event: np.ndarray, lp: np.ndarray, risk: np.ndarray,
                     horizon: float, seed: int) -> list[dict]:
    out = []
    for b in replicates:
        idx = np.random.default_rng([seed, b]).integers(0, time.size, time.size)
        try:
            out.append(point_metrics(time[idx], event[idx], lp[idx], risk[idx], horizon))
        except ValueError:  # a degenerate resample (e.g. no events): skipped, counted below
            continue
    return out


def validate(model: FrozenCox, df: pd.DataFrame, time: str, event: str, horizon: float, n_boot: int = 200,
             seed: int = 0, executor: Executor | None = None, source: str = "validation data",
             thresholds: tuple[float, ...] | None = None) -> dict:
    """Validation metrics of ``model`` on ``df`` at ``horizon``, each with a percentile bootstrap 95 % CI.

    The model is applied as frozen (no refit). ``executor`` spreads bootstrap replicates (stdlib or Dask).
    """
    t, e = survival_outcome(df, time, event, source)
    if horizon <= 0:
        raise ValueError(f"horizon must be positive, got {horizon}")
    lp = model.linear_predictor(df, source)
    risk = model.risk(df, horizon, source)
    est = point_metrics(t, e, lp, risk, horizon)
    reps = [r for part in parallel_map(_bootstrap_chunk, chunks(n_boot, 16), executor, t, e, lp, risk, horizon,
                                       seed) for r in part]
    boot = pd.DataFrame(reps, columns=list(METRICS))
    result: dict = {}
    for k in METRICS:
        vals = boot[k].dropna()
        if len(vals) >= max(10, n_boot // 2):
            lo, hi = np.quantile(vals, [0.025, 0.975])
            result[k] = {"estimate": est[k], "lower": float(lo), "upper": float(hi)}
        else:  # a percentile interval over so few replicates is not worth printing
            result[k] = {"estimate": est[k], "lower": None, "upper": None,
                         "ci_note": f"not estimable: {len(vals)} of {n_boot} bootstrap replicates gave a value"}
    slope = calibration_slope(t, e, lp)
    result["calibration_slope"]["wald_lower"], result["calibration_slope"]["wald_upper"] = \
        slope["lower"], slope["upper"]
    result["net_benefit"] = net_benefit(t, e, risk, horizon, **({"thresholds": thresholds} if thresholds else {}))
    result["calibration_curve"] = flexible_calibration(t, e, risk, horizon)["curve"]
    result["settings"] = {
        "horizon": float(horizon), "n": int(t.size), "events": int(e.sum()),
        "events_by_horizon": int(((t <= horizon) & (e == 1)).sum()), "bootstrap_replicates": int(n_boot),
        "bootstrap_used": int(len(boot)), "ci": "percentile bootstrap 95 % over validation rows, model frozen",
        "censoring_distribution": "Kaplan-Meier on the validation data",
        "ipa_null_model": "Kaplan-Meier of the validation data",
        "flexible_calibration": "Cox on rcs(cloglog(risk), knots at 10/50/90th percentiles) (Austin 2020)",
        "observed_risk": "1 - Kaplan-Meier at the horizon",
    }
    return result
