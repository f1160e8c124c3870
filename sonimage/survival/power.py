"""Simulation-based power of a Cox model term (e.g. treatment × marker) at a cohort's size and follow-up.

Parametric bootstrap from the fitted model (as in Burton et al., Stat Med 2006, "The design of simulation
studies in medical statistics"): each simulated cohort resamples covariate rows (keeping their joint
distribution and the arm ratio), draws event times from the fitted Cox model (Breslow baseline, inverse-transform
on the step cumulative hazard) and censoring times from the cohort's own censoring distribution (reverse
Kaplan–Meier), so the simulated cohorts have the cohort's n and, on average, its event count. The term's
coefficient is the fitted one or a value to plan for (e.g. a ratio of hazard ratios of 2). Power is the share of
simulated cohorts whose Wald test rejects at ``alpha``; its Monte Carlo standard error is √(p(1 − p)/B).
Replicates fan out over any executor (a Dask client, ``concurrent.futures``) in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sonimage.survival.calibration import kaplan_meier
from sonimage.survival.cox import FrozenCox, fit_cox
from sonimage.survival.data import survival_outcome
from sonimage.parallel import Executor, chunks, parallel_map


@dataclass(frozen=True)
class Simulator:
    """Everything needed to draw a cohort like the observed one from a (possibly modified) fitted model."""

    model: FrozenCox
    covariates: pd.DataFrame
    censor_time: np.ndarray
    censor_survival: np.ndarray
    max_follow_up: float

    def draw(self, n: int, rng: np.random.Generator, time: str = "time", event: str = "event") -> pd.DataFrame:
        rows = self.covariates.iloc[rng.integers(0, len(self.covariates), n)].reset_index(drop=True)
        lp = self.model.linear_predictor(rows)
        target = -np.log(rng.random(n)) / np.exp(lp)
        h0, bt = np.asarray(self.model.baseline_cumhaz), np.asarray(self.model.baseline_time)
        k = np.searchsorted(h0, target, side="left")
        t_event = np.where(k < h0.size, bt[np.clip(k, 0, h0.size - 1)], np.inf)
        v = rng.random(n)
        below = self.censor_survival[None, :] <= v[:, None]
        first = np.where(below.any(1), below.argmax(1), -1)
        t_cens = np.where(first >= 0, self.censor_time[np.clip(first, 0, None)], self.max_follow_up)
        observed = np.minimum(t_event, t_cens)
        return rows.assign(**{time: observed, event: (t_event <= t_cens).astype(int)})


def make_simulator(df: pd.DataFrame, time: str, event: str, formula: str, term: str | None = None,
                   log_effect: float | None = None, source: str = "data") -> Simulator:
    """Fit ``formula`` on ``df`` and keep what :meth:`Simulator.draw` needs; ``log_effect`` replaces the fitted
    coefficient of ``term``."""
    t, e = survival_outcome(df, time, event, source)
    model = fit_cox(df, time, event, formula, source=source).model
    if log_effect is not None:
        if term not in model.coefficients:
            raise ValueError(f"{term!r} is not a coefficient of {formula!r} ({list(model.coefficients)})")
        model = replace(model, coefficients={**model.coefficients, term: float(log_effect)})
    ct, cs = kaplan_meier(t, 1 - e)
    return Simulator(model, df[model.design.variables].reset_index(drop=True), ct, cs, float(t.max()))


def _power_chunk(replicates: range, sim: Simulator, n: int, formula: str, term: str, alpha: float, seed: int
                 ) -> list[tuple[float, int]]:
    out = []
    for b in replicates:
        d = sim.draw(n, np.random.default_rng([seed, b]), "_t", "_e")
        try:
            p = float(fit_cox(d, "_t", "_e", formula, source="simulation").summary.loc[term, "p"])
        except ValueError:  # a simulated cohort where a column does not vary or the fit fails
            p = float("nan")
        out.append((p, int(d["_e"].sum())))
    return out


def term_power(df: pd.DataFrame, time: str, event: str, formula: str, term: str, n_sim: int = 500,
               alpha: float = 0.05, log_effect: float | None = None, n: int | None = None, seed: int = 0,
               executor: Executor | None = None, n_chunks: int = 16) -> dict:
    """Power of the Wald test of ``term`` (fitted effect, or ``log_effect``) at ``n`` patients (default: the
    cohort's), with its Monte Carlo SE. A simulated cohort whose fit fails counts as not rejecting."""
    sim = make_simulator(df, time, event, formula, term, log_effect)
    n = int(n or len(df))
    res = [r for part in parallel_map(_power_chunk, chunks(n_sim, n_chunks), executor, sim, n, formula, term,
                                      alpha, seed) for r in part]
    p = np.array([r[0] for r in res])
    reject = np.nan_to_num(p, nan=1.0) < alpha
    power = float(reject.mean())
    return {"term": term, "log_effect": float(sim.model.coefficients[term]),
            "effect_ratio": float(np.exp(sim.model.coefficients[term])),
            "effect_source": "fitted" if log_effect is None else "planned", "n": n, "alpha": alpha,
            "power": power, "mc_se": float(np.sqrt(power * (1 - power) / len(p))), "simulations": int(len(p)),
            "failed_fits": int(np.isnan(p).sum()), "mean_events": float(np.mean([r[1] for r in res])),
            "cohort_events": int(survival_outcome(df, time, event)[1].sum()),
            "method": "parametric bootstrap from the fitted Cox model; covariate rows resampled; censoring from "
                      "the reverse Kaplan-Meier; Wald test"}
