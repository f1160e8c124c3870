"""Sensitivity analyses: objectives 1, 2, 4 and 5 re-run under alternative pre-specified choices.

Choices varied (SCIENCE.md): the FES positivity threshold (1.5 / 1.8 / 2.0) and its comparison (≥ vs >), the
delineation method behind every MTV, and the handling of patients without FES data (excluded: complete case,
the primary analysis; or their FES metrics multiply imputed by chained equations, Cox estimates pooled by
Rubin's rules). Each scenario is independent, so scenarios fan out over an executor. Every p-value in the table
is exploratory; the table says how much a conclusion depends on a choice, not whether it holds.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from sonimage.survival.benefit import benefit_metrics, predict_benefit
from sonimage.survival.cox import FIRTH, cox_terms
from sonimage.survival.data import SurvivalDataError
from sonimage.survival.external import harrell_c
from sonimage.survival.imputation import mice, rubin
from sonimage.survival.internal import EffectModel
from sonimage.analysis.objectives import primary_formulas
from sonimage.parallel import Executor, parallel_map
from sonimage.survival.propensity import propensity_weights

FES_METRICS = ("fes_positive_fraction", "any_fes_negative")


@dataclass(frozen=True)
class Scenario:
    """One alternative analysis: FES rule, MTV column of the lesion table, and patients without FES."""

    group: str
    label: str
    threshold: float = 1.5
    inclusive: bool = True
    volume_column: str | None = None  # None: the lesion table's default MTV column
    missing: str = "exclude"  # or "impute" (missing FES metrics and clinical covariates)


def delineation_columns(columns: list[str]) -> list[str]:
    """Per-method MTV columns of a lesion table beside the default ``volume_ml`` / ``fdg_mtv_ml``
    (``fdg_mtv_ml_<method>`` or ``mtv_ml_<method>``)."""
    return [c for c in columns if re.fullmatch(r"(fdg_)?mtv_ml_\w+", c)]


def scenarios(thresholds: tuple[float, ...], volume_columns: list[str], primary: Scenario = Scenario("primary",
              "primary (SUVmax ≥ 1.5, complete case)")) -> list[Scenario]:
    """The primary analysis, then one change at a time: threshold × comparison, delineation, FES handling."""
    out = [primary]
    for thr in thresholds:
        for inclusive in (True, False):
            if (thr, inclusive) != (primary.threshold, primary.inclusive):
                out.append(Scenario("FES threshold", f"SUVmax {'≥' if inclusive else '>'} {thr:g}", thr, inclusive))
    for col in volume_columns:
        out.append(Scenario("delineation", f"MTV from {col}", primary.threshold, primary.inclusive, col))
    out.append(Scenario("missing data", "missing FES metrics and covariates imputed (MICE, Rubin)",
                        primary.threshold, primary.inclusive, None, "impute"))
    return out


@dataclass(frozen=True)
class SensitivitySpec:
    """Column names and models the scenario summary needs (picklable, so scenarios can run on a cluster)."""

    time: str
    event: str
    treatment: str
    clinical: tuple[str, ...]
    effect_formula: str
    penalizers: tuple[float, ...]
    horizon: float
    development: str
    designs: dict
    folds: int = 5
    imputations: int = 5
    seed: int = 0


def _missing(df: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Rows with a missing value (NaN) in any of ``columns`` that the table has."""
    cols = [c for c in columns if c in df]
    return df[cols].isna().any(axis=1).to_numpy() if cols else np.zeros(len(df), bool)


def _lacking_fes(df: pd.DataFrame) -> np.ndarray:
    """Patients without FES data: their FES metrics are missing (NaN), never counted as FES-negative."""
    return _missing(df, FES_METRICS)


