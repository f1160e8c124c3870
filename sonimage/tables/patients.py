"""The patient table: whole-body heterogeneity and burden per patient, from the lesion table
(:mod:`sonimage.tables.lesions`; definitions in shared SCIENCE.md).

Input columns (one row per lesion): ``patient``, ``lesion``, ``organ``, ``fdg_suvmax``, ``fdg_sulmax``,
``fes_suvmax``, ``fes_suvmean``, ``fes_sulmean``, ``volume_ml`` (FDG MTV) and ``fdg_tlg``; SUL columns may be NaN
when the lean body mass is unknown. Written by the feature stage (``features/patients.parquet``) and the synthetic
generator alike; the analyses read it as written and recompute it only at other FES thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NOT_FES_EVALUABLE = ("liver",)  # FES is metabolised in the liver: hot background, lesions not evaluable


@dataclass(frozen=True)
class FesRule:
    """When a lesion counts as FES-positive: SUVmax against ``threshold`` (≥ when ``inclusive``, else >)."""

    threshold: float = 1.5
    inclusive: bool = True

    def positive(self, suvmax: pd.Series) -> pd.Series:
        """Boolean FES positivity of each SUVmax."""
        return suvmax >= self.threshold if self.inclusive else suvmax > self.threshold


def _geomean(x: pd.Series) -> float:
    x = x.dropna()
    return float(np.exp(np.log(x).mean())) if len(x) and (x > 0).all() else float("nan")


def _pattern(n_pos: int, n_eval: int) -> str:
    if n_eval == 0:
        return "not evaluable"
    return "all positive" if n_pos == n_eval else "all negative" if n_pos == 0 else "mixed"


def _one(lesions: pd.DataFrame, rule: FesRule) -> dict[str, float | str | int]:
    # FES-evaluable: outside the liver and measured on a FES scan (a missing FES value is not a negative lesion)
    evaluable = lesions[~lesions.organ.isin(NOT_FES_EVALUABLE) & lesions.fes_suvmax.notna()]
    positive = rule.positive(evaluable.fes_suvmax)
    n_pos, n_eval = int(positive.sum()), len(evaluable)
    top3 = lesions.nlargest(3, "fdg_sulmax") if lesions.fdg_sulmax.notna().any() else lesions.nlargest(3, "fdg_suvmax")
    largest3 = evaluable.nlargest(3, "volume_ml")
    log_fes = np.log(evaluable.fes_suvmax[evaluable.fes_suvmax > 0])
    within = (evaluable.fes_suvmax / evaluable.fes_suvmean).dropna()  # SUVmax/SUVmean per lesion
    return {
        "n_lesions": len(lesions),
        "n_fes_evaluable": n_eval,
        "n_fes_positive": n_pos,
        "fes_positive_fraction": n_pos / len(lesions),  # Boers: all lesions seen on FDG-PET as denominator
        "fes_positive_fraction_evaluable": n_pos / n_eval if n_eval else float("nan"),
        "any_fes_negative": bool(n_eval and n_pos < n_eval),
        "fes_pattern": _pattern(n_pos, n_eval),
        "fdg_sulmax3": _geomean(top3.fdg_sulmax),  # Kurland 2017
        "fdg_suvmax3": _geomean(lesions.nlargest(3, "fdg_suvmax").fdg_suvmax),  # same, in SUV (no lean body mass)
        "fes_sulmean3": _geomean(top3.loc[~top3.organ.isin(NOT_FES_EVALUABLE), "fes_sulmean"]),
        "fes_suvmax_largest3": float(largest3.fes_suvmax.mean()) if len(largest3) else float("nan"),  # ET-FES
        "fes_suvmax_cv": float(evaluable.fes_suvmax.std(ddof=1) / evaluable.fes_suvmax.mean())
        if n_eval > 1 else float("nan"),
        "fes_log_suvmax_sd": float(log_fes.std(ddof=1)) if len(log_fes) > 1 else float("nan"),
        "fes_heterogeneity_index": float(within.median()) if len(within) else float("nan"),  # Liu 2022
        "fdg_suvmax_max": float(lesions.fdg_suvmax.max()),
        "fdg_mtv_ml": float(lesions.volume_ml.sum()),
        "fdg_tlg": float(lesions.fdg_tlg.sum()),
    }


def patient_metrics(lesions: pd.DataFrame, rule: FesRule = FesRule()) -> pd.DataFrame:
    """One row per patient (and cohort, when the lesions have one) with its heterogeneity pattern, FES fractions,
    Kurland and ET-FES summaries and burden."""
    keys = [k for k in ("cohort", "patient") if k in lesions.columns]
    rows = [{**dict(zip(keys, key if isinstance(key, tuple) else (key,))), **_one(g, rule)}
            for key, g in lesions.groupby(keys, sort=True)]
    out = pd.DataFrame(rows)
    out["fes_threshold"] = rule.threshold
    out["fes_threshold_inclusive"] = rule.inclusive
    return out
