"""The patient table: whole-body heterogeneity and burden per patient, from the lesion table
(:mod:`sonimage.tables.lesions`; definitions in shared SCIENCE.md).

Input columns (one row per lesion): ``patient``, ``lesion``, ``organ``, ``fdg_suvmax``, ``fdg_sulmax``,
``fes_suvmax``, ``fes_suvmean``, ``fes_sulmean``, ``volume_ml`` (FDG MTV) and ``fdg_tlg``; SUL columns may be NaN
when the lean body mass is unknown. Optional: ``fes_evaluable`` and ``fes_not_evaluable_reason`` per lesion (the
FES reading of :mod:`sonimage.lesions.fes_reading`); without them a lesion is FES-evaluable when it is outside the
liver and has a FES value; and the reading's ``fes_rc``, ``fes_background_median`` and ``fes_background_p95``,
with which a call can be indeterminate (:func:`fes_calls`). Written by the feature stage (``features/patients.parquet``) and the
synthetic generator alike; the analyses read it as written and recompute it only at other FES thresholds.

Missing FES is not negative FES: a patient without any determinate FES call (no FES scan, failed or poor
registration, only non-evaluable or indeterminate lesions) gets NaN FES metrics, a null ``any_fes_negative``, the pattern
"not evaluable" and a ``fes_missing_reason``; analyses then decide explicitly (:func:`fes_complete_case`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonimage.settings import FesRuleSettings
from sonimage.tables.lesions import FES_CALLS

NOT_FES_EVALUABLE = ("liver",)  # FES is metabolised in the liver: hot background, lesions not evaluable
# Reasons that hold for every lesion of a patient: they become the patient's ``fes_missing_reason`` as they are.
PATIENT_REASONS = ("no FES scan", "registration failed", "registration below quality threshold")
NO_EVALUABLE_LESION = "no FES-evaluable lesion"
ONLY_INDETERMINATE = "only indeterminate FES calls (lesions too small, or spill-in from a neighbour)"
FES_METRICS = ("fes_positive_fraction", "fes_positive_fraction_evaluable", "any_fes_negative")


CALLS = FES_CALLS
COUNT_COLUMNS = ("n_lesions", "n_fes_evaluable", "n_fes_determinate", "n_fes_positive", "n_fes_negative",
                 "n_fes_indeterminate", "fes_evaluable", "fes_positive_fraction", "fes_positive_fraction_evaluable",
                 "any_fes_negative", "fes_pattern")  # :func:`call_counts`, in the patient table's column order
READ_COLUMNS = ("fes_rc", "fes_background_median", "fes_background_p95")  # what a detectability call needs
TOO_SMALL = "too small: an ER-positive lesion of this size would not read positive on this background"
NOT_FOCAL = "no focal uptake above local background"
NEIGHBOUR_SPILL = "spill-in from a neighbouring lesion"


def fes_calls(lesions: pd.DataFrame, rule: FesRuleSettings = FesRuleSettings()) -> pd.DataFrame:
    """``fes_call`` (one of :data:`CALLS`) and ``fes_call_reason`` per lesion by ``rule``, vectorised: its FES
    ``statistic`` against ``threshold``, focal uptake for a positive call, a detectable lesion for a negative one.

    - ``not evaluable``: the reading's evaluability (:func:`lesion_evaluability`), its reason kept;
    - ``positive``: the statistic reaches the threshold and the lesion's SUVmax is focal uptake above its local
      background (above the background's 95th percentile: SNMMI/EANM procedure standard, Ulaner et al., J Nucl
      Med 2024;65:221: FES-positive is focal uptake greater than local background);
    - ``negative``: not positive, and an ER-positive lesion of its size would have read positive on its
      background: background + RC(d) × (``reference_positive_suv`` − background) reaches the threshold, RC(d)
      the recovery coefficient of the lesion's diameter at the scan's resolution
      (:func:`sonimage.lesions.fes_reading.recovery_coefficient`); with ``suvmax_pvc`` the recovery is
      corrected for, so every evaluable lesion qualifies;
    - ``indeterminate``: otherwise: "too small ..." below the threshold, or "no focal uptake above local
      background" when the lesion reaches the threshold but is no hotter than its surroundings (neither called
      positive nor, since it reached the threshold, negative), or "spill-in from a neighbouring lesion" when it
      reads positive only by the SUV its neighbours spill into its maximum voxel (``fes_lesion_spill_in_suv``:
      the statistic less that spill-in below the threshold; :func:`sonimage.lesions.fes_reading.lesion_spill_in`, the
      geometric transfer matrix of Rousset et al., J Nucl Med 1998;39:904).

    Tables without the reading's detectability columns (:data:`READ_COLUMNS`; e.g. the synthetic truth's true
    values) have no partial volume to allow for: every evaluable lesion is called on its uptake alone.
    """
    evaluable, reason = lesion_evaluability(lesions)
    above = rule.positive(lesions).fillna(False).astype(bool)
    if all(c in lesions for c in READ_COLUMNS):
        b = lesions["fes_background_median"].astype(float)
        focal = ~(lesions["fes_suvmax"] <= lesions["fes_background_p95"])  # unknown background: not held against
        expected = b + lesions["fes_rc"].astype(float) * (rule.reference_positive_suv - b)
        detectable = rule.reads_positive(expected).fillna(False).astype(bool)
        if rule.statistic == "suvmax_pvc":
            detectable = pd.Series(bool(rule.reads_positive(rule.reference_positive_suv)), index=lesions.index)
    else:
        focal = detectable = pd.Series(True, index=lesions.index)
    spill = lesions.get("fes_lesion_spill_in_suv", pd.Series(0.0, index=lesions.index)).fillna(0.0)
    own = rule.reads_positive(lesions[f"fes_{rule.statistic}"] - spill).fillna(False).astype(bool)
    positive = evaluable & above & focal & own
    negative = evaluable & ~above & detectable
    call = np.select([~evaluable, positive, negative], ["not evaluable", "positive", "negative"], "indeterminate")
    why = np.select([~evaluable, positive | negative, above & focal, above],
                    [reason.to_numpy(dtype=object), "", NEIGHBOUR_SPILL, NOT_FOCAL], TOO_SMALL)
    return pd.DataFrame({"fes_call": call, "fes_call_reason": why}, index=lesions.index)


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


def _geomean(x: np.ndarray) -> float:
    """Geometric mean of the non-NaN values, NaN when there are none or one is not positive."""
    x = x[~np.isnan(x)]
    return float(np.exp(np.log(x).sum() / len(x))) if len(x) and (x > 0).all() else float("nan")


def _top(values: np.ndarray, n: int = 3) -> np.ndarray:
    """Positions of the ``n`` largest ``values`` as ``DataFrame.nlargest(n, keep="first")`` picks them: largest
    first, ties in order, then NaN ones in order while fewer than ``n`` are known."""
    missing = np.isnan(values)
    ok = np.flatnonzero(~missing)
    return np.concatenate([ok[np.argsort(-values[ok], kind="stable")], np.flatnonzero(missing)])[:n]


def _nan_mean(x: np.ndarray) -> float:
    """``Series.mean()``: the non-NaN values' sum (NaN counted as 0, in place) over their count."""
    count = int((~np.isnan(x)).sum())
    return float(np.where(np.isnan(x), 0.0, x).sum() / count) if count else float("nan")


