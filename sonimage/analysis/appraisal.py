"""What the study's size can and cannot show, and benefit validated the way each cohort's design allows.

- Sample size needed vs available for each candidate model (Riley et al.; :mod:`sonimage.survival.samplesize`).
- Simulation-based power of the treatment × marker interaction (:mod:`sonimage.survival.power`).
- Benefit in the development trial: c-for-benefit and E-for-benefit, apparent with percentile bootstrap CIs and
  optimism-corrected with location-shifted CIs (Noma et al., Stat Med 2021: the apparent interval shifted by
  the bootstrap optimism), calibration of benefit by groups, treatment-selection decision curves.
- External cohorts by design: randomised → as the trial; observational with both arms → propensity-weighted
  observed benefit with balance diagnostics, weighted benefit metrics; one arm → risk validation only, and the
  statement that benefit cannot be validated there.
- Multiplicity: one pre-specified primary analysis per objective; Holm and BH over each printed family.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import numpy as np
import pandas as pd

from sonimage.survival.benefit import BENEFIT_METRICS, BENEFIT_RANGE, benefit_validation, predict_benefit
from sonimage.survival.cox import WALD, FrozenCox, cox_terms, fit_cox
from sonimage.survival.data import SurvivalDataError, make_design, survival_outcome
from sonimage.survival.decision import treatment_net_benefit
from sonimage.survival.multiplicity import adjust_family
from sonimage.parallel import Executor
from sonimage.settings import StatisticsSettings
from sonimage.survival.power import term_power
from sonimage.survival.propensity import observed_benefit
from sonimage.survival.samplesize import r2_cs_from_c, r2_cs_from_fit, survival_sample_size
from sonimage.analysis.sensitivity import Scenario, SensitivitySpec, run_sensitivity

PRIMARY_LABEL = "primary, adjusted for clinical covariates and treatment: any_fes_negative"
PRIMARY = {
    "objective1": "HR of any FES-negative lesion, adjusted for age, ECOG, de novo disease, visceral disease, prior "
                  "endocrine therapy and CDK4/6i (Cox model)",
    "objective2": "CDK4/6i x any FES-negative lesion interaction (ratio of hazard ratios)",
    "objective3": "per-lesion RECIST size change against log baseline FES SUV (mixed model, patient effect)",
    "objective4": "optimism-corrected c-for-benefit of the effect model at the first benefit horizon",
    "objective5": "benefit metrics in the external cohort with both arms (propensity-weighted); risk calibration "
                  "and discrimination in single-arm cohorts",
}


def null_log_likelihood(time: np.ndarray, event: np.ndarray) -> float:
    """Efron log partial likelihood at β = 0: −Σ over event times Σ_k log(n_at_risk − k) for d tied events."""
    out = 0.0
    for u in np.unique(time[event == 1]):
        d = int(np.sum((time == u) & (event == 1)))
        at_risk = int(np.sum(time >= u))
        out -= np.sum(np.log(at_risk - np.arange(d)))  # Efron with equal weights: R − k·R_d/d, R_d = d
    return float(out)


def sample_size_rows(dev: pd.DataFrame, candidates: dict[str, str], time: str, event: str, horizon: float,
                     anticipated_c: float, shrinkage: float = 0.9, extra_parameters: dict[str, int] | None = None
                     ) -> list[dict]:
    """Riley's minimum n for each candidate model (name → formula) against what the cohort has.

    ``extra_parameters`` adds parameters a formula does not show (e.g. the risk model's second stage:
    treatment and treatment × prognostic index).
    The planning R² comes from ``anticipated_c`` (pre-specified); the development fit's own shrinkage-adjusted
    R² (van Houwelingen–Le Cessie) is shown beside it. Rate = events / person-time, mean follow-up of the cohort.
    """
    t, e = survival_outcome(dev, time, event)
    if e.sum() == 0:  # no patient or no event: no event rate to plan from
        keys = ("parameters", "r2_cs_planning", "r2_cs_apparent", "r2_cs_adjusted", "n_shrinkage", "n_optimism",
                "n_precise_risk", "n_needed", "events_needed", "epp_available", "epp_needed", "rate_per_month",
                "mean_follow_up")
        return [{"model": name, "anticipated_c": anticipated_c, **dict.fromkeys(keys), "n_available": int(len(t)),
                 "events_available": 0, "meets": False,
                 "not_estimable": f"no PFS1 event among {len(t)} patients"} for name in candidates]
    rate, meanfup = float(e.sum() / t.sum()), float(t.mean())
    ll0 = null_log_likelihood(t, e)
    rows = []
    for name, formula in candidates.items():
        extra = (extra_parameters or {}).get(name, 0)
        try:
            fit = fit_cox(dev, time, event, formula)
            p = len(fit.model.coefficients) + extra
            r2_app, r2_adj = r2_cs_from_fit(max(0.0, 2 * (fit.log_likelihood - ll0)), len(t), p)
        except (ValueError, np.linalg.LinAlgError):  # too few patients or events: the planning criteria still hold
            p = len(make_design(dev, formula).matrix(dev).columns) + extra
            r2_app = r2_adj = None
        r2_plan = float(r2_cs_from_c(anticipated_c, e.sum() / len(t)))
        ss = survival_sample_size(r2_plan, p, rate, horizon, meanfup, shrinkage)
        rows.append({"model": name, "parameters": p, "anticipated_c": anticipated_c, "r2_cs_planning": r2_plan,
                     "r2_cs_apparent": r2_app, "r2_cs_adjusted": r2_adj, "n_shrinkage": ss.n_shrinkage,
                     "n_optimism": ss.n_optimism, "n_precise_risk": ss.n_precise_risk, "n_needed": ss.n_final,
                     "events_needed": ss.events_final, "n_available": int(len(t)), "events_available": int(e.sum()),
                     "epp_available": float(e.sum() / p), "epp_needed": ss.epp_final,
                     "meets": bool(len(t) >= ss.n_final), "rate_per_month": rate, "mean_follow_up": meanfup})
    return rows


def power_rows(dev: pd.DataFrame, time: str, event: str, formula: str, term: str, n_sim: int,
               planned_ratio: float = 2.0, sizes: tuple[int, ...] = (), seed: int = 0,
               executor: Executor | None = None) -> list[dict]:
    """Power of ``term`` at the fitted effect and at a planned ratio of hazard ratios (same direction as the
    fit), at the cohort's n and at each of ``sizes``."""
    fitted = fit_cox(dev, time, event, formula).model.coefficients[term]
    planned = np.sign(fitted or 1.0) * abs(np.log(planned_ratio))
    rows = []
    for n in dict.fromkeys([len(dev), *sizes]):
        for effect in (None, planned):
            rows.append(term_power(dev, time, event, formula, term, n_sim, log_effect=effect, n=n, seed=seed,
                                   executor=executor))
    return rows


