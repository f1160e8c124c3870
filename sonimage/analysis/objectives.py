"""The SONImage study's five analyses on per-cohort patient and lesion tables.

1. PFS1 by heterogeneity (KM, log-rank, uni/multivariable Cox, Schoenfeld PH checks), FES-threshold sensitivity.
2. Treatment × heterogeneity interaction: HR per arm, treatment HR by subgroup (forest plot).
3. Lesion response (RECIST size, PERCIST SULpeak) against baseline lesion uptake: mixed models, patient random effect.
4. Individual benefit of CDK4/6i: PATH risk and effect modelling, bootstrap optimism, per-patient predictions.
5. External validation of the frozen models on the other cohorts (benefit metrics where both arms exist).
Every function returns JSON-serialisable results.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test

from sonimage.parallel import Executor
from sonimage.settings import FesRuleSettings, StudySettings
from sonimage.survival.benefit import predict_benefit
from sonimage.survival.calibration import kaplan_meier, km_median
from sonimage.survival.cox import WALD, FrozenCox, cox_terms, fit_cox
from sonimage.survival.data import SurvivalDataError
from sonimage.survival.external import validate
from sonimage.survival.internal import BenefitSpec, EffectModel, RiskModel, bootstrap_optimism
from sonimage.analysis.lesion_response import lesion_response
from sonimage.tables.patients import fes_complete_case, lesion_evaluability, patient_metrics, patient_summaries
from sonimage.tables.clinical import join_patient_table

TIME, EVENT, TRT = "pfs1_months", "pfs1_event", "cdk46i"
CLINICAL = ("age", "ecog", "de_novo", "visceral", "prior_endocrine")
PATTERNS = ("all positive", "mixed", "all negative")
MIN_GROUP = 5  # smallest group shown in KM curves and tested


def model_table(patients: pd.DataFrame) -> pd.DataFrame:
    """Clinical patients joined with their patient-table row (:func:`sonimage.tables.clinical.join_patient_table`),
    with the models' derived columns: log FDG SUVmax3 and 0/1 indicators."""
    out = patients.copy()
    if "any_fes_negative" in out:  # NaN where the patient is not FES-evaluable (missing is not negative)
        out["any_fes_negative"] = pd.array(out["any_fes_negative"], dtype="boolean").to_numpy(dtype=float,
                                                                                         na_value=np.nan)
    out["log_fdg_suvmax3"] = np.log(out["fdg_suvmax3"])
    for c in ("de_novo", "visceral", "prior_endocrine", "bone_only"):
        if c in out:
            out[c] = out[c].astype(int)
    return out


def at_fes_threshold(patients: pd.DataFrame, lesions: pd.DataFrame, threshold: float, inclusive: bool = True,
                     volume_column: str | None = None, cache: dict | None = None) -> pd.DataFrame:
    """Patients with the patient metrics recomputed from the lesion table at another FES threshold (SUVmax ≥
    threshold, > when not ``inclusive``) and, with ``volume_column``, another delineation's MTV column, through
    the one :func:`sonimage.tables.patients.patient_metrics`. ``cache`` (one dict per lesion table) keeps the
    per-patient summaries no threshold changes (:func:`sonimage.tables.patients.patient_summaries`) across calls."""
    if volume_column is not None:  # the method's own TLG column where the lesion table has one
        tlg = volume_column.replace("mtv_ml", "tlg")
        lesions = lesions.assign(volume_ml=lesions[volume_column],
                                 fdg_tlg=lesions[tlg] if tlg in lesions else np.nan)
    summaries = None
    if cache is not None:
        if volume_column not in cache:
            cache[volume_column] = patient_summaries(lesions, lesion_evaluability(lesions)[0])
        summaries = cache[volume_column]
    rule = FesRuleSettings(threshold, inclusive)
    return model_table(join_patient_table(patients, patient_metrics(lesions, rule, summaries=summaries)))