def _nan_std(x: np.ndarray) -> float:
    """``Series.std(ddof=1)`` as pandas computes it (two passes, NaN counted as 0 in place); NaN below 2 values."""
    missing = np.isnan(x)
    count = int((~missing).sum())
    if count < 2:
        return float("nan")
    filled = np.where(missing, 0.0, x)
    squares = np.where(missing, 0.0, (filled.sum() / count - filled) ** 2)
    return float(np.sqrt(squares.sum() / (count - 1)))


def _one(c: dict[str, np.ndarray], flags: np.ndarray) -> dict[str, float]:
    """One patient's summaries that do not depend on the FES threshold, from its lesions' columns ``c`` (in table
    order) and ``flags``: its lesions not called "not evaluable", which no threshold changes. The same values, bit
    for bit, as the pandas expressions they stand for (``nlargest``, ``mean``, ``std``), 1/50 of their time."""
    sul = c["fdg_sulmax"]
    top3 = _top(sul) if (~np.isnan(sul)).any() else _top(c["fdg_suvmax"])
    fes = c["fes_suvmax"][flags]
    largest3 = _top(c["volume_ml"][flags])
    log_fes = np.log(fes[fes > 0])
    within = fes / c["fes_suvmean"][flags]  # SUVmax/SUVmean per lesion
    within = within[~np.isnan(within)]
    suvmax = c["fdg_suvmax"]
    return {
        "fdg_sulmax3": _geomean(sul[top3]),  # Kurland 2017
        "fdg_suvmax3": _geomean(suvmax[_top(suvmax)]),  # same, in SUV (no lean body mass)
        "fes_sulmean3": _geomean(c["fes_sulmean"][top3[flags[top3]]]),
        "fes_suvmax_largest3": _nan_mean(fes[largest3]),  # ET-FES
        "fes_suvmax_cv": float(np.float64(_nan_std(fes)) / _nan_mean(fes)) if len(fes) > 1 else float("nan"),
        "fes_log_suvmax_sd": _nan_std(log_fes) if len(log_fes) > 1 else float("nan"),
        "fes_heterogeneity_index": float(np.median(within)) if len(within) else float("nan"),  # Liu 2022
        "fdg_suvmax_max": float(suvmax[~np.isnan(suvmax)].max()) if (~np.isnan(suvmax)).any() else float("nan"),
        "fdg_mtv_ml": float(np.where(np.isnan(c["volume_ml"]), 0.0, c["volume_ml"]).sum()),
        "fdg_tlg": float(np.where(np.isnan(c["fdg_tlg"]), 0.0, c["fdg_tlg"]).sum()),
    }