def benefit_appraisal(model: FrozenCox, internal: dict, dev: pd.DataFrame, time: str, event: str, treatment: str,
                      horizons: tuple[float, ...], n_boot: int, seed: int = 0) -> dict:
    """Benefit metrics in the development trial at each horizon: apparent (percentile CI), optimism (from
    ``internal``, a :func:`~sonimage.survival.internal.bootstrap_optimism` result with benefit metrics) and
    corrected (location-shifted CI, cut at the metric's range [0, 1]), calibration of benefit by groups, smoothed curve and decision curve."""
    out = {}
    t, e = survival_outcome(dev, time, event)
    for h in horizons:
        val = benefit_validation(model, dev, time, event, treatment, h, n_boot=n_boot, seed=seed,
                                 source="development")
        metrics = {}
        for k in BENEFIT_METRICS:
            opt = internal["optimism"].get(f"{k}_{h:g}", np.nan)
            a = val[k]
            shifted = np.array([a["estimate"], a["lower"], a["upper"]], float) - opt
            corrected = np.clip(shifted, *BENEFIT_RANGE)  # a shift past the metric's range is cut at its edge
            metrics[k] = {"apparent": a["estimate"], "apparent_lower": a["lower"], "apparent_upper": a["upper"],
                          "optimism": opt, "corrected": float(corrected[0]), "corrected_lower": float(corrected[1]),
                          "corrected_upper": float(corrected[2]),
                          "corrected_cut_at_range": bool(np.any(np.abs(corrected - shifted) > 0))}
        ben = predict_benefit(model, dev, treatment, [h])[f"benefit_{h:g}"].to_numpy()
        out[f"{h:g}"] = {"metrics": metrics, "calibration_of_benefit": val["calibration_of_benefit"],
                         "smoothed_curve": val["smoothed_curve"], "known_pairs": val["known_pairs"],
                         "matched_pairs": val["matched_pairs"],
                         "decision_curve": treatment_net_benefit(t, e, dev[treatment].to_numpy(), ben, h)}
    return out


