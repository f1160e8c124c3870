"""Decision curves for a risk of the event by a horizon (Vickers et al. 2008, time-to-event version)."""

from __future__ import annotations

import numpy as np

from sonimage.survival.calibration import km_at

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.81, 0.05), 2))


def net_benefit(time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float,
                thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS) -> dict:
    """Net benefit of acting on predicted risk ≥ threshold, of acting on all, and of none (0).

    The true-positive and false-positive rates among those flagged come from the Kaplan–Meier risk by the
    horizon, so censored patients count as observed (Vickers, Cronin, Elkin & Gonen, BMC Med Inform 2008).
    """
    time, event, risk = (np.asarray(a, float) for a in (time, event, risk))
    n = risk.size
    all_risk = 1.0 - km_at(time, event, horizon)
    model, treat_all = [], []
    for pt in thresholds:
        w = pt / (1.0 - pt)
        flagged = risk >= pt
        p = flagged.mean()
        if flagged.sum() == 0:
            model.append(0.0)
        else:
            r = 1.0 - km_at(time[flagged], event[flagged], horizon)
            model.append(float(r * p - (1.0 - r) * p * w))
        treat_all.append(float(all_risk - (1.0 - all_risk) * w))
    return {"thresholds": [float(t) for t in thresholds], "model": model, "treat_all": treat_all,
            "treat_none": [0.0] * len(thresholds), "horizon": float(horizon), "n": int(n)}