def km_groups(df: pd.DataFrame, by: str, order: list | None = None) -> dict:
    """KM curves per group (groups below MIN_GROUP left out and named), with the multivariate log-rank test."""
    counts = df[by].value_counts()
    groups = [g for g in (order or sorted(counts.index)) if counts.get(g, 0) >= MIN_GROUP]
    curves = {}
    for g in groups:
        d = df[df[by] == g]
        t, s = kaplan_meier(d[TIME].to_numpy(), d[EVENT].to_numpy())
        curves[str(g)] = {"time": t.tolist(), "survival": s.tolist(), "n": int(len(d)), "events": int(d[EVENT].sum()),
                          "median": km_median(t, s), "follow_up": d[TIME].round(3).tolist()}
    used = df[df[by].isin(groups)]
    p = (float(multivariate_logrank_test(used[TIME], used[by], used[EVENT]).p_value) if len(groups) > 1
         else None)
    return {"by": by, "curves": curves, "logrank_p": p,
            "left_out": {str(g): int(n) for g, n in counts.items() if g not in groups}}


def primary_formulas(clinical: tuple[str, ...] = CLINICAL, treatment: str = TRT) -> dict[str, str]:
    """The pre-specified primary Cox models of objectives 1 and 2 (the same in the objective, the multiplicity
    family and the sensitivity analyses): any FES-negative lesion adjusted for the clinical covariates and
    treatment; and treatment × any FES-negative lesion, adjusted for the clinical covariates."""
    clin = " + ".join(clinical)
    return {"objective1": f"any_fes_negative + {clin} + {treatment}",
            "objective2": f"{treatment}*any_fes_negative + {clin}"}


PRIMARY_TERMS = {"objective1": "any_fes_negative", "objective2": f"{TRT}:any_fes_negative"}


def _fit_rows(df: pd.DataFrame, formula: str, terms: list[str] | None = None) -> list[dict]:
    """Cox rows of ``terms`` (all when None) by :func:`sonimage.survival.cox.cox_terms`: ordinary Cox, Firth under
    separation, or ``not_estimable`` with the reason (e.g. every patient has an FES-negative lesion)."""
    return cox_terms(df, TIME, EVENT, formula, terms)


def objective1(df: pd.DataFrame, lesions: pd.DataFrame, settings: StudySettings) -> dict:
    """PFS1 against heterogeneity: KM + log-rank, univariable and adjusted Cox, Schoenfeld tests."""
    df = df.assign(fdg_group=np.where(df["fdg_suvmax3"] >= df["fdg_suvmax3"].median(), "high FDG", "low FDG"),
                   fes_group=np.where(df["any_fes_negative"] == 1, "any FES-negative", "all FES-positive"))
    km = {"pattern": km_groups(df, "fes_pattern", list(PATTERNS)), "fes": km_groups(df, "fes_group"),
          "fdg": km_groups(df, "fdg_group"), "arm": km_groups(df, "arm")}
    metrics = ["fes_positive_fraction", "any_fes_negative", "log_fdg_suvmax3"]
    uni = [r for m in metrics for r in _fit_rows(df, m, [m])]
    varying = [m for m in metrics if df[m].nunique() > 1]
    adjusted = " + ".join([*varying, *CLINICAL, TRT])
    multi = _fit_rows(df, adjusted)
    formula = primary_formulas()["objective1"]
    primary = {**_fit_rows(df, formula, [PRIMARY_TERMS["objective1"]])[0], "formula": formula}
    sensitivity, cache = [], {}
    for thr in settings.fes_thresholds:
        # complete case at that threshold: a patient whose lesions are all indeterminate there has no FES reading
        d = fes_complete_case(at_fes_threshold(df, lesions, thr, cache=cache))[0]
        r = _fit_rows(d, formula, [PRIMARY_TERMS["objective1"]])[0]
        mixed = float((d["fes_pattern"] == "mixed").mean())
        sensitivity.append({"threshold": thr, "n": int(len(d)), "share_mixed": mixed, **r})
    return {"primary": primary, "km": km, "univariable": uni, "multivariable": {"formula": adjusted, "rows": multi},
            "ph_test": schoenfeld(df, formula, primary), "fes_threshold_sensitivity": sensitivity}