def complete_cases(cohorts: dict[str, pd.DataFrame], clinical: tuple[str, ...]
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, int]]]:
    """The primary analysis set: patients with FES metrics and complete clinical covariates (complete case), and
    per cohort how many were left out for each reason."""
    out, counts = {}, {}
    for c, d in cohorts.items():
        no_fes, no_clin = _lacking_fes(d), _missing(d, clinical)
        out[c] = d[~(no_fes | no_clin)].reset_index(drop=True)
        counts[c] = {"without_fes": int(no_fes.sum()), "missing_clinical": int((no_clin & ~no_fes).sum())}
    return out, counts


def _prepare(cohorts: dict[str, pd.DataFrame], spec: SensitivitySpec, scenario: Scenario
             ) -> tuple[list[dict[str, pd.DataFrame]], dict[str, int]]:
    """The cohort tables of each imputation (one copy when excluding) and how many patients lack FES."""
    complete, left_out = complete_cases(cohorts, spec.clinical)
    lacking = {c: sum(k.values()) for c, k in left_out.items()}
    if scenario.missing == "exclude" or not any(lacking.values()):
        return [complete], lacking
    copies: list[dict[str, pd.DataFrame]] = [{} for _ in range(spec.imputations)]
    cols = [*FES_METRICS, *spec.clinical]
    for c, d in cohorts.items():
        d = d.copy()
        d.loc[_lacking_fes(d), list(FES_METRICS)] = np.nan
        d[cols] = d[cols].astype(float)
        imputed = mice(d, cols, spec.time, spec.event, spec.imputations, seed=spec.seed) if lacking[c] else \
            [d] * spec.imputations
        for k, di in enumerate(imputed):
            di = di.copy()
            di["any_fes_negative"] = di["any_fes_negative"].round().astype(int)
            copies[k][c] = di
    return copies, lacking


def _pooled(copies: list[pd.DataFrame], spec: SensitivitySpec, formula: str, term: str, n: int) -> dict:
    """The ``term`` row of ``formula`` (:func:`sonimage.survival.cox.cox_terms`) on the one analysis set, or
    pooled over the imputations by Rubin's rules; not estimable (with the reason) when any imputation is."""
    rows = [cox_terms(c, spec.time, spec.event, formula, [term])[0] for c in copies]
    bad = [r for r in rows if r["coef"] is None]
    if len(rows) == 1 or bad:
        return rows[0] if len(rows) == 1 else \
            {**bad[0], "not_estimable": f"in {len(bad)} of {len(rows)} imputed data sets: {bad[0]['not_estimable']}"}
    r = rubin(np.array([[x["coef"]] for x in rows]), np.array([[x["se"] ** 2] for x in rows]), n)
    firth = sum(x["method"] == FIRTH for x in rows)
    return {"term": term, "coef": float(r["coef"][0]), "se": float(r["se"][0]), "hr": float(np.exp(r["coef"][0])),
            "lower": float(np.exp(r["lower"][0])), "upper": float(np.exp(r["upper"][0])), "p": float(r["p"][0]),
            "method": f"Rubin's rules over {len(rows)} imputations" + (f" (Firth in {firth}: separation)"
                                                                      if firth else "")}