def external_benefit(model: FrozenCox, df: pd.DataFrame, design: str, time: str, event: str, treatment: str,
                     confounders: list[str], horizons: tuple[float, ...], n_boot: int, seed: int = 0,
                     weighting: str = "overlap", source: str = "external") -> dict:
    """Benefit validation as the cohort's ``design`` allows: ``randomised``, ``observational`` or ``single-arm``."""
    arms = set(df[treatment].unique().tolist())
    if design == "single-arm" or len(arms) < 2:
        return {"design": design, "estimable": False,
                "statement": f"{source.upper()} has no patient with {treatment} = "
                             f"{({0, 1} - arms).pop() if len(arms) == 1 else '?'}: only the risk part of the model "
                             "(discrimination, calibration) is validated there; individual benefit of CDK4/6i "
                             "cannot be validated in this cohort."}
    t, e = survival_outcome(df, time, event, source)
    out: dict = {"design": design, "estimable": True, "horizons": {}}
    weights, note = None, "none (randomised)"
    if design == "observational":
        ps = observed_benefit(df, time, event, treatment, confounders, horizons[0], weighting, n_boot, seed, source)
        weights = ps.pop("weights")
        ps.pop("propensity")
        note = f"{weighting} propensity weights"
        out["propensity"] = ps
    for h in horizons:
        val = benefit_validation(model, df, time, event, treatment, h, n_boot=n_boot, seed=seed, source=source,
                                 weights=weights, weights_note=note)
        ben = predict_benefit(model, df, treatment, [h])[f"benefit_{h:g}"].to_numpy()
        val["decision_curve"] = treatment_net_benefit(t, e, df[treatment].to_numpy(), ben, h, weights=weights)
        val["mean_predicted_benefit"] = float(np.average(ben, weights=weights))
        out["horizons"][f"{h:g}"] = val
    return out


def adjust_families(families: dict[str, tuple[list[dict], str | None]]) -> dict[str, list[dict]]:
    """Holm and BH within each family (name → (rows with ``term`` and ``p``, primary term or None))."""
    return {name: adjust_family(rows, primary) for name, (rows, primary) in families.items()}


def _relabel(rows: list[dict], prefix: str) -> list[dict]:
    return [{**r, "term": f"{prefix}{r['term']}"} for r in rows]