SUMMARY_INPUTS = ("fdg_sulmax", "fdg_suvmax", "fes_suvmax", "fes_suvmean", "fes_sulmean", "volume_ml", "fdg_tlg")
SUMMARY_COLUMNS = ("fdg_sulmax3", "fdg_suvmax3", "fes_sulmean3", "fes_suvmax_largest3", "fes_suvmax_cv",
                   "fes_log_suvmax_sd", "fes_heterogeneity_index", "fdg_suvmax_max", "fdg_mtv_ml", "fdg_tlg")


def call_counts(patients: pd.DataFrame | pd.Series, calls: pd.Series) -> pd.DataFrame:
    """Per patient (the distinct rows of ``patients``: one or more key columns, one row per lesion), what its
    lesions' FES ``calls`` (one of :data:`CALLS` each) give, vectorised: ``n_lesions``, ``n_fes_evaluable``
    (determinate or indeterminate), ``n_fes_determinate``, ``n_fes_positive``, ``n_fes_negative``,
    ``n_fes_indeterminate``, ``fes_evaluable`` (≥ 1 determinate call), ``fes_positive_fraction`` (Boers: over all
    lesions seen, less the indeterminate ones, whose status is unknown, not negative),
    ``fes_positive_fraction_evaluable`` (over the determinate ones), ``any_fes_negative`` and ``fes_pattern`` (all
    positive / mixed / all negative over the determinate ones). Without a determinate call: NaN fractions, a null
    any-negative and the pattern "not evaluable" (missing FES is not negative FES)."""
    keys = patients.to_frame() if isinstance(patients, pd.Series) else patients
    calls = pd.Series(np.asarray(calls, dtype=object), index=keys.index)
    flags = keys.assign(_ev=(calls != "not evaluable").to_numpy(), _pos=(calls == "positive").to_numpy(),
                        _neg=(calls == "negative").to_numpy())
    g = flags.groupby(list(keys.columns), sort=True)
    n, ev, pos, neg = g.size(), g["_ev"].sum(), g["_pos"].sum(), g["_neg"].sum()
    det = pos + neg
    has = det > 0
    return pd.DataFrame({
        "n_lesions": n, "n_fes_evaluable": ev, "n_fes_determinate": det, "n_fes_positive": pos,
        "n_fes_negative": neg, "n_fes_indeterminate": ev - det, "fes_evaluable": has,
        "fes_positive_fraction": (pos / (n - ev + det)).where(has),
        "fes_positive_fraction_evaluable": (pos / det.where(has)).where(has),
        "any_fes_negative": (neg > 0).astype("boolean").where(has, pd.NA),
        "fes_pattern": np.select([~has, pos == det, pos == 0], ["not evaluable", "all positive", "all negative"],
                                 "mixed"),
    }, index=n.index).astype({k: int for k in ("n_lesions", "n_fes_evaluable", "n_fes_determinate",
                                                "n_fes_positive", "n_fes_negative", "n_fes_indeterminate")})


