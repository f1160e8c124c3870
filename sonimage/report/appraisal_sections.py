"""Report sections for what the study can show: sample size and power, benefit (apparent and optimism-corrected),
external benefit by cohort design, sensitivity analyses and multiplicity (results of
:func:`sonimage.analysis.appraisal.appraise_study`)."""

from __future__ import annotations

import pandas as pd

from sonimage.report.benefit_figures import benefit_calibration_plot, treatment_decision_curve
from sonimage.report.html import esc, img, table
from sonimage.report.text import ci, finite, label, num, pval

METRIC_NAMES = {"c_for_benefit": "c-for-benefit", "e_avg_for_benefit": "Eavg-for-benefit",
                "e90_for_benefit": "E90-for-benefit"}


def key_lines(a: dict) -> list[str]:
    """Plain statements of what n can and cannot show, for the report's key results."""
    lines = ["Left out of the primary analysis (complete case; imputed in a sensitivity analysis): " + "; ".join(
        f"{c.upper()} {k['without_fes']} without FES data, {k['missing_clinical']} with missing clinical data"
        for c, k in a.get("left_out", {}).items()) + "."]
    for r in a["sample_size"]:
        if r.get("not_estimable"):
            lines.append(f"{r['model'].capitalize()} model: Riley's minimum sample size not estimable "
                         f"({r['not_estimable']}).")
            continue
        lines.append(f"{r['model'].capitalize()} model ({r['parameters']} parameters): Riley's minimum sample size "
                     f"{r['n_needed']} patients (~{num(r['events_needed'], 0)} events) for an anticipated C of "
                     f"{num(r['anticipated_c'])}; available {r['n_available']} ({r['events_available']} events): "
                     f"{'enough' if r['meets'] else 'too few, so expect overfitting and wide intervals'}.")
    if not a["power"]:
        lines.append(f"Power of the CDK4/6i × any-FES-negative interaction test: not estimable here "
                     f"({a['power_not_estimable']}).")
    else:
        lines.append(_power_line(a))
    for name, by_h in a["benefit"].items():
        h = next(iter(by_h))
        m = by_h[h]["metrics"]["c_for_benefit"]
        lines.append(f"{name.capitalize()} model, c-for-benefit at {h} months: apparent "
                     f"{ci(m['apparent'], m['apparent_lower'], m['apparent_upper'], 3)}, optimism-corrected "
                     f"{ci(m['corrected'], m['corrected_lower'], m['corrected_upper'], 3)}"
                     f"{' (interval cut at 0 or 1)' if m.get('corrected_cut_at_range') else ''} (0.5 = no better "
                     "than chance at ranking benefit).")
    return lines


def _power_line(a: dict) -> str:
    """The interaction test's power at the fitted and the planned ratio of hazard ratios, in words."""
    fitted = [p for p in a["power"] if p["effect_source"] == "fitted"][0]
    planned = [p for p in a["power"] if p["effect_source"] == "planned" and p["n"] == fitted["n"]][0]
    return (f"Power of the CDK4/6i × any-FES-negative interaction test at n = {fitted['n']}: "
            f"{num(100 * fitted['power'], 0)} % (MC SE {num(100 * fitted['mc_se'], 1)}) at the fitted ratio of HRs "
            f"{num(fitted['effect_ratio'])}; {num(100 * planned['power'], 0)} % (MC SE {num(100 * planned['mc_se'], 1)}) "
            f"for the planned {a['settings']['planned_ratio']:g}-fold ratio ({num(planned['effect_ratio'])}). "
            "A non-significant interaction is not evidence of no interaction.")