def multiplicity_families(o1: dict, o2: dict, sensitivity: list[dict], o3: dict | None = None
                          ) -> dict[str, list[dict]]:
    """The families of tests the report prints, each with Holm and BH adjustment and its primary test."""
    metric_terms = {"fes_positive_fraction", "any_fes_negative", "log_fdg_suvmax3"}
    fam1 = ([{**o1["primary"], "term": PRIMARY_LABEL}] + _relabel(o1["univariable"], "univariable: ")
            + _relabel([r for r in o1["multivariable"]["rows"] if r["term"] in metric_terms],
                       "all metrics, adjusted: "))
    fam2 = (_relabel([o2["interaction"], o2["interaction_continuous"]], "interaction: ")
            + _relabel(o2["hr_per_arm"], "per arm: ")
            + [{"term": f"subgroup: {r['subgroup']}", **{k: r[k] for k in ("hr", "lower", "upper", "p")}}
               for r in o2["forest"]])
    names = {"o1": "objective 1 (any FES-negative)", "o1_mtv": "objective 1 (FDG MTV)", "o2": "objective 2"}
    fam_s = [{"term": f"{r['scenario']}: {label}", **r[k]} for r in sensitivity for k, label in names.items()
             if k in r]
    fam3 = [{"term": r["term"], "coef": r["coef"], "p": r["p"]} for r in (o3 or {}).get("coefficients", [])
            if r["term"] != "intercept"]
    return adjust_families({
        "Objective 1: heterogeneity and PFS1": (fam1, PRIMARY_LABEL),
        "Objective 2: treatment x heterogeneity": (fam2, f"interaction: {o2['interaction']['term']}"),
        "Objective 3: lesion response": (fam3, "log_fes_suv"),
        "Sensitivity analyses (all exploratory)": (fam_s, None),
    })


def appraise_study(cohorts: dict[str, pd.DataFrame], development: str, models: dict[str, FrozenCox],
                   internal: dict[str, dict], o1: dict, o2: dict, o3: dict, candidates: dict[str, tuple[str, int]],
                   sensitivity: tuple[Callable, SensitivitySpec, list[Scenario]] | None,
                   settings: StatisticsSettings, horizons: tuple[float, ...], time: str, event: str,
                   treatment: str, clinical: tuple[str, ...], seed: int = 0, executor: Executor | None = None
                   ) -> dict:
    """Sample size, power, benefit (development and external, by design), sensitivity and multiplicity.

    ``candidates`` maps a model name to (formula, parameters not in the formula); ``internal`` holds each model's
    bootstrap optimism with benefit metrics; ``sensitivity`` is (build, spec, scenarios) or None.
    """
    dev = cohorts[development]
    clin = " + ".join(clinical)
    out: dict = {"settings": asdict(settings), "horizons": list(horizons), "primary": PRIMARY}
    out["sample_size"] = sample_size_rows(dev, {k: f for k, (f, _) in candidates.items()}, time, event,
                                          horizons[0], settings.anticipated_c,
                                          extra_parameters={k: x for k, (_, x) in candidates.items()})
    inter = cox_terms(dev, time, event, f"{treatment}*any_fes_negative + {clin}", [f"{treatment}:any_fes_negative"])[0]
    try:
        if inter["method"] != WALD:  # a simulation from a separated (or unfitted) model means nothing
            raise SurvivalDataError(inter.get("not_estimable") or "monotone likelihood (separation): the ordinary "
                                    "Cox fit that the simulation draws from diverges")
        out["power"] = power_rows(dev, time, event, f"{treatment}*any_fes_negative + {clin}",
                                  f"{treatment}:any_fes_negative", settings.power_simulations,
                                  settings.planned_ratio, settings.power_sizes, seed, executor)
    except (SurvivalDataError, np.linalg.LinAlgError) as exc:  # e.g. every patient reads an FES-negative lesion
        out["power"], out["power_not_estimable"] = [], f"the interaction model cannot be fitted: {exc}"
    out["benefit"] = {name: benefit_appraisal(m, internal[name], dev, time, event, treatment, horizons,
                                              settings.n_boot_benefit, seed) for name, m in models.items()}
    out["external"] = {c: {name: external_benefit(m, d, settings.design(c), time, event, treatment,
                                                  [*clinical, "fes_positive_fraction"], horizons,
                                                  settings.n_boot_benefit, seed, settings.weighting, c)
                           for name, m in models.items()}
                       for c, d in cohorts.items() if c != development}
    rows = run_sensitivity(*sensitivity[:1], sensitivity[2], sensitivity[1], executor) if sensitivity else []
    out["sensitivity"] = rows
    out["multiplicity"] = multiplicity_families(o1, o2, rows, o3)
    return out
