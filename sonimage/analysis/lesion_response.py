"""Objective 3: does each lesion's response follow its own baseline FES/FDG uptake? (RECIST- and PERCIST-valid)

- Size response per RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009): only measurable lesions (non-nodal
  ≥ 10 mm longest diameter, lymph nodes ≥ 15 mm short axis, bone only with a soft-tissue component ≥ 10 mm);
  the outcome is the % change of that size at follow-up.
- Metabolic response per PERCIST 1.0 (Wahl et al., J Nucl Med 2009): % change of FDG SULpeak of lesions whose
  baseline SULpeak reaches 1.5 × liver SULmean + 2 SD, where a follow-up PET exists.
- Lesions are nested in patients: a linear mixed model with a patient random intercept (statsmodels MixedLM,
  REML; Laird & Ware 1982), fixed effects log baseline FES and FDG SUVmax, treatment, log baseline size and organ.
  Wald 95 % intervals.
- Clinic rows are joined to the image ROIs by lesion identifier (:mod:`sonimage.tables.lesion_match`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from sonimage.tables.patients import lesion_evaluability

MIN_ORGAN = 5  # an organ needs this many lesions for its own coefficient; fewer: its lesions are left out
MIN_PATIENTS = 5
TREATMENTS = ("cdk46i", "chemo")


def _design(les: pd.DataFrame, patients: pd.DataFrame, size_term: bool) -> tuple[pd.DataFrame, list[str], dict]:
    """Model rows and fixed-effect columns; what was left out and why."""
    arms = [c for c in TREATMENTS if c in patients and patients[c].nunique() > 1]
    d = les.merge(patients[["subject_id", *arms]].rename(columns={"subject_id": "patient"}), on="patient",
                  how="inner")
    # the one FES-evaluability rule of the patient metrics (liver, spill-in, registration; missing is not negative)
    ok = lesion_evaluability(d)[0] & (d["fes_suvmax"] > 0) & (d["fdg_suvmax"] > 0)
    left_out = {"not FES-evaluable or no uptake value": int((~ok).sum())}
    d = d[ok].assign(log_fes_suv=np.log(d.loc[ok, "fes_suvmax"]), log_fdg_suv=np.log(d.loc[ok, "fdg_suvmax"]))
    terms = ["log_fes_suv", "log_fdg_suv", *arms]
    if size_term:
        d["log_size_cm"] = np.log(d["baseline_size_mm"] / 10.0)
        terms.append("log_size_cm")
        organ = d["clinic_organ"].fillna(d["organ"]) if "clinic_organ" in d else d["organ"]
        counts = organ.value_counts()
        small = [o for o, k in counts.items() if k < MIN_ORGAN]
        if small:
            left_out[f"organ with < {MIN_ORGAN} lesions ({', '.join(map(str, small))})"] = int(organ.isin(small).sum())
        d = d[~organ.isin(small)].assign(organ_=organ[~organ.isin(small)])
        levels = sorted(set(d["organ_"]))
        ref = "bone" if "bone" in levels else (levels[0] if levels else None)
        for o in levels:
            if o != ref:
                d[f"organ[{o}]"] = (d["organ_"] == o).astype(float)
                terms.append(f"organ[{o}]")
    return d, terms, left_out


def mixed_model(d: pd.DataFrame, outcome: str, terms: list[str], group: str = "patient") -> dict:
    """Random-intercept linear mixed model of ``outcome`` on ``terms`` (REML): coefficients with Wald 95 % CIs,
    the patient and lesion SDs and the intraclass correlation."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    x = sm.add_constant(d[terms].astype(float), has_constant="add").rename(columns={"const": "intercept"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = sm.MixedLM(d[outcome].to_numpy(float), x, groups=d[group].to_numpy()).fit(reml=True)
    ci = fit.conf_int(0.05)
    names = list(x.columns)
    coef = [{"term": t, "coef": float(fit.fe_params[t]), "se": float(fit.bse_fe[t]), "lower": float(ci.loc[t, 0]),
             "upper": float(ci.loc[t, 1]), "p": float(fit.pvalues[t])} for t in names]
    patient_var, lesion_var = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    return {"coefficients": coef, "patient_sd": float(np.sqrt(max(patient_var, 0.0))),
            "lesion_sd": float(np.sqrt(lesion_var)), "icc": patient_var / (patient_var + lesion_var),
            "converged": bool(fit.converged) and not any(issubclass(w.category, ConvergenceWarning) for w in caught),
            "n_lesions": int(len(d)), "n_patients": int(d[group].nunique())}


def _fit_or_reason(d: pd.DataFrame, outcome: str, terms: list[str]) -> dict:
    if d[outcome].notna().sum() == 0:
        return {"estimable": False, "reason": "no lesion with this response measured"}
    d = d.dropna(subset=[outcome, *terms])
    if d["patient"].nunique() < MIN_PATIENTS or len(d) <= len(terms) + 2:
        return {"estimable": False, "reason": f"{len(d)} lesions in {d['patient'].nunique()} patients: too few"}
    return {"estimable": True, **mixed_model(d, outcome, terms)}


def lesion_response(patients: pd.DataFrame, lesions: pd.DataFrame) -> dict:
    """Objective 3 on the lesion table (:mod:`sonimage.tables.lesions`: baseline ``fes_suvmax``, ``fdg_suvmax``,
    measured or true) with the clinic's response columns joined, and the clinical patients (``subject_id``,
    treatment); returns the RECIST size model and the PERCIST SULpeak model (JSON-serialisable)."""
    out: dict = {}
    size_cols = {"recist_measurable", "response_pct", "baseline_size_mm"}
    if size_cols <= set(lesions):
        les = lesions[lesions["recist_measurable"].fillna(False).astype(bool)]
        d, terms, left = _design(les, patients, size_term=True)
        out["size"] = {"outcome": "% change of the RECIST size (longest diameter; short axis for nodes)",
                       "lesions": "RECIST 1.1 measurable, FES-evaluable", "left_out": left,
                       **_fit_or_reason(d, "response_pct", terms)}
        if "response" in d:
            cats = d["response"].value_counts().reindex(["CR", "PR", "SD", "PD"], fill_value=0)
            out["size"]["categories"] = {k: int(v) for k, v in cats.items()}
        out["size"]["points"] = {"log_fes_suv": d["log_fes_suv"].round(4).tolist(),
                                 "response_pct": d["response_pct"].round(2).tolist(),
                                 "cdk46i": d.get("cdk46i", pd.Series(0, index=d.index)).astype(int).tolist()}
    else:
        out["size"] = {"estimable": False,
                       "reason": f"clinical lesion table lacks {sorted(size_cols - set(lesions))}: size response "
                                 "needs RECIST measurability and baseline size"}
    if {"percist_measurable", "sulpeak_change_pct"} <= set(lesions):
        les = lesions[lesions["percist_measurable"].fillna(False).astype(bool)]
        d, terms, left = _design(les, patients, size_term=False)
        out["pet"] = {"outcome": "% change of FDG SULpeak (PERCIST)",
                      "lesions": "PERCIST-measurable at baseline, FES-evaluable, follow-up PET read",
                      "left_out": left, **_fit_or_reason(d, "sulpeak_change_pct", terms)}
        if "pet_response" in d:
            cats = d["pet_response"].value_counts().reindex(["PMR", "SMD", "PMD"], fill_value=0)
            out["pet"]["categories"] = {k: int(v) for k, v in cats.items()}
    else:
        out["pet"] = {"estimable": False, "reason": "no follow-up SULpeak in the clinical lesion table"}
    return out