def size_and_power_html(a: dict) -> str:
    ss = pd.DataFrame([{
        "Model": r["model"], "Parameters": r["parameters"], "Planning R²cs (from C)": r["r2_cs_planning"],
        "Apparent / adjusted R²cs (this fit)": f"{num(r['r2_cs_apparent'], 3)} / {num(r['r2_cs_adjusted'], 3)}",
        "n: shrinkage ≤ 10 %": r["n_shrinkage"], "n: optimism R² ≤ 0.05": r["n_optimism"],
        "n: risk ± 0.05": r["n_precise_risk"], "n needed": r["n_needed"],
        "Events needed": num(r["events_needed"], 0),
        "n available": r["n_available"], "Events available": r["events_available"],
        "EPP available": r["epp_available"]} for r in a["sample_size"]])
    pw = pd.DataFrame([{
        "n": p["n"], "Effect": p["effect_source"], "Ratio of HRs": p["effect_ratio"],
        "Simulated events (mean)": num(p["mean_events"], 1), "Power": p["power"], "MC SE": p["mc_se"],
        "Simulations": p["simulations"], "Failed fits": p["failed_fits"]} for p in a["power"]]
        or [{"Power": f"not estimable: {a.get('power_not_estimable', '')}"}])
    s = a["settings"]
    return (f"{table(ss, 3)}<p class='note'>Riley et al. (Stat Med 2019; BMJ 2020) criteria as in pmsampsize: "
            "expected shrinkage ≥ 0.9, optimism in Nagelkerke R² ≤ 0.05, overall risk at the first horizon within "
            f"± 0.05; planning Cox–Snell R² from an anticipated C of {num(s['anticipated_c'])} (Riley 2020 "
            "approximation), event rate and mean follow-up of the development cohort. The risk model counts its "
            "second-stage parameters (treatment, treatment × index).</p>"
            f"<h3>Power of the treatment × heterogeneity interaction (objective 2, primary test)</h3>{table(pw, 3)}"
            "<p class='note'>Parametric bootstrap from the fitted Cox model (covariate rows resampled, censoring "
            "from the reverse Kaplan–Meier), Wald test at α = 0.05; Monte Carlo SE = √(p(1−p)/B).</p>")


def _benefit_table(by_model: dict) -> pd.DataFrame:
    rows = []
    for name, by_h in by_model.items():
        for h, res in by_h.items():
            for k, m in res["metrics"].items():
                rows.append({"Model": name, "Horizon (months)": h, "Metric": METRIC_NAMES[k],
                             "Apparent (95 % CI)": ci(m["apparent"], m["apparent_lower"], m["apparent_upper"], 3),
                             "Optimism": m["optimism"],
                             "Corrected (shifted 95 % CI)": ci(m["corrected"], m["corrected_lower"],
                                                                m["corrected_upper"], 3)})
    return pd.DataFrame(rows)


def _groups_table(groups: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"Group of predicted benefit": g["group"], "n CDK4/6i": g["n_treated"],
                          "n no CDK4/6i": g["n_control"], "Predicted (points)": 100 * g["predicted_benefit"],
                          "Observed (points, KM)": ci(100 * g["observed_benefit"], 100 * g["lower"],
                                                       100 * g["upper"], 1)} for g in groups])


def benefit_html(a: dict) -> str:
    """Development trial: benefit metrics apparent and corrected, calibration of benefit, decision curves."""
    if not a["benefit"]:
        return "<p>Benefit not appraised: no prediction model could be fitted (objective 4).</p>"
    parts = [f"<h3>How well is benefit predicted? (development trial)</h3>{table(_benefit_table(a['benefit']), 3)}",
             "<p class='note'>IPCW c-for-benefit (van Klaveren 2018, censoring by inverse probability weights) and "
             "E-for-benefit (Maas 2023) from pairs matched on predicted benefit; apparent with percentile bootstrap "
             "CIs, optimism from the bootstrap refitting the whole pipeline, corrected CI shifted by the optimism "
             "(Noma et al. 2021). Xia et al. (2023) describe the c-for-benefit's weaknesses: read it with the "
             "calibration of benefit below.</p>"]
    horizons = next(iter(a["benefit"].values())).keys()
    for h in horizons:
        curves = {n: {"groups": a["benefit"][n][h]["calibration_of_benefit"],
                      "smooth": a["benefit"][n][h]["smoothed_curve"]} for n in a["benefit"]}
        parts.append(img(benefit_calibration_plot(curves, float(h), f"Calibration of benefit at {h} months"),
                         f"calibration of benefit {h}"))
        for n in a["benefit"]:
            parts.append(f"<p class='note'>{esc(n)} model, {esc(h)} months:</p>"
                         f"{table(_groups_table(a['benefit'][n][h]['calibration_of_benefit']), 1)}")
        dc = {f"{n} model": a["benefit"][n][h]["decision_curve"] for n in a["benefit"]}
        parts.append(img(treatment_decision_curve(dc, float(h), f"Treatment decision curve, {h} months"),
                         f"treatment decision curve {h}"))
    parts.append("<p class='note'>Treatment-selection decision curves (Vickers, Kattan & Sargent 2007): net "
                 "benefit = progressions avoided per patient versus treating nobody, minus the threshold × share "
                 "treated; the threshold is the smallest gain worth the harms and cost of CDK4/6i.</p>")
    return "".join(parts)


