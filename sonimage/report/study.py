"""One study run: the five analyses on per-cohort tables, written as one HTML report plus metrics.json."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sonimage import __version__
from sonimage.report import figures
from sonimage.report.html import esc, img, page, table
from sonimage.survival.calibration import (flexible_calibration, grouped_calibration, kaplan_meier, km_at,
                                           km_median)
from sonimage.survival.cox import write_json_atomic
from sonimage.survival.external import METRICS
from sonimage.survival.objectives import (EVENT, TIME, TRT, StudySettings, add_patient_metrics, hr_ci_text,
                                          objective1, objective2, objective3, objective4, objective5)
from sonimage.survival.parallel import Executor
from sonimage.tables.parquet import write_table

METRIC_LABELS = {"harrell_c": "Harrell C", "uno_c": "Uno C", "auc": "AUC(t)", "oe_ratio": "O/E",
                 "calibration_slope": "Calibration slope", "ici": "ICI", "e50": "E50", "e90": "E90",
                 "brier": "Brier (IPCW)", "ipa": "IPA"}


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


def _hr_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"Term": r["term"], "HR (95 % CI)": hr_ci_text(r), "p": r["p"]} for r in rows])


def _metric_table(o5: dict) -> pd.DataFrame:
    out = []
    for cohort, by_model in o5.items():
        for model, res in by_model.items():
            row = {"Cohort": cohort.upper(), "Model": model, "n / events": f"{res['settings']['n']} / "
                                                                         f"{res['settings']['events']}"}
            for k in METRICS:
                m = res[k]
                ci = f" ({m['lower']:.3f}–{m['upper']:.3f})" if np.isfinite(m["lower"]) else ""
                row[METRIC_LABELS[k]] = f"{m['estimate']:.3f}{ci}" if np.isfinite(m["estimate"]) else "–"
            out.append(row)
    return pd.DataFrame(out)


def _benefit_section(o5: dict) -> str:
    parts = []
    for cohort, by_model in o5.items():
        for model, res in by_model.items():
            b = res["benefit"]
            if not b["estimable"]:
                parts.append(f"<p><b>{esc(cohort.upper())}, {esc(model)} model:</b> not estimable. "
                             f"{esc(b['reason'])}.</p>")
                continue
            c = b["c_for_benefit"]
            parts.append(f"<p><b>{esc(cohort.upper())}, {esc(model)} model:</b> c-for-benefit "
                         f"{c['estimate']:.3f} (95 % CI {c['lower']:.3f}–{c['upper']:.3f}; "
                         f"{b['matched_pairs']} matched pairs).</p>")
            g = pd.DataFrame(b["calibration_of_benefit"])
            g[["predicted_benefit", "observed_benefit"]] *= 100
            parts.append(table(g.rename(columns={
                "group": "Group of predicted benefit", "n_treated": "n CDK4/6i", "n_control": "n no CDK4/6i",
                "predicted_benefit": "Predicted benefit (points)", "observed_benefit": "Observed benefit (points, KM)"}),
                1))
    return "".join(parts)


def _tripod(cohorts: dict[str, pd.DataFrame], development: str, settings: StudySettings, o4: dict) -> pd.DataFrame:
    dev = cohorts[development]
    events = int(dev[EVENT].sum())
    n_par = len(o4["effect"]["coefficients"])
    items = [
        ("4a", "Source of data", f"Cohorts: {', '.join(c.upper() for c in cohorts)}; development: "
                                 f"{development.upper()}"),
        ("5a", "Setting and sites", "; ".join(f"{c.upper()}: {d['site'].nunique()} sites" for c, d in
                                             cohorts.items() if "site" in d)),
        ("6a", "Outcome", "PFS1 from randomisation to first progression (RECIST 1.1, local investigator) or death; "
                          "censored at last tumour assessment"),
        ("7a", "Predictors", f"Risk model: {settings.prognostic_formula}; effect model: {settings.effect_formula}; "
                             "FES-PET lesion positive at SUVmax ≥ 1.5"),
        ("8", "Sample size", f"{len(dev)} patients, {events} events, {n_par} effect-model parameters "
                             f"({events / max(n_par, 1):.1f} events per parameter)"),
        ("9", "Missing data", "Complete data required; missing values stop the analysis naming the column"),
        ("10b", "Model building", "Cox, Efron ties; effect model with L2 penalty on interactions, tuned by "
                                  f"{settings.folds}-fold cross-validated partial likelihood"),
        ("10d", "Performance measures", "Harrell and Uno C, AUC(t), O/E, calibration slope, ICI/E50/E90, IPCW "
                                        "Brier, IPA, net benefit, c-for-benefit"),
        ("10b/e", "Internal validation", f"Bootstrap optimism correction, B = {settings.n_boot_internal}, whole "
                                         "pipeline refitted"),
        ("13b/14a", "Participants and events", "; ".join(f"{c.upper()}: {len(d)} patients, {int(d[EVENT].sum())} "
                                                         "events" for c, d in cohorts.items())),
        ("15a", "Full model", "Coefficients, centring and baseline survival in models/*.json (this run)"),
        ("16", "Performance with CIs", f"Percentile bootstrap (B = {settings.n_boot_external}) for every metric"),
        ("17", "Model updating", "None: models applied frozen to external cohorts"),
    ]
    return pd.DataFrame(items, columns=["TRIPOD item", "Topic", "This run"])


def run_study_analysis(patients: dict[str, pd.DataFrame], lesions: dict[str, pd.DataFrame], out_dir: Path,
                       development: str = "sonia", horizon_months: float = 12.0,
                       settings: StudySettings | None = None, executor: Executor | None = None) -> Path:
    """Run objectives 1–5 and write ``report.html``, ``metrics.json``, ``models/*.json`` and ``benefit.parquet``.

    ``patients`` and ``lesions`` are per-cohort tables (contract of :mod:`sonimage.synth.tables`); heterogeneity
    metrics are recomputed from the lesions. ``executor`` (stdlib or Dask) spreads the bootstraps.
    """
    settings = replace(settings or StudySettings(), horizon_months=horizon_months)
    if development not in patients:
        raise ValueError(f"development cohort {development!r} not among {sorted(patients)}")
    missing = set(patients) - set(lesions)
    if missing:
        raise ValueError(f"no lesion table for cohort(s) {sorted(missing)}")
    out_dir = Path(out_dir)
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    cohorts = {c: add_patient_metrics(p, lesions[c]) for c, p in patients.items()}
    dev = cohorts[development]
    external = {c: d for c, d in cohorts.items() if c != development}

    o1 = objective1(dev, lesions[development], settings)
    o2 = objective2(dev)
    o3 = objective3(dev, lesions[development])
    o4, models, benefit = objective4(dev, settings, executor)
    o5 = objective5(models, external, settings, executor)
    for name, m in models.items():
        m.save(out_dir / "models" / f"{name}.json")
    write_table(benefit, out_dir / "benefit.parquet")

    h = settings.horizon_months
    sections = [("Key results", _key_results(dev, o2, o4, o5, development, h)),
                ("Table 1: patients per cohort", table(table_one(cohorts, development))),
                ("Objective 1: PFS1 and FES/FDG heterogeneity", _objective1_html(o1)),
                ("Objective 2: does heterogeneity modify the CDK4/6i effect?", _objective2_html(o2)),
                ("Objective 3: lesion response", _objective3_html(o3)),
                ("Objective 4: predicted individual benefit of CDK4/6i", _objective4_html(o4, benefit, h)),
                ("Objective 5: external validation", _objective5_html(o5, models, cohorts, development, h)),
                ("TRIPOD items filled by this run", table(_tripod(cohorts, development, settings, o4))),
                ("Methods and conventions", _methods_html(settings))]
    report = page("SONImage study report", sections,
                  f"sonimage {__version__}; development cohort {development.upper()}; horizon {h:g} months")
    tmp = out_dir / f".report.html.{os.getpid()}.tmp"
    tmp.write_text(report, encoding="utf-8")
    os.replace(tmp, out_dir / "report.html")
    write_json_atomic({"sonimage_version": __version__, "development": development, "settings": asdict(settings),
                       "objective1": _strip_curves(o1), "objective2": o2,
                       "objective3": {k: v for k, v in o3.items() if k != "points"}, "objective4": o4,
                       "objective5": o5, "sections": [s for s, _ in sections]}, out_dir / "metrics.json")
    return out_dir / "report.html"


def _strip_curves(o1: dict) -> dict:
    """Objective 1 without per-patient follow-up times (kept out of metrics.json)."""
    km = {k: {**v, "curves": {g: {kk: vv for kk, vv in c.items() if kk != "follow_up"}
                              for g, c in v["curves"].items()}} for k, v in o1["km"].items()}
    return {**o1, "km": km}


def _key_results(dev: pd.DataFrame, o2: dict, o4: dict, o5: dict, development: str, h: float) -> str:
    overall = o2["forest"][0]
    eff = o4["effect"]["internal_validation"]["corrected"]
    lines = [f"{development.upper()}: {len(dev)} patients, {int(dev[EVENT].sum())} PFS1 events.",
             f"CDK4/6i vs AI alone, HR {hr_ci_text(overall)}.",
             f"Any FES-negative lesion × CDK4/6i interaction: ratio of HRs {hr_ci_text(o2['interaction'])}, "
             f"p = {o2['interaction']['p']:.3f}.",
             f"Effect model, optimism-corrected C {eff['harrell_c']:.3f}, calibration slope "
             f"{eff['calibration_slope']:.2f} (shrinkage).",
             f"Mean predicted gain in PFS1 at {h:g} months: {100 * o4['effect']['predicted_benefit']['mean']:.1f} "
             "percentage points."]
    for c, r in o5.items():
        e = r["effect"]
        lines.append(f"{c.upper()} (external): C {e['harrell_c']['estimate']:.3f}, O/E {e['oe_ratio']['estimate']:.2f}, "
                     f"calibration slope {e['calibration_slope']['estimate']:.2f}; benefit metrics "
                     f"{'estimable' if e['benefit']['estimable'] else 'not estimable (one arm)'}.")
    return "<div class='key'><ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul></div>"


def _objective1_html(o1: dict) -> str:
    titles = {"pattern": "PFS1 by FES heterogeneity pattern", "fes": "PFS1 by any FES-negative lesion",
              "fdg": "PFS1 by FDG SUVmax3 (median split)", "arm": "PFS1 by treatment arm"}
    figs = []
    for key, title in titles.items():
        k = o1["km"][key]
        note = (f"<p class='note'>Left out (fewer than 5 patients): {esc(k['left_out'])}</p>"
                if k["left_out"] else "")
        figs.append(f"<div>{img(figures.km_plot(k['curves'], title, k['logrank_p']), title)}{note}</div>")
    sens = pd.DataFrame(o1["fes_threshold_sensitivity"]).rename(columns={
        "threshold": "FES SUV threshold", "share_mixed": "Share mixed", "hr_any_fes_negative": "HR any FES-neg",
        "lower": "lower 95 %", "upper": "upper 95 %"})
    ph = pd.DataFrame([{"Term": k, "Schoenfeld p": v} for k, v in o1["ph_test"]["p_by_term"].items()])
    return (f"<div class='grid'>{''.join(figs)}</div><h3>Univariable Cox models</h3>"
            f"{table(_hr_table(o1['univariable']), 3)}<h3>Multivariable Cox model</h3>"
            f"<p class='note'>{esc(o1['multivariable']['formula'])}</p>"
            f"{table(_hr_table(o1['multivariable']['rows']), 3)}<h3>Proportional hazards</h3>"
            f"{table(ph, 3)}<p class='note'>{esc(o1['ph_test']['note'])}</p>"
            f"<h3>Sensitivity to the FES positivity threshold</h3>{table(sens, 3)}")


def _objective2_html(o2: dict) -> str:
    forest = [{"label": r["subgroup"], "n": r["n"], **r} for r in o2["forest"]]
    fig = figures.forest_plot(forest, "CDK4/6i vs AI alone: PFS1 hazard ratio by subgroup",
                              "Hazard ratio (95 % CI), log scale; < 1 favours CDK4/6i")
    arms = _hr_table(o2["hr_per_arm"])
    inter = _hr_table([o2["interaction"], o2["interaction_continuous"]])
    return (f"{img(fig, 'forest plot')}<h3>Hazard ratio of any FES-negative lesion, per arm</h3>{table(arms, 3)}"
            f"<h3>Interaction terms (ratio of hazard ratios)</h3>{table(inter, 3)}"
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
        coef = pd.DataFrame(r["coefficients"]).rename(columns={"term": "Term", "coef": "Change (%)"})
        parts.append(f"<h3>{esc(title)}</h3><p class='note'>{r['n_lesions']} lesions in {r['n_patients']} "
                     f"patients; patient SD {r['patient_sd']:.1f}, lesion SD {r['lesion_sd']:.1f} (ICC "
                     f"{r['icc']:.2f}); left out: {esc(r['left_out'])}</p>{table(coef, 3)}"
                     f"{table(pd.DataFrame([r.get('categories', {})]))}")
    fig = img(figures.response_plot(o3["points"]), "lesion response") if o3["points"]["response_pct"] else ""
    return f"{fig}<p class='note'>{esc(o3['model'])}</p>{''.join(parts)}"


def _objective4_html(o4: dict, benefit: pd.DataFrame, h: float) -> str:
    rows = []
    for name, r in o4.items():
        iv = r["internal_validation"]
        rows.append({"Model": name, "Formula": r["formula"], "Penalizer": r["penalizer"],
                     "Apparent C": iv["apparent"]["harrell_c"], "Optimism": iv["optimism"]["harrell_c"],
                     "Corrected C": iv["corrected"]["harrell_c"], "Shrinkage (corrected slope)": iv["shrinkage"],
                     "Bootstrap B": iv["bootstrap_used"]})
    fig = figures.benefit_histogram({f"{n} model": benefit[f"{n}_benefit_{h:g}"].to_numpy() for n in o4}, h)
    pb = pd.DataFrame([{"Model": n, "Mean benefit (points)": 100 * r["predicted_benefit"]["mean"],
                        "Median (points)": 100 * r["predicted_benefit"]["quartiles"][1],
                        "Share < 5 points": r["predicted_benefit"]["share_below_5_points"]} for n, r in o4.items()])
    return (f"<p>Risk modelling: a prognostic index fitted blind to treatment, then CDK4/6i × index. Effect "
            f"modelling: CDK4/6i × covariate interactions, penalised (PATH statement).</p>{table(pd.DataFrame(rows), 3)}"
            f"{img(fig, 'predicted benefit')}{table(pb, 2)}<p class='note'>Per-patient predictions (PFS under each "
            "arm, difference, RMST difference) are in benefit.parquet.</p>")


def _objective5_html(o5: dict, models: dict, cohorts: dict[str, pd.DataFrame], development: str, h: float) -> str:
    parts = [table(_metric_table(o5), 3)]
    for name, m in models.items():
        curves = {}
        for c, d in cohorts.items():
            res = o5[c][name]["calibration_curve"] if c in o5 else None
            risk = m.risk(d, h)
            g = grouped_calibration(d[TIME].to_numpy(), d[EVENT].to_numpy(), risk, h)
            label = f"{c.upper()} (development)" if c == development else c.upper()
            if res is None:  # development cohort: apparent calibration
                res = flexible_calibration(d[TIME].to_numpy(), d[EVENT].to_numpy(), risk, h)["curve"]
            curves[label] = {**res, "grouped": g}
        parts.append(img(figures.calibration_plot(curves, h, f"Calibration, {name} model"), f"calibration {name}"))
    for c, by_model in o5.items():
        dc = {f"{name} model": r["net_benefit"] for name, r in by_model.items()}
        fig = figures.decision_curve(dc, h, f"Decision curve, {c.upper()}")
        parts.append(f"<h3>Decision curve, {esc(c.upper())}</h3>{img(fig, 'decision curve')}")
    parts.append(f"<h3>Benefit metrics</h3>{_benefit_section(o5)}")
    obs = {c: 1 - km_at(d[TIME].to_numpy(), d[EVENT].to_numpy(), h) for c, d in cohorts.items()}
    parts.append("<p class='note'>Observed (KM) risk of progression by the horizon: " +
                 ", ".join(f"{esc(c.upper())} {100 * v:.0f} %" for c, v in obs.items()) + ".</p>")
    return "".join(parts)


def _methods_html(settings: StudySettings) -> str:
    items = ["Cox models by partial likelihood with Efron ties (as R survival::coxph); Breslow baseline hazard.",
             "Harrell's C; Uno's C and time-dependent AUC with the censoring distribution from the validation data.",
             "O/E = Kaplan–Meier risk / mean predicted risk at the horizon; calibration slope from a Cox model on "
             "the linear predictor.",
             "Flexible calibration: Cox model on a restricted cubic spline (3 knots) of cloglog(predicted risk), "
             "ICI/E50/E90 (Austin, Harrell & van Klaveren 2020).",
             "Brier score with inverse probability of censoring weights; IPA against the Kaplan–Meier null model.",
             "Bootstrap: percentile 95 % CIs for external metrics (model frozen); Harrell optimism for internal "
             "validation with the whole pipeline refitted.",
             f"Settings: {esc(asdict(settings))}",
             f"Software: sonimage {__version__}, Python {platform.python_version()}."]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