def schoenfeld(df: pd.DataFrame, formula: str, primary: dict | None = None) -> dict:
    """Scaled Schoenfeld residual tests per term of ``formula`` (KM time transform, as R's cox.zph default); not
    assessed (with the reason) where the ``primary`` row of that model is not an ordinary Cox fit."""
    if primary is not None and primary["method"] != WALD:
        why = primary.get("not_estimable") or "separation (monotone likelihood): the ordinary Cox fit diverges"
        return {"formula": formula, "p_by_term": {}, "min_p": None, "not_assessed": why,
                "note": "proportional hazards not assessed"}
    fit = fit_cox(df, TIME, EVENT, formula)
    x = fit.model.design.matrix(df).assign(_t=df[TIME].to_numpy(), _e=df[EVENT].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter().fit(x, "_t", "_e")
        res = proportional_hazard_test(cph, x, time_transform="km")
    per_term = {str(k if isinstance(k, str) else k[0]): float(p) for k, p in zip(res.summary.index,
                                                                               res.summary["p"])}
    return {"formula": formula, "p_by_term": per_term, "min_p": float(min(per_term.values())),
            "note": "lifelines' approximation of the scaled Schoenfeld test (R cox.zph before 2019), km transform"}


def _negative_by_arm(df: pd.DataFrame) -> str:
    """The counts behind the interaction: patients with any FES-negative lesion and their events, per arm."""
    parts = []
    for arm, name in ((0, "AI"), (1, "AI + CDK4/6i")):
        a = df[df[TRT] == arm]
        neg = a[a["any_fes_negative"] == 1]
        parts.append(f"{name}: {len(neg)} of {len(a)} patients any FES-negative, {int(neg[EVENT].sum())} "
                     f"PFS1 events among them")
    return "; ".join(parts)


def objective2(df: pd.DataFrame) -> dict:
    """Treatment × heterogeneity: HR of any FES-negative lesion per arm; CDK4/6i HR by subgroup."""
    clinical = " + ".join(CLINICAL)
    formula = primary_formulas()["objective2"]
    inter = {**_fit_rows(df, formula, [PRIMARY_TERMS["objective2"]])[0], "formula": formula}
    if inter.get("not_estimable"):
        inter["not_estimable"] += f" ({_negative_by_arm(df)})"
    d = df.assign(neg_ai=df["any_fes_negative"] * (1 - df[TRT]), neg_cdk=df["any_fes_negative"] * df[TRT])
    arms = _fit_rows(d, f"{TRT} + neg_ai + neg_cdk + {clinical}", ["neg_ai", "neg_cdk"])
    arms[0]["term"], arms[1]["term"] = "any FES-negative, AI", "any FES-negative, AI+CDK4/6i"
    forest = [{"subgroup": "All patients", "n": int(len(df)), **_trt_hr(df)}]
    for col, label, values in (("fes_pattern", "FES pattern", PATTERNS), ("any_fes_negative", "Any FES-negative",
                                                                          (0, 1)),
                               ("visceral", "Visceral disease", (0, 1)), ("ecog", "ECOG", (0, 1, 2))):
        for v in values:
            sub = df[df[col] == v]
            if len(sub) >= MIN_GROUP * 2 and sub[TRT].nunique() == 2 and sub[EVENT].sum() >= 5:
                name = {0: "no", 1: "yes"}.get(v, v) if col not in ("ecog",) else v
                forest.append({"subgroup": f"{label}: {name}", "n": int(len(sub)), **_trt_hr(sub)})
    cont = _fit_rows(df, f"{TRT}*fes_positive_fraction + {clinical}", [f"{TRT}:fes_positive_fraction"])[0]
    return {"interaction": inter, "hr_per_arm": arms, "interaction_continuous": cont, "forest": forest}


def _trt_hr(df: pd.DataFrame) -> dict:
    r = _fit_rows(df, TRT, [TRT])[0]
    return {k: v for k, v in r.items() if k != "term"}


def objective3(patients: pd.DataFrame, lesions: pd.DataFrame) -> dict:
    """Lesion response against baseline lesion uptake: RECIST size and PERCIST SULpeak mixed models with a patient
    random effect (:mod:`sonimage.analysis.lesion_response`); the size model's figures at the top level."""
    res = lesion_response(patients, lesions)
    size = res["size"]
    return {**res, "n_lesions": size.get("n_lesions", 0), "n_patients": size.get("n_patients", 0),
            "model": "response_pct ~ log(FES SUV) + log(FDG SUV) + treatment + log(size) + organ + (1 | patient); "
                     "RECIST 1.1 measurable, FES-evaluable lesions; MixedLM (REML)",
            "coefficients": size.get("coefficients", []), "categories": size.get("categories", {}),
            "points": size.get("points", {"log_fes_suv": [], "response_pct": [], TRT: []})}


def objective4(df: pd.DataFrame, settings: StudySettings, executor: Executor | None = None
               ) -> tuple[dict, dict[str, FrozenCox], pd.DataFrame]:
    """PATH risk and effect models: fits, bootstrap optimism, per-patient predicted benefit."""
    pipelines = {
        "risk": RiskModel(settings.prognostic_formula, TRT, TIME, EVENT),
        "effect": EffectModel(settings.effect_formula, TIME, EVENT, settings.penalizers, "interactions",
                              settings.folds, settings.seed),
    }
    results, models = {}, {}
    for name, pipe in pipelines.items():
        try:
            models[name] = pipe.fit(df)
        except (SurvivalDataError, np.linalg.LinAlgError) as exc:  # too few patients or events (a small cohort)
            results[name] = {"not_estimable": f"the {name} model cannot be fitted on {len(df)} patients, "
                                              f"{int(df[EVENT].sum())} events: {exc}"}
            continue
        results[name] = {
            "formula": models[name].formula, "coefficients": models[name].coefficients,
            "penalizer": models[name].settings.get("penalizer"),
            "penalizer_at_edge": models[name].settings.get("penalizer_at_edge"),
            "max_abs_interaction": max((abs(v) for k, v in models[name].coefficients.items() if ":" in k),
                                       default=None),
            "internal_validation": bootstrap_optimism(pipe, df, settings.n_boot_internal, settings.seed, executor,
                                                      benefit=BenefitSpec(TRT, tuple(settings.benefit_horizons))),
        }
    bens = []
    for name, m in models.items():
        b = predict_benefit(m, df, TRT, list(settings.benefit_horizons)).add_prefix(f"{name}_")
        bens.append(b)
    benefit = pd.concat([df[["subject_id", "arm"]], *bens], axis=1)
    h = settings.benefit_horizons[0]
    for name in models:
        col = benefit[f"{name}_benefit_{h:g}"]
        results[name]["predicted_benefit"] = {"horizon": h, "mean": float(col.mean()),
                                              "quartiles": col.quantile([0.25, 0.5, 0.75]).tolist(),
                                              "share_below_5_points": float((col < 0.05).mean())}
    return results, models, benefit


def objective5(models: dict[str, FrozenCox], cohorts: dict[str, pd.DataFrame], settings: StudySettings,
               executor: Executor | None = None) -> dict:
    """Each frozen model validated on each external cohort at the horizon (no refitting). Benefit is validated
    by :func:`sonimage.analysis.appraisal.external_benefit`, as each cohort's design allows."""
    out: dict = {}
    for cohort, df in cohorts.items():
        out[cohort] = {}
        for name, m in models.items():
            res = validate(m, df, TIME, EVENT, settings.horizon_months, settings.n_boot_external, settings.seed,
                           executor, source=cohort)
            out[cohort][name] = res
    return out