def external_benefit_html(a: dict) -> str:
    parts = []
    for cohort, by_model in a["external"].items():
        if not by_model:  # no fitted model (objective 4)
            continue
        first = next(iter(by_model.values()))
        parts.append(f"<h4>{esc(cohort.upper())} ({esc(first['design'])})</h4>")
        if not first["estimable"]:
            parts.append(f"<p>{esc(first['statement'])}</p>")
            continue
        ps = first.get("propensity")
        if ps:
            bal = pd.DataFrame(ps["balance"]).rename(columns={
                "covariate": "Covariate", "mean_treated": "Mean, CDK4/6i", "mean_control": "Mean, no CDK4/6i",
                "smd_before": "SMD before", "smd_after": "SMD after"})
            parts.append(f"<p>Observational cohort: observed benefit estimated with {esc(ps['weighting'])} "
                         f"propensity-score weights. Weighted KM gain at {ps['horizon']:g} months "
                         f"{ci(100 * ps['estimate'], 100 * ps['lower'], 100 * ps['upper'], 1)} points (95 % CI); "
                         f"unadjusted {num(100 * ps['unadjusted'], 1)}; effective sample "
                         f"size {num(ps['ess_treated'], 0)} CDK4/6i / {num(ps['ess_control'], 0)} no CDK4/6i; largest "
                         f"|SMD| after weighting {num(ps['max_abs_smd_after'], 3)} (balance: |SMD| &lt; 0.1).</p>"
                         f"{table(bal, 3)}")
        rows = []
        for name, res in by_model.items():
            for h, v in res["horizons"].items():
                rows.append({"Model": name, "Horizon": h, "Weights": v["weights"],
                             "Mean predicted benefit (points)": 100 * v["mean_predicted_benefit"],
                             **{METRIC_NAMES[k]: ci(v[k]["estimate"], v[k]["lower"], v[k]["upper"], 3)
                                for k in METRIC_NAMES}, "Pairs with known outcome": v["known_pairs"]})
        parts.append(table(pd.DataFrame(rows), 3))
        h0 = next(iter(first["horizons"]))
        curves = {n: {"groups": r["horizons"][h0]["calibration_of_benefit"],
                      "smooth": r["horizons"][h0]["smoothed_curve"]} for n, r in by_model.items()}
        parts.append(img(benefit_calibration_plot(curves, float(h0), f"{cohort.upper()}: calibration of benefit, "
                                                                     f"{h0} months"), f"benefit calibration {cohort}"))
        dc = {f"{n} model": r["horizons"][h0]["decision_curve"] for n, r in by_model.items()}
        parts.append(img(treatment_decision_curve(dc, float(h0), f"{cohort.upper()}: treatment decision curve"),
                         f"treatment decision curve {cohort}"))
    return "".join(parts)


