"""The study's analysis as one call: objectives 1–5 on per-cohort tables, returned as a :class:`StudyResult`.

The result holds every number, table and figure's data the report shows; :mod:`sonimage.report.document` only
renders it (HTML, ``metrics.json``, model files, ``benefit.parquet``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sonimage.parallel import Executor
from sonimage.settings import Settings
from sonimage.survival.calibration import flexible_calibration, grouped_calibration, kaplan_meier, km_at, km_median
from sonimage.survival.cox import FrozenCox, cox_terms
from sonimage.survival.data import SurvivalDataError
from sonimage.analysis.appraisal import appraise_study
from sonimage.analysis.objectives import (CLINICAL, EVENT, TIME, TRT, at_fes_threshold, model_table, objective1,
                                          objective2, objective3, objective4, objective5)
from sonimage.analysis.sensitivity import (Scenario, SensitivitySpec, complete_cases, delineation_columns,
                                           scenarios)
from sonimage.tables.patients import fes_complete_case


@dataclass(frozen=True)
class StudyResult:
    """Objectives 1–5 of one run: JSON-ready results per objective, the frozen models, per-patient benefit, Table 1,
    calibration curves per model and cohort, and the observed (KM) risk per cohort at the horizon."""

    settings: Settings
    cohorts: dict[str, pd.DataFrame]
    objective1: dict
    objective2: dict
    objective3: dict
    objective4: dict
    objective5: dict
    models: dict[str, FrozenCox]
    benefit: pd.DataFrame
    table_one: pd.DataFrame
    calibration: dict[str, dict[str, dict]]
    observed_risk: dict[str, float]
    statistics: dict = field(default_factory=dict)  # sample size, power, benefit, sensitivity, multiplicity
    not_fes_evaluable: dict[str, pd.DataFrame] = field(default_factory=dict)  # left out of the analyses, with why
    truth: dict = field(default_factory=dict)  # synthetic study: truth check and image recovery (:func:`truth_check`)

    @property
    def development(self) -> str:
        """The development cohort."""
        return self.settings.study.development


def table_one(cohorts: dict[str, pd.DataFrame], development: str) -> pd.DataFrame:
    """Baseline characteristics: the development cohort by arm and overall, then each other cohort."""
    cols: dict[str, pd.DataFrame] = {}
    for name, df in cohorts.items():
        if name == development:
            for arm, g in df.groupby("arm"):
                cols[f"{name.upper()}: {arm}"] = g
        cols[f"{name.upper()}: all"] = df

    def pct(s: pd.Series) -> str:
        return f"{int(s.sum())} ({100 * s.mean():.0f} %)"

    def med(s: pd.Series, d: int = 0) -> str:
        q = s.quantile([0.25, 0.5, 0.75])
        return f"{q[0.5]:.{d}f} ({q[0.25]:.{d}f}–{q[0.75]:.{d}f})"

    rows = {
        "Patients": lambda d: str(len(d)),
        "Age, years, median (IQR)": lambda d: med(d["age"]),
        "ECOG 0 / 1 / 2": lambda d: " / ".join(str(int((d["ecog"] == k).sum())) for k in (0, 1, 2)),
        "De novo metastatic": lambda d: pct(d["de_novo"]),
        "Prior (neo)adjuvant endocrine therapy": lambda d: pct(d["prior_endocrine"]),
        "Bone-only disease": lambda d: pct(d["bone_only"]),
        "Visceral disease": lambda d: pct(d["visceral"]),
        "First-line CDK4/6 inhibitor": lambda d: pct(d[TRT]),
        "Lesions per patient, median (IQR)": lambda d: med(d["n_lesions"]),
        "FES pattern: all positive": lambda d: pct(d["fes_pattern"] == "all positive"),
        "FES pattern: mixed": lambda d: pct(d["fes_pattern"] == "mixed"),
        "FES pattern: all negative": lambda d: pct(d["fes_pattern"] == "all negative"),
        "No FES-evaluable lesion": lambda d: pct(d["fes_pattern"] == "not evaluable"),
        "FDG SUVmax3, median (IQR)": lambda d: med(d["fdg_suvmax3"], 1),
        "PFS1 events": lambda d: pct(d[EVENT]),
        "Median PFS1, months (KM)": lambda d: _km_median(d),
    }
    return pd.DataFrame({"Characteristic": list(rows),
                         **{c: [f(d) for f in rows.values()] for c, d in cols.items()}})


def _km_median(d: pd.DataFrame) -> str:
    m = km_median(*kaplan_meier(d[TIME].to_numpy(), d[EVENT].to_numpy()))
    return "not reached" if m is None else f"{m:.1f}"


def calibration_curves(models: dict[str, FrozenCox], cohorts: dict[str, pd.DataFrame], o5: dict, development: str,
                       horizon: float) -> dict[str, dict[str, dict]]:
    """Per model, per cohort label: the flexible calibration curve (external: from objective 5; development:
    apparent) with grouped calibration points."""
    out: dict[str, dict[str, dict]] = {}
    for name, m in models.items():
        curves = {}
        for c, d in cohorts.items():
            res = o5[c][name]["calibration_curve"] if c in o5 else None
            risk = m.risk(d, horizon)
            g = grouped_calibration(d[TIME].to_numpy(), d[EVENT].to_numpy(), risk, horizon)
            label = f"{c.upper()} (development)" if c == development else c.upper()
            if res is None:  # development cohort: apparent calibration
                try:
                    res = flexible_calibration(d[TIME].to_numpy(), d[EVENT].to_numpy(), risk, horizon)["curve"]
                except (SurvivalDataError, np.linalg.LinAlgError) as exc:  # a small cohort: no curve, said why
                    res = {"predicted": [], "observed": [], "reason": f"the calibration model did not fit ({exc})"}
            curves[label] = {**res, "grouped": g}
        out[name] = curves
    return out


def truth_check(dev: pd.DataFrame, truth: dict[str, dict], development: str, o1: dict, o2: dict) -> dict:
    """For a synthetic study (``truth``: each cohort's ``truth.json``): the development cohort's generating Cox
    model refitted on the measured data, true beside estimated log-HR per term; the primary results against the
    truth; and each cohort's image recovery (``recovery``, where the generator records it)."""
    if not truth:
        return {}
    out: dict = {"cohorts": sorted(truth), "recovery": {c: t["recovery"] for c, t in truth.items()
                                                        if isinstance(t.get("recovery"), dict)}}
    true = (truth.get(development, {}).get("tables", truth.get(development, {})).get("cox", {}).get("log_hr", {}))
    if not true:
        return out
    terms = [k for k in true if all(v in dev for v in k.split(":"))]
    formula = " + ".join(terms)
    rows = {r["term"]: r for r in cox_terms(dev, TIME, EVENT, formula, source="truth check")} if terms else {}
    out["generating_model"] = {
        "formula": formula, "rows": [{"term": k, "true_log_hr": float(true[k]), **rows.get(k, {})} for k in terms],
        "left_out": sorted(set(true) - set(terms))}
    primary = {"objective1": o1["primary"], "objective2": o2["interaction"]}
    out["primary"] = [{"objective": k, **r, "true_log_hr": true.get(r["term"])} for k, r in primary.items()]
    return out


def analyse(patients: dict[str, pd.DataFrame], lesions: dict[str, pd.DataFrame], settings: Settings | None = None,
            executor: Executor | None = None, truth: dict[str, dict] | None = None) -> StudyResult:
    """Run objectives 1–5. Per cohort, ``patients``: clinical rows joined with the patient table as written
    (:func:`sonimage.tables.clinical.join_patient_table`); ``lesions``: the lesion table (:mod:`sonimage.tables.lesions`)
    with response where known. ``executor`` (stdlib or Dask) spreads the bootstraps. Patients without a
    FES-evaluable lesion are left out (complete case; Table 1 and ``not_fes_evaluable`` show them). ``truth``:
    per cohort, the synthetic generator's ``truth.json`` (a synthetic study; see :func:`truth_check`)."""
    settings = settings or Settings()
    study = settings.study
    development = study.development
    if development not in patients:
        raise ValueError(f"development cohort {development!r} not among {sorted(patients)}")
    missing = set(patients) - set(lesions)
    if missing:
        raise ValueError(f"no lesion table for cohort(s) {sorted(missing)}")
    rule = settings.fes
    primary = Scenario("primary", f"primary (SUVmax {'≥' if rule.inclusive else '>'} {rule.threshold:g}, "
                                  "complete case)", rule.threshold, rule.inclusive)

    caches: dict[str, dict] = {c: {} for c in patients}  # per cohort, what no threshold changes

    def build(s: Scenario) -> dict[str, pd.DataFrame]:
        """Per-cohort tables of a scenario: the patient table as written for the primary rule, else recomputed."""
        if (s.threshold, s.inclusive, s.volume_column) == (rule.threshold, rule.inclusive, None):
            return {c: model_table(p) for c, p in patients.items()}
        return {c: at_fes_threshold(p, lesions[c], s.threshold, s.inclusive, s.volume_column, caches[c])
                for c, p in patients.items()}

    everyone = build(primary)
    cohorts, left_out = complete_cases(everyone, CLINICAL)
    not_fes_evaluable = {c: fes_complete_case(d)[1] for c, d in everyone.items()}  # with why (fes_missing_reason)
    dev = cohorts[development]
    external = {c: d for c, d in cohorts.items() if c != development}
    o1 = objective1(dev, lesions[development], study)
    o2 = objective2(dev)
    o3 = objective3(dev, lesions[development])
    o4, models, benefit = objective4(dev, study, executor)
    o5 = objective5(models, external, study, executor)
    stats = settings.statistics
    sensitivity = None
    if stats.sensitivity:
        spec = SensitivitySpec(TIME, EVENT, TRT, CLINICAL, study.effect_formula, tuple(study.penalizers),
                               study.benefit_horizons[0], development, stats.designs(), study.folds,
                               stats.imputations, study.seed)
        sensitivity = (build, spec, scenarios(tuple(study.fes_thresholds),
                                              delineation_columns(list(lesions[development].columns)), primary))
    appraisal = appraise_study(cohorts, development, models, {n: o4[n]["internal_validation"] for n in models}, o1,
                               o2, o3, {"risk": (study.prognostic_formula, 2), "effect": (study.effect_formula, 0)},
                               sensitivity, stats, tuple(study.benefit_horizons), TIME, EVENT, TRT, CLINICAL,
                               study.seed, executor)
    appraisal["left_out"] = left_out
    h = study.horizon_months
    return StudyResult(settings, cohorts, o1, o2, o3, o4, o5, models, benefit, table_one(everyone, development),
                       calibration_curves(models, cohorts, o5, development, h),
                       {c: 1 - km_at(d[TIME].to_numpy(), d[EVENT].to_numpy(), h) for c, d in cohorts.items()},
                       appraisal, not_fes_evaluable, truth_check(dev, truth or {}, development, o1, o2))
