"""The patient table: whole-body heterogeneity and burden per patient, from the lesion table
(:mod:`sonimage.tables.lesions`; definitions in shared SCIENCE.md).

Input columns (one row per lesion): ``patient``, ``lesion``, ``organ``, ``fdg_suvmax``, ``fdg_sulmax``,
``fes_suvmax``, ``fes_suvmean``, ``fes_sulmean``, ``volume_ml`` (FDG MTV) and ``fdg_tlg``; SUL columns may be NaN
when the lean body mass is unknown. Optional: ``fes_evaluable`` and ``fes_not_evaluable_reason`` per lesion (the
FES reading of :mod:`sonimage.lesions.fes_reading`); without them a lesion is FES-evaluable when it is outside the
liver and has a FES value. Written by the feature stage (``features/patients.parquet``) and the
synthetic generator alike; the analyses read it as written and recompute it only at other FES thresholds.

Missing FES is not negative FES: a patient without any FES-evaluable lesion (no FES scan, failed or poor
registration, only non-evaluable lesions) gets NaN FES metrics, a null ``any_fes_negative``, the pattern
"not evaluable" and a ``fes_missing_reason``; analyses then decide explicitly (:func:`fes_complete_case`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NOT_FES_EVALUABLE = ("liver",)  # FES is metabolised in the liver: hot background, lesions not evaluable
# Reasons that hold for every lesion of a patient: they become the patient's ``fes_missing_reason`` as they are.
PATIENT_REASONS = ("no FES scan", "registration failed", "registration below quality threshold")
NO_EVALUABLE_LESION = "no FES-evaluable lesion"
FES_METRICS = ("fes_positive_fraction", "fes_positive_fraction_evaluable", "any_fes_negative")


@dataclass(frozen=True)
class FesRule:
    """When a lesion counts as FES-positive: its FES ``statistic`` against ``threshold`` (≥ when ``inclusive``,
    else >). The published rule is SUVmax ≥ 1.5 (Nienhuis 2018); ``statistic="suvpeak"`` (the IBSI 1 cm³ peak) is a
    sensitivity analysis less sensitive to noise in small, faint lesions."""

    threshold: float = 1.5
    inclusive: bool = True
    statistic: str = "suvmax"

    def __post_init__(self) -> None:
        if self.statistic not in ("suvmax", "suvpeak"):
            raise ValueError(f"FES positivity statistic must be suvmax or suvpeak, got {self.statistic!r}")

    def positive(self, lesions: pd.DataFrame) -> pd.Series:
        """Boolean FES positivity of each lesion (``fes_<statistic>`` column)."""
        value = lesions[f"fes_{self.statistic}"]
        return value >= self.threshold if self.inclusive else value > self.threshold


def _geomean(x: pd.Series) -> float:
    x = x.dropna()
    return float(np.exp(np.log(x).mean())) if len(x) and (x > 0).all() else float("nan")


def _pattern(n_pos: int, n_eval: int) -> str:
    if n_eval == 0:
        return "not evaluable"
    return "all positive" if n_pos == n_eval else "all negative" if n_pos == 0 else "mixed"


def lesion_evaluability(lesions: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(FES-evaluable, reason when not) per lesion: the reading's columns when present, else the organ rule and
    the presence of a FES value."""
    has_value = lesions.fes_suvmax.notna()
    if "fes_evaluable" in lesions:
        evaluable = lesions["fes_evaluable"].fillna(False).astype(bool) & has_value
        given = lesions.get("fes_not_evaluable_reason", pd.Series("", index=lesions.index)).fillna("")
        reason = given.where(given != "", "no FES value")
    else:
        liver = lesions.organ.isin(NOT_FES_EVALUABLE)
        evaluable = ~liver & has_value
        reason = pd.Series(np.where(liver, "liver", "no FES value"), index=lesions.index)
    return evaluable, reason.where(~evaluable, "")


def missing_reason(reasons: pd.Series) -> str:
    """Why a patient has no FES-evaluable lesion: a patient-wide reason when all its lesions share one."""
    shared = set(reasons)
    if len(shared) == 1 and next(iter(shared)) in PATIENT_REASONS:
        return next(iter(shared))
    return NO_EVALUABLE_LESION


def _one(lesions: pd.DataFrame, rule: FesRule) -> dict[str, float | str | int | None]:
    flags, reasons = lesion_evaluability(lesions)
    evaluable = lesions[flags]
    positive = rule.positive(evaluable)
    n_pos, n_eval = int(positive.sum()), len(evaluable)
    top3 = lesions.nlargest(3, "fdg_sulmax") if lesions.fdg_sulmax.notna().any() else lesions.nlargest(3, "fdg_suvmax")
    largest3 = evaluable.nlargest(3, "volume_ml")
    log_fes = np.log(evaluable.fes_suvmax[evaluable.fes_suvmax > 0])
    within = (evaluable.fes_suvmax / evaluable.fes_suvmean).dropna()  # SUVmax/SUVmean per lesion
    return {
        "n_lesions": len(lesions),
        "n_fes_evaluable": n_eval,
        "n_fes_positive": n_pos,
        "fes_evaluable": n_eval > 0,
        "fes_missing_reason": None if n_eval else missing_reason(reasons),
        # Boers: all lesions seen on FDG-PET as denominator; NaN (not 0) without any FES-evaluable lesion
        "fes_positive_fraction": n_pos / len(lesions) if n_eval else float("nan"),
        "fes_positive_fraction_evaluable": n_pos / n_eval if n_eval else float("nan"),
        "any_fes_negative": bool(n_pos < n_eval) if n_eval else None,
        "fes_pattern": _pattern(n_pos, n_eval),
        "fdg_sulmax3": _geomean(top3.fdg_sulmax),  # Kurland 2017
        "fdg_suvmax3": _geomean(lesions.nlargest(3, "fdg_suvmax").fdg_suvmax),  # same, in SUV (no lean body mass)
        "fes_sulmean3": _geomean(top3.loc[flags.reindex(top3.index), "fes_sulmean"]),
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
    out["any_fes_negative"] = out["any_fes_negative"].astype("boolean")  # nullable: NA when not FES-evaluable
    out["fes_missing_reason"] = out["fes_missing_reason"].astype("string")
    out["fes_threshold"] = rule.threshold
    out["fes_threshold_inclusive"] = rule.inclusive
    return out


def fes_complete_case(patients: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Complete-case analysis set for FES metrics: the patients with every FES metric present, and the ones left
    out with their ``fes_missing_reason`` (counted and shown in the report)."""
    cols = [c for c in FES_METRICS if c in patients]
    ok = patients[cols].notna().all(axis=1)
    key = "subject_id" if "subject_id" in patients else "patient"
    reason = patients.get("fes_missing_reason", pd.Series(NO_EVALUABLE_LESION, index=patients.index))
    left = pd.DataFrame({key: patients.loc[~ok, key], "reason": reason[~ok].fillna(NO_EVALUABLE_LESION)})
    return patients[ok].reset_index(drop=True), left.reset_index(drop=True)