def sensitivity_html(a: dict) -> str:
    rows = []
    for r in a["sensitivity"]:
        if "not_estimable" in r:  # too few patients for this scenario
            rows.append({"Analysis": r["scenario"], "n / events": f"{r['n']} / {r['events']}",
                         "Obj. 1: HR any FES-negative (adjusted)": f"not estimable: {r['not_estimable']}"})
            continue
        row = {"Analysis": r["scenario"], "n / events": f"{r['n']} / {r['events']}",
               "Incomplete (left out / imputed)": r["incomplete"], "Share mixed": r["share_mixed"],
               "Obj. 1: HR any FES-negative (adjusted)": _row_ci(r["o1"]), "Obj. 1 p": pval(r["o1"]["p"])}
        if "o1_mtv" in r:
            row["Obj. 1: HR per ln FDG MTV (adjusted)"] = _row_ci(r["o1_mtv"])
        row["Obj. 2: ratio of HRs"] = _row_ci(r["o2"])
        row["Obj. 2 p"] = pval(r["o2"]["p"])
        row["Obj. 4: C / c-for-benefit (apparent)"] = f"{num(r['o4']['harrell_c'], 3)} / " \
                                                      f"{num(r['o4']['c_for_benefit'], 3)}"
        for c, v in r["o5"].items():
            cfb = f" / {num(v['c_for_benefit'], 3)}" if finite(v["c_for_benefit"]) else ""
            row[f"Obj. 5 {c.upper()}: C{' / c-for-benefit' if cfb else ''}"] = f"{num(v['harrell_c'], 3)}{cfb}"
        rows.append(row)
    firth = any((r.get(k) or {}).get("method", "") and "Firth" in (r.get(k) or {}).get("method", "")
                for r in a["sensitivity"] for k in ("o1", "o2", "o1_mtv"))
    return (f"{table(pd.DataFrame(rows), 3)}<p class='note'>One choice changed at a time from the primary analysis "
            "(the first row repeats the primary results of objectives 1 and 2 exactly); "
            "point estimates without bootstrap; every p-value here is exploratory. Patients without FES data or with "
            "missing clinical covariates: excluded in the primary analysis (complete case, counted), or their missing "
            "values multiply imputed by chained equations with Cox estimates pooled by Rubin's rules. Delineation "
            "rows appear for each per-method MTV column the lesion table holds (fdg_mtv_ml_&lt;method&gt;); the FDG "
            "burden HR is the objective-1 metric that depends on the delineation."
            + (" Some estimates use Firth's penalised likelihood (separation; metrics.json names each)." if firth
               else "") + "</p>")


def _row_ci(r: dict) -> str:
    return ci(r["hr"], r["lower"], r["upper"]) if finite(r.get("hr")) else \
        f"not estimable: {r.get('not_estimable', '')}"


def multiplicity_html(a: dict) -> str:
    parts = ["<h3>Pre-specified primary analysis per objective</h3><ul>"
             + "".join(f"<li><b>{esc(k.replace('objective', 'Objective '))}</b>: {esc(v)}</li>"
                       for k, v in a["primary"].items()) + "</ul>"]
    for fam, rows in a["multiplicity"].items():
        if not rows:
            continue
        df = pd.DataFrame([{"Test": label(r["term"]), "Role": r["role"],
                            "HR (coef. for objective 3) (95 % CI)": _family_estimate(r), "p": pval(r["p"]),
                            "p (Holm)": pval(r["p_holm"]), "p (BH FDR)": pval(r["p_fdr"])} for r in rows])
        parts.append(f"<h3>{esc(fam)}</h3>{table(df, 3)}")
    parts.append("<p class='note'>Holm (family-wise error) and Benjamini–Hochberg (false discovery rate) adjusted "
                 "within each family. Only the primary test of each objective is confirmatory; every other test is "
                 "exploratory and hypothesis-generating. Tests that are not estimable carry no p-value and are not "
                 "counted.</p>")
    return "".join(parts)


def _family_estimate(r: dict) -> str:
    if "hr" in r:
        return _row_ci(r)
    return num(r.get("coef"), 2)