def patient_summaries(lesions: pd.DataFrame, flags: pd.Series) -> pd.DataFrame:
    """Per patient (keys, sorted), the metrics of :func:`patient_metrics` that no FES threshold changes (Kurland
    and ET-FES summaries, dispersion, burden), given ``flags``: the lesions not called "not evaluable". Computed
    once, they serve every threshold of a sensitivity analysis (``summaries``). Each patient's lesions are cut
    from NumPy columns sorted once by patient (in table order within one), not from per-patient DataFrames."""
    keys = [k for k in ("cohort", "patient") if k in lesions.columns]
    grouped = lesions.groupby(keys, sort=True)
    ids = grouped.ngroup().fillna(-1).to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    order = order[ids[order] >= 0]  # rows without a key belong to no patient (as in groupby)
    bounds = np.searchsorted(ids[order], np.arange(grouped.ngroups + 1))
    columns = {name: lesions[name].to_numpy(dtype=float, na_value=np.nan)[order] for name in SUMMARY_INPUTS}
    ev = flags.to_numpy(dtype=bool)[order]
    rows = [_one({name: col[a:b] for name, col in columns.items()}, ev[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    first = order[bounds[:-1]]
    head = pd.DataFrame({k: lesions[k].to_numpy(dtype=object)[first] for k in keys})
    return pd.concat([head, pd.DataFrame(rows, index=head.index, columns=list(SUMMARY_COLUMNS))], axis=1)


def _missing_reasons(group: np.ndarray, flags: np.ndarray, reasons: np.ndarray, n_det: np.ndarray) -> list:
    """Per patient (``group``: each lesion's patient number), why it has no determinate FES call (None when it
    has one): only indeterminate calls, else the shared reason of its not-evaluable lesions."""
    out: list = [None] * len(n_det)
    for g in np.flatnonzero(n_det == 0):
        mine = group == g
        out[g] = ONLY_INDETERMINATE if flags[mine].any() else missing_reason(pd.Series(reasons[mine & ~flags]))
    return out


def patient_metrics(lesions: pd.DataFrame, rule: FesRuleSettings = FesRuleSettings(),
                    calls: pd.Series | None = None, summaries: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per patient (and cohort, when the lesions have one) with its heterogeneity pattern, FES fractions,
    Kurland and ET-FES summaries and burden.

    The FES calls are made by ``rule`` (:func:`fes_calls`), or are ``calls`` when given (one of :data:`CALLS`
    per lesion, on ``lesions``' index: e.g. the synthetic truth's ER class). The counts, fractions, pattern and
    any-FES-negative are :func:`call_counts`': only determinate lesions (positive or negative) count;
    any-FES-negative needs at least one determinate negative, and a patient without a determinate call has NaN/NA
    FES metrics with a ``fes_missing_reason``. Indeterminate lesions
    are counted (``n_fes_indeterminate``); the quantitative FES summaries (ET-FES, dispersion) use every
    FES-evaluable lesion. ``summaries``: :func:`patient_summaries` of these lesions, when already computed."""
    keys = [k for k in ("cohort", "patient") if k in lesions.columns]
    if calls is None:
        called = fes_calls(lesions, rule)
    else:
        if not calls.isin(CALLS).all():
            raise ValueError(f"FES calls must be one of {', '.join(CALLS)}")
        called = pd.DataFrame({"fes_call": calls, "fes_call_reason": lesion_evaluability(lesions)[1]})
    counts = call_counts(lesions[keys], called["fes_call"]).reset_index()
    flags = called["fes_call"] != "not evaluable"
    rest = patient_summaries(lesions, flags) if summaries is None else summaries
    missing = _missing_reasons(lesions.groupby(keys, sort=True).ngroup().to_numpy(), flags.to_numpy(),
                               called["fes_call_reason"].to_numpy(), counts["n_fes_determinate"].to_numpy())
    out = pd.concat([counts[[*keys, *COUNT_COLUMNS[:7]]], pd.DataFrame({"fes_missing_reason": missing}),
                     counts[list(COUNT_COLUMNS[7:])], rest.drop(columns=keys)], axis=1)
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
