"""Rendering of an analysed study (:class:`sonimage.analysis.results.StudyResult`): one self-contained HTML report,\nmetrics.json, the frozen model files and per-patient benefit. No analysis happens here."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from sonimage import __version__
from sonimage.io import write_bytes_atomic, write_text_atomic
from sonimage.report import appraisal_sections, figures
from sonimage.report.html import dict_table, esc, img, page, table
from sonimage.report.text import ci, finite, hr_text, label, num, pval, strict_json
from sonimage.settings import Settings
from sonimage.survival.cox import FIRTH
from sonimage.survival.external import METRICS
from sonimage.analysis.objectives import EVENT
from sonimage.analysis.results import StudyResult
from sonimage.tables.parquet import write_table

METRIC_LABELS = {"harrell_c": "Harrell C", "uno_c": "Uno C", "auc": "AUC(t)", "oe_ratio": "O/E",
                 "calibration_slope": "Calibration slope", "ici": "ICI", "e50": "E50", "e90": "E90",
                 "brier": "Brier (IPCW)", "ipa": "IPA"}


def _hr_table(rows: list[dict], what: str = "HR (95 % CI)") -> pd.DataFrame:
    """Cox rows as Term, HR (95 % CI) or "not estimable: reason", p and the method where it is not Wald."""
    return pd.DataFrame([{"Term": label(r["term"]), what: ci(r["hr"], r["lower"], r["upper"]) if finite(r["hr"])
                          else f"not estimable: {r.get('not_estimable', '')}", "p": pval(r["p"]),
                          "Method": _method(r)} for r in rows])


def _method(r: dict) -> str:
    m = r.get("method") or "–"
    return "Firth penalised Cox, profile-likelihood CI" if m == FIRTH else \
        "Cox, Wald CI" if m.startswith("Cox partial") else m


def _metric_table(o5: dict) -> pd.DataFrame:
    out = []
    for cohort, by_model in o5.items():
        for model, res in by_model.items():
            row = {"Cohort": cohort.upper(), "Model": model, "n / events": f"{res['settings']['n']} / "
                                                                         f"{res['settings']['events']}"}
            for k in METRICS:
                m = res[k]
                row[METRIC_LABELS[k]] = ci(m["estimate"], m["lower"], m["upper"], 3)
            out.append(row)
    return pd.DataFrame(out)


def _tripod(cohorts: dict[str, pd.DataFrame], development: str, settings: Settings, o4: dict, stats: dict
            ) -> pd.DataFrame:
    study, dev = settings.study, cohorts[development]
    events = int(dev[EVENT].sum())
    n_par = (len(o4["effect"]["coefficients"]) if "coefficients" in o4["effect"]  # else not fitted: its design
             else next(r["parameters"] for r in stats["sample_size"] if r["model"] == "effect") or 0)
    items = [
        ("4a", "Source of data", f"Cohorts: {', '.join(c.upper() for c in cohorts)}; development: "
                                 f"{development.upper()}"),
        ("5a", "Setting and sites", "; ".join(f"{c.upper()}: {d['site'].nunique()} sites" for c, d in
                                             cohorts.items() if "site" in d)),
        ("6a", "Outcome", "PFS1 from randomisation to first progression (RECIST 1.1, local investigator) or death; "
                          "censored at last tumour assessment"),
        ("7a", "Predictors", f"Risk model: {study.prognostic_formula}; effect model: {study.effect_formula}; "
                             f"FES-PET lesion positive at SUVmax {'≥' if settings.fes.inclusive else '>'} "
                             f"{settings.fes.threshold:g}"),
        ("8", "Sample size", f"{len(dev)} patients, {events} events, {n_par} effect-model parameters "
                             f"({events / max(n_par, 1):.1f} events per parameter); Riley minimum n "
                             + ", ".join(f"{r['model']} model {r['n_needed']}" for r in stats["sample_size"])
                             + " (see 'What this study can show')"),
        ("9", "Missing data", "Patients without FES metrics (no FES-evaluable lesion: missing, not negative; reasons "
                              "under Table 1) or with missing clinical covariates left out of the primary analysis "
                              "(complete case, counted in the key results); sensitivity analysis with the missing "
                              "values multiply imputed (chained equations, Rubin's rules)"),
        ("10b", "Model building", "Cox, Efron ties; effect model with L2 penalty on interactions, tuned by "
                                  f"{study.folds}-fold cross-validated partial likelihood"),
        ("10d", "Performance measures", "Harrell and Uno C, AUC(t), O/E, calibration slope, ICI/E50/E90, IPCW "
                                        "Brier, IPA, net benefit; IPCW c-for-benefit, E-for-benefit, calibration "
                                        "of benefit, treatment decision curves"),
        ("10b/e", "Internal validation", f"Bootstrap optimism correction, B = {study.n_boot_internal}, whole "
                                         "pipeline refitted"),
        ("13b/14a", "Participants and events", "; ".join(f"{c.upper()}: {len(d)} patients, {int(d[EVENT].sum())} "
                                                         "events" for c, d in cohorts.items())),
        ("15a", "Full model", "Coefficients, centring and baseline survival in models/*.json (this run)"),
        ("16", "Performance with CIs", f"Percentile bootstrap (B = {study.n_boot_external}) for every metric"),
        ("17", "Model updating", "None: models applied frozen to external cohorts"),
    ]
    return pd.DataFrame(items, columns=["TRIPOD item", "Topic", "This run"])


def render_report(result: StudyResult, out_dir: Path, run_date: datetime.date | None = None) -> Path:
    """Write ``report.html``, ``metrics.json`` (strict JSON: ``null`` with a reason, never NaN or Infinity),
    ``models/*.json`` and ``benefit.parquet`` of an analysed study."""
    out_dir = Path(out_dir)
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    r, settings, development = result, result.settings, result.development
    for name, m in r.models.items():
        m.save(out_dir / "models" / f"{name}.json")
    write_table(r.benefit, out_dir / "benefit.parquet", metadata=settings.metadata())

    h = settings.study.horizon_months
    dev = r.cohorts[development]
    stats = r.statistics
    synthetic = bool(r.truth)
    run_date = (run_date or datetime.date.today()).isoformat()
    sections = [("Key results", _key_results(r, dev, stats, development, h))]
    if synthetic:
        sections.append(("Synthetic study: estimates beside the truth", _truth_html(r.truth)))
    sections += [("Table 1: patients per cohort", table(r.table_one) + _not_evaluable_html(r.not_fes_evaluable)),
                 ("What this study can show: sample size and power", appraisal_sections.size_and_power_html(stats)),
                 ("Objective 1: PFS1 and FES/FDG heterogeneity", _objective1_html(r.objective1)),
                 ("Objective 2: does heterogeneity modify the CDK4/6i effect?", _objective2_html(r.objective2)),
                 ("Objective 3: lesion response", _objective3_html(r.objective3)),
                 ("Objective 4: predicted individual benefit of CDK4/6i",
                  _objective4_html(r.objective4, r.benefit, h) + appraisal_sections.benefit_html(stats)),
                 ("Objective 5: external validation", _objective5_html(r, h)),
                 ("Sensitivity analyses", appraisal_sections.sensitivity_html(stats)),
                 ("Primary analyses and multiplicity", appraisal_sections.multiplicity_html(stats)),
                 ("TRIPOD items filled by this run",
                  table(_tripod(r.cohorts, development, settings, r.objective4, stats))),
                 ("Methods and conventions", _methods_html(settings))]
    banner = (f"Synthetic study: simulated patients and images ({', '.join(c.upper() for c in r.truth['cohorts'])}),"
              f" not patient data. Run {run_date}." if synthetic else "")
    report = page("SONImage study report", sections,
                  f"Run {run_date}; sonimage {__version__}; development cohort {development.upper()}; horizon "
                  f"{h:g} months", banner)
    write_text_atomic(out_dir / "report.html", report)
    metrics = strict_json({
        "sonimage_version": __version__, "run_date": run_date, "synthetic": synthetic, "development": development,
        "settings": settings.as_dict(), "objective1": _strip_curves(r.objective1), "objective2": r.objective2,
        "objective3": {k: v for k, v in r.objective3.items() if k != "points"}, "objective4": r.objective4,
        "objective5": r.objective5, "statistics": stats, "truth_check": r.truth,
        "not_fes_evaluable": {c: left.reason.value_counts().to_dict() for c, left in r.not_fes_evaluable.items()},
        "sections": [s for s, _ in sections]})
    write_bytes_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False).encode("utf-8"))
    return out_dir / "report.html"


def _not_evaluable_html(left: dict[str, pd.DataFrame]) -> str:
    """Count and reasons of the patients left out of the FES analyses (complete case)."""
    rows = [{"Cohort": c.upper(), "Not FES-evaluable": len(d),
             "Reasons": "; ".join(f"{r}: {n}" for r, n in d.reason.value_counts().items()) or "–"}
            for c, d in left.items()]
    return ("<p>Not FES-evaluable (missing FES is not negative FES): patients with no FES scan, a failed or poor "
            "registration, or only non-evaluable lesions have no FES metrics. The analyses are complete-case: these "
            "patients are left out of them (Table 1 shows all patients).</p>" + table(pd.DataFrame(rows)))


def _counts(d: dict) -> str:
    """{"reason": n} as "reason: n; ..." ("none" when empty)."""
    return "; ".join(f"{k}: {v}" for k, v in d.items()) if isinstance(d, dict) and d else str(d or "none")


def _strip_curves(o1: dict) -> dict:
    """Objective 1 without per-patient follow-up times (kept out of metrics.json)."""
    km = {k: {**v, "curves": {g: {kk: vv for kk, vv in c.items() if kk != "follow_up"}
                              for g, c in v["curves"].items()}} for k, v in o1["km"].items()}
    return {**o1, "km": km}


def _key_results(r: StudyResult, dev: pd.DataFrame, stats: dict, development: str, h: float) -> str:
    o1, o2, o4, o5 = r.objective1, r.objective2, r.objective4, r.objective5
    overall = o2["forest"][0]
    lines = [f"{development.upper()}: {len(dev)} patients, {int(dev[EVENT].sum())} PFS1 events.",
             f"Objective 1, primary: any FES-negative lesion, adjusted {hr_text(o1['primary'])}"
             f"{_firth_note(o1['primary'])}.",
             f"Objective 2, primary: any FES-negative lesion × CDK4/6i interaction, "
             f"{hr_text(o2['interaction'], 'ratio of HRs')}{_firth_note(o2['interaction'])}.",
             f"CDK4/6i vs AI alone, {hr_text(overall)}."]
    if "not_estimable" in o4["effect"]:
        lines.append(f"Effect model: not estimable ({o4['effect']['not_estimable']}).")
    else:
        eff = o4["effect"]["internal_validation"]["corrected"]
        lines += [f"Effect model, optimism-corrected C {num(eff['harrell_c'], 3)}, calibration slope "
                  f"{num(eff['calibration_slope'])} (shrinkage).",
                  f"Mean predicted gain in PFS1 at {h:g} months: "
                  f"{num(100 * o4['effect']['predicted_benefit']['mean'], 1)} percentage points."]
    for c, res in o5.items():
        if "effect" not in res:  # no effect model to validate
            continue
        e = res["effect"]
        ext = stats["external"][c]["effect"]
        lines.append(f"{c.upper()} (external, {ext['design']}): C {num(e['harrell_c']['estimate'], 3)}, O/E "
                     f"{num(e['oe_ratio']['estimate'])}, calibration slope {num(e['calibration_slope']['estimate'])}; "
                     + ("benefit validated with propensity weights" if ext.get("propensity") else
                        "benefit validated" if ext["estimable"] else
                        "benefit not validated (no CDK4/6i arm: the risk part only)") + ".")
    lines += appraisal_sections.key_lines(stats)
    lines += _recovery_lines(r.truth)
    return "<div class='key'><ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul></div>"


def _firth_note(row: dict) -> str:
    return " (Firth's penalised likelihood: separation in the ordinary Cox fit)" if row.get("method") == FIRTH \
        else ""


def _recovery_lines(truth: dict) -> list[str]:
    """EARL1 compliance of each synthetic cohort's images (``recovery`` of truth.json), in words."""
    out = []
    for c, rec in truth.get("recovery", {}).items():
        pairs = ", ".join(f"{num(d, 0)} mm {num(v)}" for d, v in zip(rec.get("diameters_mm", []),
                                                                    rec.get("rc_max", [])))
        if rec.get("earl1_compliant") is False:
            out.append(f"{c.upper()}: the images fall outside EARL1 (SUVmax recovery of spheres {pairs}); small "
                       "lesions read lower than on an accredited scanner.")
        elif rec.get("earl1_compliant"):
            out.append(f"{c.upper()}: image recovery within EARL1 ({pairs}).")
    return out


def _truth_html(truth: dict) -> str:
    """A synthetic study's truth (truth.json) beside the estimates: the generating model refitted, and the
    primary results."""
    parts = ["<p>The cohorts were simulated from known Cox models. The generating model of the development cohort "
             "is refitted here on the measured data (FES metrics read from the images, not the true ones): each "
             "true log hazard ratio beside its estimate. A true value outside the interval points at bias, for "
             "example from misread FES uptake.</p>"]
    gen = truth.get("generating_model")
    if gen:
        rows = [{"Term": label(g["term"]), "True log-HR": g["true_log_hr"],
                 "Estimated log-HR (95 % CI)": ci(g["coef"], _log(g["lower"]), _log(g["upper"]))
                 if finite(g.get("coef")) else f"not estimable: {g.get('not_estimable', '')}",
                 "Truth inside the CI": ("yes" if _log(g["lower"]) <= g["true_log_hr"] <= _log(g["upper"]) else "no")
                 if finite(g.get("coef")) else "–"} for g in gen["rows"]]
        parts.append(f"<p class='note'>Generating model: {esc(gen['formula'])}</p>{table(pd.DataFrame(rows))}")
    prim = truth.get("primary", [])
    if prim:
        rows = [{"Objective": p["objective"].replace("objective", "Objective "), "Term": label(p["term"]),
                 "Estimated log-HR (95 % CI)": ci(p["coef"], _log(p["lower"]), _log(p["upper"]))
                 if finite(p.get("coef")) else f"not estimable: {p.get('not_estimable', '')}",
                 "True log-HR": p["true_log_hr"] if p["true_log_hr"] is not None else
                 "not a term of the generating model (0 given the FES-positive fraction)"} for p in prim]
        parts.append(f"<h3>Primary results against the truth</h3>{table(pd.DataFrame(rows))}")
    rec = _recovery_lines(truth)
    if rec:
        parts.append("<h3>Image recovery (EARL1)</h3><ul>" + "".join(f"<li>{esc(x)}</li>" for x in rec) + "</ul>")
    return "".join(parts)


def _log(x) -> float | None:
    return float(np.log(x)) if finite(x) and x > 0 else None


def _objective1_html(o1: dict) -> str:
    titles = {"pattern": "PFS1 by FES heterogeneity pattern", "fes": "PFS1 by any FES-negative lesion",
              "fdg": "PFS1 by FDG SUVmax3 (median split)", "arm": "PFS1 by treatment arm"}
    figs = []
    for key, title in titles.items():
        k = o1["km"][key]
        note = (f"<p class='note'>Left out (fewer than 5 patients): "
                f"{esc('; '.join(f'{g}: {n}' for g, n in k['left_out'].items()))}</p>" if k["left_out"] else "")
        figs.append(f"<div>{img(figures.km_plot(k['curves'], title, k['logrank_p']), title)}{note}</div>")
    sens = pd.DataFrame([{"FES SUVmax threshold": num(r["threshold"], 1), "Share mixed": r["share_mixed"],
                          **_hr_table([r]).drop(columns="Term").iloc[0].to_dict()}
                         for r in o1["fes_threshold_sensitivity"]])
    ph = o1["ph_test"]
    ph_html = (table(pd.DataFrame([{"Term": label(k), "Schoenfeld p": pval(v)} for k, v in ph["p_by_term"].items()]))
               if ph["p_by_term"] else f"<p>Not assessed: {esc(ph.get('not_assessed', ''))}</p>")
    return (f"<h3>Primary analysis (pre-specified)</h3><p class='note'>{esc(o1['primary']['formula'])}</p>"
            f"{table(_hr_table([o1['primary']]))}<div class='grid'>{''.join(figs)}</div>"
            "<h3>Univariable Cox models (exploratory)</h3>"
            f"{table(_hr_table(o1['univariable']))}<h3>Multivariable Cox model with every metric (exploratory)</h3>"
            f"<p class='note'>{esc(o1['multivariable']['formula'])}</p>"
            f"{table(_hr_table(o1['multivariable']['rows']))}<h3>Proportional hazards (primary model)</h3>"
            f"{ph_html}<p class='note'>{esc(ph['note'])}</p>"
            f"<h3>Sensitivity of the primary analysis to the FES positivity threshold</h3>{table(sens, 2)}")


def _objective2_html(o2: dict) -> str:
    forest = [{**r, "label": r["subgroup"] + (" †" if r.get("method") == FIRTH else ""), "n": r["n"]}
              for r in o2["forest"]]
    fig = figures.forest_plot(forest, "CDK4/6i vs AI alone: PFS1 hazard ratio by subgroup",
                              "Hazard ratio (95 % CI), log scale; < 1 favours CDK4/6i")
    missing = [f"{r['subgroup']} ({r.get('not_estimable', '')})" for r in o2["forest"] if not finite(r["hr"])]
    arms = _hr_table(o2["hr_per_arm"])
    inter = _hr_table([o2["interaction"], o2["interaction_continuous"]], "Ratio of HRs (95 % CI)")
    return (f"<h3>Primary analysis (pre-specified)</h3><p class='note'>{esc(o2['interaction']['formula'])}</p>"
            f"{table(_hr_table([o2['interaction']], 'Ratio of HRs (95 % CI)'))}{img(fig, 'forest plot')}"
            + (f"<p class='note'>Not estimable, left out of the plot: {esc('; '.join(missing))}</p>" if missing else "")
            + ("<p class='note'>† Firth's penalised likelihood with a profile-likelihood interval (separation in "
               "the ordinary Cox fit).</p>" if any(r.get("method") == FIRTH for r in o2["forest"]) else "")
            + f"<h3>Hazard ratio of any FES-negative lesion, per arm</h3>{table(arms)}"
            f"<h3>Interaction terms (ratio of hazard ratios)</h3>{table(inter)}"
            "<p class='note'>Adjusted for age, ECOG, de novo disease, visceral disease and prior endocrine therapy. "
            "With ~100 patients the interaction test has low power (SCIENCE.md): read the CIs.</p>")


def _objective3_html(o3: dict) -> str:
    parts = []
    for key, title in (("size", "Size change (RECIST 1.1 measurable lesions)"),
                       ("pet", "FDG SULpeak change (PERCIST-measurable lesions)")):
        r = o3.get(key, {})
        if not r.get("estimable"):
            parts.append(f"<h3>{esc(title)}</h3><p class='note'>Not estimable: {esc(r.get('reason', ''))}</p>")
            continue
        coef = pd.DataFrame([{"Term": label(c["term"]), "Change, % (95 % CI)": ci(c["coef"], c.get("lower"),
                                                                               c.get("upper"), 1),
                              "p": pval(c.get("p"))} for c in r["coefficients"]])
        parts.append(f"<h3>{esc(title)}</h3><p class='note'>{r['n_lesions']} lesions in {r['n_patients']} "
                     f"patients; patient SD {num(r['patient_sd'], 1)}, lesion SD {num(r['lesion_sd'], 1)} (ICC "
                     f"{num(r['icc'])}); left out: {esc(_counts(r['left_out']))}</p>{table(coef, 3)}"
                     f"{table(pd.DataFrame([r.get('categories', {})]))}")
    fig = img(figures.response_plot(o3["points"]), "lesion response") if o3["points"]["response_pct"] else ""
    return f"{fig}<p class='note'>{esc(o3['model'])}</p>{''.join(parts)}"


def _objective4_html(o4: dict, benefit: pd.DataFrame, h: float) -> str:
    missing = "".join(f"<p>The {esc(n)} model is not estimable: {esc(r['not_estimable'])}</p>"
                      for n, r in o4.items() if "not_estimable" in r)
    o4 = {n: r for n, r in o4.items() if "not_estimable" not in r}
    if not o4:
        return missing
    rows = []
    for name, r in o4.items():
        iv = r["internal_validation"]
        rows.append({"Model": name, "Formula": r["formula"], "Penalizer": r["penalizer"],
                     "Penalizer at grid edge": "yes" if r.get("penalizer_at_edge") else "no",
                     "Largest |interaction log-HR|": r.get("max_abs_interaction", np.nan),
                     "Apparent C": iv["apparent"]["harrell_c"], "Optimism": iv["optimism"]["harrell_c"],
                     "Corrected C": iv["corrected"]["harrell_c"], "Shrinkage (corrected slope)": iv["shrinkage"],
                     "Bootstrap B": iv["bootstrap_used"]})
    fig = figures.benefit_histogram({f"{n} model": benefit[f"{n}_benefit_{h:g}"].to_numpy() for n in o4}, h)
    pb = pd.DataFrame([{"Model": n, "Mean benefit (points)": 100 * r["predicted_benefit"]["mean"],
                        "Median (points)": 100 * r["predicted_benefit"]["quartiles"][1],
                        "Share < 5 points": r["predicted_benefit"]["share_below_5_points"]} for n, r in o4.items()])
    return (f"{missing}<p>Risk modelling: a prognostic index fitted blind to treatment, then CDK4/6i × index. Effect "
            f"modelling: CDK4/6i × covariate interactions, penalised (PATH statement).</p>{table(pd.DataFrame(rows), 3)}"
            f"{img(fig, 'predicted benefit')}{table(pb, 2)}<p class='note'>The effect model's interaction penalty is "
            "chosen by cross-validated partial likelihood over a log-spaced path; a choice at the path's largest value "
            "means the data prefer the interactions shrunk to about zero (no heterogeneity of the CDK4/6i effect "
            "beyond the main effects).</p><p class='note'>Per-patient predictions (PFS under each arm, difference, "
            "RMST difference) are in benefit.parquet.</p>")


def _objective5_html(r: StudyResult, h: float) -> str:
    o5 = r.objective5
    parts = [table(_metric_table(o5), 3)]
    for name, curves in r.calibration.items():
        parts.append(img(figures.calibration_plot(curves, h, f"Calibration, {name} model"), f"calibration {name}"))
        parts += [f"<p class='note'>No flexible calibration curve for {esc(label)}: {esc(c['reason'])}.</p>"
                  for label, c in curves.items() if c.get("reason")]
    for c, by_model in o5.items():
        if not by_model:  # no fitted model to validate
            continue
        dc = {f"{name} model": res["net_benefit"] for name, res in by_model.items()}
        fig = figures.decision_curve(dc, h, f"Decision curve, {c.upper()}")
        parts.append(f"<h3>Decision curve, {esc(c.upper())}</h3>{img(fig, f'decision curve {c}')}")
    parts.append(f"<h3>Benefit in the external cohorts, by design</h3>{appraisal_sections.external_benefit_html(r.statistics)}")
    parts.append("<p class='note'>Observed (KM) risk of progression by the horizon: " +
                 ", ".join(f"{esc(c.upper())} {num(100 * v, 0)} %" for c, v in r.observed_risk.items()) + ".</p>")
    return "".join(parts)


def _methods_html(settings: Settings) -> str:
    items = ["Cox models by partial likelihood with Efron ties (as R survival::coxph); Breslow baseline hazard.",
             "Harrell's C; Uno's C and time-dependent AUC with the censoring distribution from the validation data.",
             "O/E = Kaplan–Meier risk / mean predicted risk at the horizon; calibration slope from a Cox model on "
             "the linear predictor.",
             "Flexible calibration: Cox model on a restricted cubic spline (3 knots) of cloglog(predicted risk), "
             "ICI/E50/E90 (Austin, Harrell & van Klaveren 2020).",
             "Brier score with inverse probability of censoring weights; IPA against the Kaplan–Meier null model.",
             "Bootstrap: percentile 95 % CIs for external metrics (model frozen); Harrell optimism for internal "
             "validation with the whole pipeline refitted.",
             "Separation (monotone likelihood: a coefficient or its standard error diverges, e.g. no event among "
             "the patients with a FES-negative lesion in one arm): Firth's penalised partial likelihood (Heinze & "
             "Schemper, Stat Med 2001; Breslow ties, as R coxphf) with profile penalised likelihood 95 % CIs and "
             "penalised likelihood-ratio p-values; the tables name the method of each row. Where no finite "
             "estimate exists (a covariate that does not vary, collinear covariates) the report says 'not "
             "estimable' with the reason, and metrics.json holds null with the reason beside it.",
             f"Software: sonimage {__version__}, Python {platform.python_version()}."]
    return ("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul><h3>Settings of this run</h3>"
            + dict_table(settings.as_dict()))