def scenario_summary(scenario: Scenario, cohorts: dict[str, pd.DataFrame], spec: SensitivitySpec) -> dict:
    """Objectives 1, 2, 4 and 5 under one scenario (point estimates; no bootstrap). Objectives 1 and 2 use the
    primary models (:func:`sonimage.analysis.objectives.primary_formulas`), so the primary scenario repeats the
    primary results exactly."""
    copies, lacking = _prepare(cohorts, spec, scenario)
    dev0 = copies[0][spec.development]
    clinical = " + ".join(spec.clinical)
    row: dict = {"group": scenario.group, "scenario": scenario.label, "n": int(len(dev0)),
                 "events": int(dev0[spec.event].sum()), "incomplete": lacking[spec.development],
                 "share_mixed": float((dev0["fes_pattern"] == "mixed").mean()) if "fes_pattern" in dev0 else None}
    formulas = primary_formulas(spec.clinical, spec.treatment)
    devs = [c[spec.development] for c in copies]
    row["o1"] = _pooled(devs, spec, formulas["objective1"], "any_fes_negative", len(dev0))
    row["o2"] = _pooled(devs, spec, formulas["objective2"], f"{spec.treatment}:any_fes_negative", len(dev0))
    if "fdg_mtv_ml" in dev0:  # FDG burden: the objective-1 metric that depends on the delineation method
        burden = [d.assign(log_fdg_mtv=np.log(d["fdg_mtv_ml"].clip(lower=0.01))) for d in devs]
        row["o1_mtv"] = _pooled(burden, spec, f"log_fdg_mtv + {clinical} + {spec.treatment}", "log_fdg_mtv",
                                len(dev0))
    o4, o5 = [], {c: [] for c in cohorts if c != spec.development}
    pipe = EffectModel(spec.effect_formula, spec.time, spec.event, spec.penalizers, "interactions", spec.folds,
                       spec.seed)
    for copy in copies:
        dev = copy[spec.development]
        try:
            model = pipe.fit(dev)
        except (SurvivalDataError, np.linalg.LinAlgError):  # too few patients or events: NaN in this row
            o4.append((np.nan, np.nan, np.nan))
            for c in o5:
                o5[c].append((np.nan, np.nan))
            continue
        t, e = dev[spec.time].to_numpy(float), dev[spec.event].to_numpy(int)
        arm = dev[spec.treatment].to_numpy()
        ben = predict_benefit(model, dev, spec.treatment, [spec.horizon])[f"benefit_{spec.horizon:g}"].to_numpy()
        o4.append((harrell_c(t, e, model.linear_predictor(dev)),
                   benefit_metrics(t, e, arm == 1, arm == 0, ben, spec.horizon)["c_for_benefit"],
                   model.settings["penalizer"]))
        for c in o5:
            d = copy[c]
            tc, ec = d[spec.time].to_numpy(float), d[spec.event].to_numpy(int)
            cfb = np.nan
            if spec.designs.get(c) != "single-arm" and d[spec.treatment].nunique() == 2:
                w = None
                if spec.designs.get(c) == "observational":
                    w = propensity_weights(d, spec.treatment, list(spec.clinical), "overlap", c)[1]
                bc = predict_benefit(model, d, spec.treatment, [spec.horizon])[f"benefit_{spec.horizon:g}"]
                ac = d[spec.treatment].to_numpy()
                cfb = benefit_metrics(tc, ec, ac == 1, ac == 0, bc.to_numpy(), spec.horizon, w)["c_for_benefit"]
            o5[c].append((harrell_c(tc, ec, model.linear_predictor(d)), cfb))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m4 = np.nanmean(np.array(o4, float), axis=0)
        row["o4"] = {"harrell_c": float(m4[0]), "c_for_benefit": float(m4[1]), "penalizer": float(m4[2])}
        row["o5"] = {c: {"harrell_c": float(np.nanmean([v[0] for v in vals])),
                         "c_for_benefit": float(np.nanmean([v[1] for v in vals]))} for c, vals in o5.items()}
    return row


def run_sensitivity(build: Callable[[Scenario], dict[str, pd.DataFrame]], scenario_list: list[Scenario],
                    spec: SensitivitySpec, executor: Executor | None = None) -> list[dict]:
    """One summary row per scenario; ``build`` makes the per-cohort patient tables of a scenario (here, so only
    tables travel to the executor)."""
    built = [(s, build(s)) for s in scenario_list]
    return parallel_map(_summary_item, built, executor, spec)


def _summary_item(item: tuple[Scenario, dict[str, pd.DataFrame]], spec: SensitivitySpec) -> dict:
    scenario, cohorts = item
    try:
        return scenario_summary(scenario, cohorts, spec)
    except (ValueError, np.linalg.LinAlgError) as exc:  # too few patients (a small cohort): said, not raised
        dev = cohorts[spec.development]
        return {"group": scenario.group, "scenario": scenario.label, "n": int(len(dev)),
                "events": int(dev[spec.event].sum()), "not_estimable": str(exc)}
