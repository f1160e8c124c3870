"""Clinical and ground-truth tables of the synthetic SONImage cohorts, simulated from known models.

Each cohort gets a patient table (case mix, arm, PET days, PFS1) and a lesion table (organ, size, true FDG and
FES uptake, what the clinic measured at follow-up). Everything is drawn from models whose parameters go into
``truth``, so every analysis can be checked against them:

- lesions: per patient 1 + negative binomial lesions (Nienhuis et al., J Nucl Med 2018: 1,617 lesions in 91
  patients, 78 % bone, 15 % lymph node, 4 % lung, 2 % liver); FDG-negative lesions; each lesion's ER class
  (``er_positive``, the clinical truth) from a per-patient frailty, so ER-negative lesions cluster in patients
  (:func:`er_negative_probability`); true FES uptake by class (``fes_true_suv``), continuous through the 1.5
  threshold (two overlapping log-normal components, no empty band); ``fes_positive`` = FES-evaluable and
  ER-positive;
- PFS1: Cox model with a Weibull baseline whose scale is cohort-specific, and shared log hazard ratios (plus the
  ET-TRANSCAN chemotherapy terms); progression is seen only at the scheduled assessments (every 12 weeks as in
  SONIA), so PFS1 = the visit of detection; deaths are seen when they happen; censoring at the last assessment;
- treatment: SONIA randomised 1:1; IMPACT-MBC observational, CDK4/6i chosen by prognosis (a logistic propensity
  model, recorded: confounding); ET-TRANSCAN (ET-FES, Gennari et al., Ann Oncol 2024) FES SUV over the 3 largest
  lesions >= 2 -> endocrine therapy, < 2 -> randomised endocrine therapy vs chemotherapy;
- lesion response: % change of the RECIST size (longest diameter, short axis for nodes) and % change of FDG
  SULpeak (PERCIST), each a linear mixed model with a patient random effect; the clinic reports size only for
  RECIST-measurable lesions and SULpeak only for PERCIST-measurable ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import numpy as np
import pandas as pd

from sonimage.dicom.body import lbm_janmahasatian
from sonimage.lesions.roi import roi_name
from sonimage.survival.cox import fit_cox
from sonimage.tables.lesion_match import CLINIC_COLUMNS
from sonimage.tables.lesions import lesion_table
from sonimage.tables.patients import call_counts, patient_metrics

ORGANS = ("bone", "lymph_node", "lung", "liver")
FES_THRESHOLD = 1.5  # Nienhuis et al. 2018 (SCIENCE.md); comparison ">="
ETFES_THRESHOLD = 2.0  # ET-FES: SUV over the 3 largest lesions
WEIBULL_SHAPE = 1.3
ASSESSMENT_INTERVAL_MONTHS = 12 * 7 / 30.4375  # tumour assessment every 12 weeks (SONIA)
ACCRUAL_MONTHS = 36.0
MIN_FOLLOW_UP_MONTHS = 24.0
DROPOUT_PER_MONTH = 0.008
P_DEATH_FIRST = 0.08  # share of PFS1 events that are deaths without progression (seen on the day)

# True log hazard ratios per unit of the patient column (interaction terms joined with ":"), shared by all cohorts.
TRUE_LOG_HR: dict[str, float] = {
    "age": -0.01,
    "ecog": 0.35,
    "de_novo": -0.30,
    "visceral": 0.45,
    "prior_endocrine": 0.35,
    "fes_positive_fraction": -1.00,
    "cdk46i": -0.03,
    "cdk46i:fes_positive_fraction": -0.60,
}

# Percent change in RECIST lesion size at follow-up (per-log-SUV slopes, arm, log baseline size / 10 mm, organ
# relative to bone with a soft-tissue component), plus patient and lesion noise.
TRUE_RESPONSE: dict[str, float] = {
    "intercept": -2.0,
    "log_fes_suv": -12.0,
    "log_fdg_suv": 6.0,
    "cdk46i": -15.0,
    "chemo": -10.0,
    "log_size_cm": -4.0,
    "organ[lymph_node]": -6.0,
    "organ[lung]": 3.0,
    "organ[liver]": 5.0,
    "patient_sd": 8.0,
    "lesion_sd": 12.0,
}

# Percent change of FDG SULpeak at follow-up PET (PERCIST), the same form without the size and organ terms.
TRUE_PET_RESPONSE: dict[str, float] = {
    "intercept": -10.0,
    "log_fes_suv": -10.0,
    "log_fdg_suv": -5.0,
    "cdk46i": -12.0,
    "chemo": -15.0,
    "patient_sd": 10.0,
    "lesion_sd": 14.0,
}
FOLLOW_UP_WEEKS = 12  # the follow-up CT and PET: first scheduled assessment


@dataclass(frozen=True)
class CohortSpec:
    """Case mix, design and baseline hazard of one cohort."""

    prefix: str
    n_patients: int
    sites: tuple[str, ...]
    arms: Mapping[str, float]  # arm -> probability (SONIA: exact 1:1 allocation); see ``allocation``
    allocation: str  # "randomised", "propensity" (IMPACT) or "fes_selection" (ET-TRANSCAN)
    weibull_scale_months: float
    age_mean: float
    age_sd: float
    ecog_p: tuple[float, float, float]
    p_de_novo: float
    p_bone_only: float
    p_visceral: float  # among patients that are not bone-only
    p_prior_endocrine: float  # among recurrent (not de novo) patients
    er_negative_logit: float  # patient frailty: logit P(lesion ER-negative) = er_negative_logit + er_frailty_sd * z
    er_frailty_sd: float  # z ~ N(0, 1) per patient (random-intercept logistic model: negatives cluster)
    mean_lesions: float  # negative binomial, 1 + NB(mean_lesions - 1)
    arms_cdk46i: Mapping[str, int] = field(default_factory=dict)
    extra_log_hr: Mapping[str, float] = field(default_factory=dict)
    propensity: Mapping[str, float] = field(default_factory=dict)  # logit P(CDK4/6i) per unit of the column


COHORTS: dict[str, CohortSpec] = {
    "sonia": CohortSpec(
        prefix="SONIA", n_patients=100, sites=("NL01", "NL02", "NL03", "NL04", "NL05"),
        arms={"AI": 0.5, "AI+CDK4/6i": 0.5}, allocation="randomised", weibull_scale_months=7.9,
        age_mean=63.0, age_sd=10.0, ecog_p=(0.60, 0.37, 0.03), p_de_novo=0.40, p_bone_only=0.25,
        p_visceral=0.55, p_prior_endocrine=0.60, er_negative_logit=-5.0, er_frailty_sd=3.0,
        mean_lesions=16.0, arms_cdk46i={"AI": 0, "AI+CDK4/6i": 1},
    ),
    "impact": CohortSpec(
        prefix="IMPACT", n_patients=200, sites=("NL01", "NL06", "NL07", "NL08"),
        arms={"AI": 0.25, "AI+CDK4/6i": 0.40, "fulvestrant": 0.10, "fulvestrant+CDK4/6i": 0.25},
        allocation="propensity", weibull_scale_months=7.1,
        age_mean=60.0, age_sd=13.0, ecog_p=(0.45, 0.40, 0.15), p_de_novo=0.55, p_bone_only=0.20,
        p_visceral=0.70, p_prior_endocrine=0.50, er_negative_logit=-4.5, er_frailty_sd=3.0,
        mean_lesions=14.0,
        arms_cdk46i={"AI": 0, "AI+CDK4/6i": 1, "fulvestrant": 0, "fulvestrant+CDK4/6i": 1},
        # the fitter, younger patients get CDK4/6i: treated patients have a better prognosis (confounding)
        propensity={"intercept": 1.8, "age_centred": -0.02, "ecog": -1.2, "visceral": -0.9, "de_novo": 0.5},
    ),
    "transcan": CohortSpec(
        prefix="TRANSCAN", n_patients=147, sites=("IT01", "IT02", "FR01", "ES01"),
        arms={"ET": 0.5, "chemotherapy": 0.5}, allocation="fes_selection", weibull_scale_months=7.5,
        age_mean=66.0, age_sd=7.0, ecog_p=(0.80, 0.20, 0.0), p_de_novo=0.0, p_bone_only=0.40,
        p_visceral=0.35, p_prior_endocrine=0.90, er_negative_logit=-3.0, er_frailty_sd=3.5,
        mean_lesions=9.0, arms_cdk46i={"ET": 0, "chemotherapy": 0},
        # chemotherapy works regardless of ER: it undoes the FES effect of endocrine therapy
        extra_log_hr={"chemo": -0.5, "chemo:fes_positive_fraction": 1.0},
    ),
}


@dataclass(frozen=True)
class CohortTables:
    """One simulated cohort: patient table, lesion table and the JSON-serialisable truth it was drawn from."""

    cohort: str
    patients: pd.DataFrame
    lesions: pd.DataFrame
    truth: dict

    @property
    def lesion_table(self) -> pd.DataFrame:
        """The true lesions in the one lesion table format (:mod:`sonimage.tables.lesions`), response included."""
        return truth_lesion_table(self.cohort, self.lesions)

    @property
    def patient_table(self) -> pd.DataFrame:
        """The true patient table (:mod:`sonimage.tables.patients`) of :attr:`lesion_table`."""
        return patient_metrics(self.lesion_table)


def truth_lesion_table(cohort: str, lesions: pd.DataFrame) -> pd.DataFrame:
    """Simulated lesions as a perfect feature stage would measure them: SUVmax and SUVmean of the lesion's uptake
    profile (SUVpeak taken as the SUVmax); volume (FDG and FES MTV) is the sphere of the lesion's diameter; every
    lesion, with the ROI name a reader would give it; no lean body mass values (SUL NaN); the clinic's response
    columns (:data:`sonimage.tables.lesion_match.CLINIC_COLUMNS`), the diameter, ER class and true FES uptake
    (``diameter_mm``, ``er_positive``, ``fes_true_suv``) follow."""
    volume = np.pi / 6 * (lesions["diameter_mm"].to_numpy(float) / 10.0) ** 3
    rows = {"cohort": cohort, "patient": lesions["subject_id"], "lesion": lesions["lesion_id"],
            "roi": [roi_name(k, o) for k, o in zip(lesions["lesion_id"], lesions["organ"])],
            "organ": lesions["organ"]}
    for tracer in ("fdg", "fes"):
        suv, mean = lesions[f"{tracer}_suv"].to_numpy(float), lesions[f"{tracer}_suvmean"].to_numpy(float)
        rows.update({f"{tracer}_suvmax": suv, f"{tracer}_suvmean": mean, f"{tracer}_suvpeak": suv,
                     f"{tracer}_mtv_ml": volume, f"{tracer}_tlg": mean * volume})
    clinic = {c: lesions[c] for c in CLINIC_COLUMNS if c in lesions}
    truth = {c: lesions[c] for c in ("diameter_mm", "er_positive", "fes_true_suv") if c in lesions}
    return lesion_table(pd.DataFrame({**rows, "volume_ml": volume, **clinic, **truth}))


def _draw_organs(rng: np.random.Generator, n: int, bone_only: bool, visceral: bool, liver_only: bool) -> list[str]:
    """Organs of one patient's lesions, following the Nienhuis mix but consistent with the disease type."""
    if liver_only:
        return ["liver"] * n
    if bone_only:
        return ["bone"] * n
    organs = list(rng.choice(["bone", "lymph_node"], size=n, p=[0.76, 0.24]))
    if visceral:
        k = max(1, int(rng.binomial(n, 0.08)))
        organs[:k] = rng.choice(["lung", "liver"], size=k, p=[0.65, 0.35])
        if all(o == "liver" for o in organs):  # only the designed edge case has no FES-evaluable lesion
            organs[-1] = "lung" if n == 1 else "bone"
    elif n >= 2 and "lymph_node" not in organs:
        organs[0] = "lymph_node"
    return organs


def _lesion_count(rng: np.random.Generator, mean: float) -> int:
    """1 + negative binomial (dispersion 1.2): most patients have a few lesions, some have very many (cap 60)."""
    k = 1.2
    extra = rng.negative_binomial(k, k / (k + mean - 1.0))
    return int(min(1 + extra, 60))


def _fes_suv(rng: np.random.Generator, er_negative: np.ndarray) -> np.ndarray:
    """True FES uptake (SUVmax of the lesion's profile) of lesions of a known ER class: ER-positive log-normal
    around 4, ER-negative around 0.95. The tails cross the 1.5 threshold (about 1 % of ER-positive lesions take up
    less, 2 % of ER-negative ones more: low ER expression, non-specific uptake), so the clinical truth
    (``er_positive``) and the true uptake can disagree, as FES-PET and biopsy do (van Geel et al. 2022)."""
    n = len(er_negative)
    return np.where(er_negative, np.exp(rng.normal(np.log(0.95), 0.22, n)), np.exp(rng.normal(np.log(4.0), 0.42, n)))


def er_negative_probability(rng: np.random.Generator, spec: CohortSpec) -> float:
    """One patient's probability that a lesion is ER-negative: a patient frailty on the logit scale
    (random-intercept logistic model), so ER-negative lesions cluster in patients. SONIA's values
    (−5.0, SD 3.0) give ~7.5 % ER-negative lesions and ~26 % of patients with at least one (Liu et al. 2022:
    6.9 % / 17.9 %; van Kruchten et al. 2013: up to ~45 % heterogeneous); ET-TRANSCAN's (−3.0, 3.5), after
    endocrine therapy, ~20 % of patients below FES SUV 2 over the 3 largest lesions (Gennari et al. 2024)."""
    return float(1.0 / (1.0 + np.exp(-(spec.er_negative_logit + spec.er_frailty_sd * rng.normal()))))


# Lesion diameter (mm): log-normal, median 15 mm, clipped to 5–45 mm: ~18 % under 10 mm. No published size
# distribution of FES/FDG-PET metastases was found; Nienhuis et al. (J Nucl Med 2018) counted lesions seen on PET
# or >= 10 mm on CT, so most counted lesions are >= 10 mm, and the sub-centimetre ones are those PET shows.
DIAMETER_MEDIAN_MM = 15.0
DIAMETER_LOG_SD = 0.45


def _lesions_for_patient(rng: np.random.Generator, spec: CohortSpec, subject: str, bone_only: bool,
                         visceral: bool, liver_only: bool) -> dict[str, np.ndarray]:
    n = _lesion_count(rng, spec.mean_lesions)
    organs = np.array(_draw_organs(rng, n, bone_only, visceral, liver_only))
    evaluable = organs != "liver"
    negative = rng.random(n) < er_negative_probability(rng, spec)
    fes = _fes_suv(rng, negative).clip(0.4, 15.0).round(3)
    fdg_negative = rng.random(n) < np.where(negative, 0.06, 0.14)  # FDG-negative: mostly ER+ (lobular-like, bone)
    fdg = np.where(fdg_negative, np.exp(rng.normal(np.log(1.6), 0.2, n)),
                   np.exp(rng.normal(np.log(5.0) + 0.35 * negative, 0.45, n))).clip(1.0, 30.0).round(3)
    diameter = np.exp(rng.normal(np.log(DIAMETER_MEDIAN_MM), DIAMETER_LOG_SD, n)).clip(5.0, 45.0).round(1)
    soft = (organs == "bone") & (rng.random(n) < 0.15)  # lytic/mixed bone lesions with a soft-tissue component
    soft_mm = np.where(soft, (diameter * rng.uniform(0.6, 0.95, n)).round(1), 0.0)
    # within-lesion heterogeneity (rendered by sonimage.synth.render.lesion_profile): necrosis in large lesions,
    # more in FES-negative ones; a linear gradient across the lesion in a random direction. fdg_suv / fes_suv are
    # the SUVmax of the continuous profile, *_suvmean its mean over the sphere
    p_necrosis = np.clip((diameter - 14.0) / 20.0, 0.0, 0.8) * np.where(negative, 1.0, 0.6)
    necrotic = rng.random(n) < p_necrosis
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    core = np.where(necrotic, rng.uniform(0.3, 0.6, n), 0.0).round(3)
    core_uptake = np.where(necrotic, rng.uniform(0.15, 0.4, n), 1.0).round(3)
    gradient = rng.uniform(0.0, 0.5, n).round(3)
    mean_ratio = (core_uptake * core**3 + 1.0 - core**3) / (1.0 + gradient)  # the gradient averages out
    return {
        "subject_id": np.full(n, subject), "lesion_id": np.arange(1, n + 1), "organ": organs,
        "diameter_mm": diameter, "soft_tissue_mm": soft_mm, "fdg_suv": fdg, "fes_suv": fes, "fes_true_suv": fes,
        "er_positive": ~negative, "fdg_negative": fdg_negative, "fes_evaluable": evaluable,
        "fes_positive": evaluable & ~negative,
        "fdg_suvmean": (fdg * mean_ratio).round(3), "fes_suvmean": (fes * mean_ratio).round(3),
        "necrotic_core_fraction": core, "necrotic_core_uptake": core_uptake, "gradient": gradient,
        "gradient_x": direction[:, 0].round(4), "gradient_y": direction[:, 1].round(4),
        "gradient_z": direction[:, 2].round(4),
    }


def recist_category(pct: np.ndarray) -> np.ndarray:
    """RECIST-like category of a percent size change: CR (gone), PR (≤ −30 %), PD (≥ +20 %), SD, NE if missing."""
    pct = np.asarray(pct, float)
    return np.select([np.isnan(pct), pct <= -100.0, pct <= -30.0, pct >= 20.0], ["NE", "CR", "PR", "PD"], "SD")


def percist_category(pct: np.ndarray, baseline: np.ndarray, follow_up: np.ndarray) -> np.ndarray:
    """PERCIST 1.0 change of SULpeak (Wahl et al., J Nucl Med 2009) per lesion: PMR ≤ −30 % and ≥ 0.8 SUL units
    down, PMD ≥ +30 % and ≥ 0.8 up, else SMD; NE where not measured. (CMR needs the background: not judged.)"""
    pct, delta = np.asarray(pct, float), np.asarray(follow_up, float) - np.asarray(baseline, float)
    return np.select([np.isnan(pct), (pct <= -30.0) & (delta <= -0.8), (pct >= 30.0) & (delta >= 0.8)],
                     ["NE", "PMR", "PMD"], "SMD")


def recist_measurable(organ: np.ndarray, diameter_mm: np.ndarray, soft_tissue_mm: np.ndarray) -> np.ndarray:
    """RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009) measurability at baseline on CT: non-nodal lesions
    ≥ 10 mm longest diameter; lymph nodes ≥ 15 mm short axis (spheres here: short axis = diameter); bone only with
    a soft-tissue component ≥ 10 mm."""
    organ, d, soft = np.asarray(organ), np.asarray(diameter_mm, float), np.asarray(soft_tissue_mm, float)
    return np.where(organ == "lymph_node", d >= 15.0, np.where(organ == "bone", soft >= 10.0, d >= 10.0))


def recist_size(organ: np.ndarray, diameter_mm: np.ndarray, soft_tissue_mm: np.ndarray) -> np.ndarray:
    """The size RECIST measures: short axis of a node, the soft-tissue component of a bone lesion, else the
    longest diameter."""
    organ = np.asarray(organ)
    return np.where(organ == "bone", np.asarray(soft_tissue_mm, float), np.asarray(diameter_mm, float))


def patient_truth(lesions: pd.DataFrame, subjects: list[str], prefix: str) -> pd.DataFrame:
    """Per subject, the FES heterogeneity the clinical truth gives over ``lesions`` (a subset of a cohort's lesion
    rows with ``er_positive`` and ``fes_evaluable``): ``<prefix>n_lesions``, ``n_fes_evaluable``, ``n_fes_positive``
    (evaluable and ER-positive), ``fes_positive_fraction`` (Boers: over all the lesions), ``fes_positive_fraction_
    evaluable``, ``any_fes_negative``, ``fes_pattern``: the patient table's own counts
    (:func:`sonimage.tables.patients.call_counts`) of the true calls (not evaluable, else the ER class), so with
    its missing-value rules: no evaluable lesion gives NaN fractions, a null any-negative and the pattern "not
    evaluable"."""
    evaluable = lesions["fes_evaluable"].astype(bool).to_numpy()
    calls = np.where(~evaluable, "not evaluable", np.where(lesions["er_positive"].astype(bool), "positive",
                                                           "negative"))
    counts = call_counts(lesions["subject_id"], pd.Series(calls, index=lesions.index)).reindex(subjects)
    counts = counts.fillna({c: 0 for c in ("n_lesions", "n_fes_evaluable", "n_fes_positive")} |
                           {"fes_pattern": "not evaluable"})
    counts = counts.astype({c: int for c in ("n_lesions", "n_fes_evaluable", "n_fes_positive")})
    columns = ("n_lesions", "n_fes_evaluable", "n_fes_positive", "fes_positive_fraction",
               "fes_positive_fraction_evaluable", "any_fes_negative", "fes_pattern")
    out = counts[list(columns)].astype({"any_fes_negative": "boolean"})
    return out.rename(columns={c: f"{prefix}{c}" for c in columns}).rename_axis("subject_id")


def linear_predictor(patients: pd.DataFrame, log_hr: Mapping[str, float]) -> np.ndarray:
    """Σ β·x over the named patient columns; 'a:b' terms are products of columns."""
    lp = np.zeros(len(patients))
    for term, beta in log_hr.items():
        x = np.ones(len(patients))
        for col in term.split(":"):
            x = x * patients[col].to_numpy(float)
        lp += beta * x
    return lp


def _pfs(rng: np.random.Generator, lp: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """PFS1 as a trial observes it, and the true event times.

    True time T from the Weibull-Cox model; a death (share P_DEATH_FIRST) is seen at T, a progression at the
    first scheduled assessment at or after T. Follow-up ends at min(administrative cut-off, drop-out); an event
    not seen by then is censored at the last assessment before it (at least the first one).
    """
    n = lp.size
    t_true = scale * (-np.log(rng.random(n)) / np.exp(lp)) ** (1.0 / WEIBULL_SHAPE)
    death = rng.random(n) < P_DEATH_FIRST
    admin = MIN_FOLLOW_UP_MONTHS + ACCRUAL_MONTHS * rng.random(n)
    dropout = rng.exponential(1.0 / DROPOUT_PER_MONTH, n)
    end = np.minimum(admin, dropout)
    grid = ASSESSMENT_INTERVAL_MONTHS
    detected = np.where(death, t_true, np.ceil(t_true / grid - 1e-9) * grid)
    event = detected <= end
    last_assessment = np.maximum(np.floor(end / grid) * grid, grid)
    time = np.where(event, detected, last_assessment)
    kind = np.where(~event, "censored", np.where(death, "death", "progression"))
    return {"time": time.round(3), "event": event.astype(int), "true": t_true.round(3), "kind": kind}


def _allocate(rng: np.random.Generator, spec: CohortSpec, p: pd.DataFrame,
              fes3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arm per patient and the true probability of CDK4/6i (IMPACT) or of chemotherapy (ET-TRANSCAN)."""
    n = len(p)
    arms = list(spec.arms)
    if spec.allocation == "randomised":  # permuted 1:1 allocation
        arm = np.array([arms[i % len(arms)] for i in range(n)])
        rng.shuffle(arm)
        return arm, np.full(n, 0.5)
    if spec.allocation == "propensity":
        x = p.assign(intercept=1.0, age_centred=p["age"] - spec.age_mean)
        logit = sum(b * x[c].to_numpy(float) for c, b in spec.propensity.items())
        prob = 1.0 / (1.0 + np.exp(-logit))
        cdk = rng.random(n) < prob
        fulv = p["prior_endocrine"].to_numpy(bool)  # after an AI in the adjuvant setting: fulvestrant
        arm = np.where(cdk, np.where(fulv, "fulvestrant+CDK4/6i", "AI+CDK4/6i"), np.where(fulv, "fulvestrant", "AI"))
        return arm, prob
    low = fes3 < ETFES_THRESHOLD  # SUV < 2: randomised 1:1 endocrine therapy vs chemotherapy
    chemo = np.zeros(n, bool)
    idx = np.flatnonzero(low)
    chemo[rng.permutation(idx)[: len(idx) // 2 + (len(idx) % 2) * int(rng.integers(2))]] = True
    return np.where(chemo, "chemotherapy", "ET"), np.where(low, 0.5, 0.0)


def etfes_suv(lesions: pd.DataFrame) -> pd.Series:
    """ET-FES 'overall SUV' per patient: mean FES SUVmax of the (up to) 3 largest FES-evaluable lesions.

    Gennari et al. (Ann Oncol 2024) measured SUVmax in the 3 largest lesions against a cut-off of 2; how the
    three were combined is not stated: the mean is assumed here. NaN without an evaluable lesion.
    """
    ev = lesions[lesions["fes_evaluable"]].sort_values(["subject_id", "diameter_mm"], ascending=[True, False])
    return ev.groupby("subject_id")["fes_suv"].apply(lambda s: float(s.head(3).mean()))


def _response(rng: np.random.Generator, les: pd.DataFrame, p: pd.DataFrame) -> pd.DataFrame:
    """Size (RECIST) and FDG SULpeak (PERCIST) change at the follow-up visit, as the clinic reports them."""
    arm = p.set_index("subject_id").loc[les["subject_id"], ["cdk46i", "chemo"]].to_numpy(float)
    codes, subjects = pd.factorize(les["subject_id"])
    out = {}
    for name, r in (("size", TRUE_RESPONSE), ("sulpeak", TRUE_PET_RESPONSE)):
        pct = (r["intercept"] + r["log_fes_suv"] * np.log(les["fes_suv"]) + r["log_fdg_suv"] * np.log(les["fdg_suv"])
               + r["cdk46i"] * arm[:, 0] + r["chemo"] * arm[:, 1]
               + rng.normal(0.0, r["patient_sd"], len(subjects))[codes] + rng.normal(0.0, r["lesion_sd"], len(les)))
        if name == "size":
            size = recist_size(les["organ"], les["diameter_mm"], les["soft_tissue_mm"])
            pct = pct + r["log_size_cm"] * np.log(np.maximum(size, 1.0) / 10.0)
            pct = pct + sum(r[f"organ[{o}]"] * (les["organ"] == o) for o in ("lymph_node", "lung", "liver"))
        out[name] = np.clip(pct.to_numpy(float), -100.0, None)
    size = recist_size(les["organ"], les["diameter_mm"], les["soft_tissue_mm"])
    measurable = recist_measurable(les["organ"], les["diameter_mm"], les["soft_tissue_mm"])
    # site read of FDG SULpeak: uptake x lean-body-mass ratio x partial-volume recovery of a 1 cm3 peak sphere
    ratio = p.set_index("subject_id").loc[les["subject_id"], "sul_ratio"].to_numpy(float)
    recovery = 1.0 - np.exp(-((les["diameter_mm"].to_numpy(float) / 14.0) ** 2))
    sul0 = les["fdg_suv"].to_numpy(float) * ratio * recovery * np.exp(rng.normal(0.0, 0.05, len(les)))
    liver = p.set_index("subject_id").loc[les["subject_id"], ["liver_sulmean", "liver_sulsd"]].to_numpy(float)
    percist = sul0 >= 1.5 * liver[:, 0] + 2.0 * liver[:, 1]
    sul1 = sul0 * (1.0 + out["sulpeak"] / 100.0) * np.exp(rng.normal(0.0, 0.05, len(les)))
    size_pct = np.where(measurable, out["size"].round(1), np.nan)
    pet_pct = np.where(percist, (100.0 * (sul1 / sul0 - 1.0)).round(1), np.nan)
    return pd.DataFrame({
        "true_size_change_pct": out["size"].round(2), "true_sulpeak_change_pct": out["sulpeak"].round(2),
        "recist_measurable": measurable, "baseline_size_mm": size.round(1),
        "follow_up_size_mm": np.where(measurable, (size * (1.0 + out["size"] / 100.0)).round(1), np.nan),
        "response_pct": size_pct, "response": recist_category(size_pct),
        "percist_measurable": percist, "fdg_sulpeak_baseline": np.where(percist, sul0.round(3), np.nan),
        "fdg_sulpeak_follow_up": np.where(percist, sul1.round(3), np.nan), "sulpeak_change_pct": pet_pct,
        "pet_response": percist_category(pet_pct, sul0, sul1),
    }, index=les.index)


def simulate_cohort_tables(cohort: str, n_patients: int | None = None, seed: int = 0,
                           log_hr: Mapping[str, float] | None = None) -> CohortTables:
    """Simulate one cohort's patient and lesion tables; deterministic by (cohort, n_patients, seed, log_hr).

    ``log_hr`` overrides entries of :data:`TRUE_LOG_HR` (e.g. a strong interaction for power checks).
    """
    if cohort not in COHORTS:
        raise ValueError(f"unknown cohort {cohort!r}; choose one of {sorted(COHORTS)}")
    spec = COHORTS[cohort]
    n = spec.n_patients if n_patients is None else int(n_patients)
    if n < 1:
        raise ValueError(f"n_patients must be at least 1, got {n}")
    coefs = dict(TRUE_LOG_HR)
    unknown = set(log_hr or {}) - set(coefs)
    if unknown:
        raise ValueError(f"unknown log_hr terms {sorted(unknown)}; known: {sorted(coefs)}")
    coefs.update(log_hr or {})
    coefs.update(spec.extra_log_hr)
    rng = np.random.default_rng([seed, list(COHORTS).index(cohort), n])

    age = rng.normal(spec.age_mean, spec.age_sd, n).clip(28, 90).round(0)
    ecog = rng.choice(3, size=n, p=spec.ecog_p)
    de_novo = rng.random(n) < spec.p_de_novo
    bone_only = rng.random(n) < spec.p_bone_only
    visceral = ~bone_only & (rng.random(n) < spec.p_visceral)
    liver_only = np.zeros(n, bool)
    if n >= 50:  # an edge case every full-size cohort carries: no FES-evaluable lesion at all
        k = int(rng.integers(n))
        liver_only[k], bone_only[k], visceral[k] = True, False, True
    prior_endocrine = ~de_novo & (rng.random(n) < spec.p_prior_endocrine)
    subjects = [f"{spec.prefix}-{i + 1:04d}" for i in range(n)]

    parts = [_lesions_for_patient(rng, spec, subjects[i], bool(bone_only[i]), bool(visceral[i]),
                                  bool(liver_only[i])) for i in range(n)]
    lesions = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    per = lesions.groupby("subject_id", sort=False).agg(
        n_lesions=("lesion_id", "size"), n_fes_evaluable=("fes_evaluable", "sum"),
        n_fes_positive=("fes_positive", "sum"),
    ).reindex(subjects)
    fdg_day = -rng.integers(2, 29, n)
    fes_day = fdg_day + rng.choice([-1, 1], n) * rng.integers(1, 8, n)
    fes_day = np.where(fes_day >= 0, fdg_day - rng.integers(1, 8, n), fes_day)
    weight = rng.normal(72, 13, n).clip(42, 140).round(1)
    height = rng.normal(166, 7, n).clip(145, 190).round(0)

    patients = pd.DataFrame({
        "subject_id": subjects, "cohort": cohort, "site": rng.choice(spec.sites, size=n),
        "age": age, "weight_kg": weight, "height_cm": height, "sex": "F", "ecog": ecog,
        "de_novo": de_novo, "bone_only": bone_only, "visceral": visceral, "prior_endocrine": prior_endocrine,
        "fdg_day": fdg_day.astype(int), "fes_day": fes_day.astype(int),
        "n_lesions": per["n_lesions"].to_numpy(int), "n_fes_evaluable": per["n_fes_evaluable"].to_numpy(int),
        "n_fes_positive": per["n_fes_positive"].to_numpy(int),
    })
    patients["fes_suv3_largest"] = etfes_suv(lesions).reindex(subjects).to_numpy()
    arm, prob = _allocate(rng, spec, patients, patients["fes_suv3_largest"].fillna(0.0).to_numpy())
    patients.insert(12, "arm", arm)
    patients.insert(13, "cdk46i", np.array([spec.arms_cdk46i.get(a, 0) for a in arm], int))
    patients.insert(14, "chemo", (arm == "chemotherapy").astype(int))
    patients["allocation_probability"] = prob.round(4)
    # the patient truth over all lesions, with the patient table's rules (true_*; drawn_* in the image study);
    # pattern and any-negative are those values, the FES-positive fraction is the generating model's covariate
    # (TRUE_LOG_HR), which needs a value for every patient: 0 without an FES-evaluable lesion (true_*: NaN)
    truth_cols = patient_truth(lesions, subjects, "true_").reset_index(drop=True)
    patients["fes_positive_fraction"] = patients["n_fes_positive"] / patients["n_lesions"]
    patients["fes_pattern"] = truth_cols["true_fes_pattern"].to_numpy()
    patients["any_fes_negative"] = truth_cols["true_any_fes_negative"].array
    n_neg = (~lesions["er_positive"]).groupby(lesions["subject_id"]).sum().reindex(subjects).to_numpy(int)
    patients["n_er_negative"] = n_neg  # all lesions, liver included: what biology, not FES, knows
    patients["any_er_negative"] = n_neg > 0
    patients = pd.concat([patients, truth_cols], axis=1)
    lbm = np.array([lbm_janmahasatian(w, h, "F") for w, h in zip(weight, height)])
    patients["sul_ratio"] = (lbm / weight).round(4)
    patients["liver_sulmean"] = (2.5 * patients["sul_ratio"] * np.exp(rng.normal(0.0, 0.1, n))).round(3)
    patients["liver_sulsd"] = (0.12 * patients["liver_sulmean"]).round(3)
    lp = linear_predictor(patients, coefs)
    pfs = _pfs(rng, lp, spec.weibull_scale_months)
    patients["pfs1_months"] = pfs["time"]
    patients["pfs1_event"] = pfs["event"]
    patients["pfs1_event_type"] = pfs["kind"]
    patients["pfs1_true_months"] = pfs["true"]
    lesions = pd.concat([lesions, _response(rng, lesions, patients)], axis=1)

    truth = {
        "cohort": cohort, "n_patients": n, "seed": int(seed),
        "cox": {"log_hr": coefs, "baseline": {"distribution": "weibull", "shape": WEIBULL_SHAPE,
                                              "scale_months": spec.weibull_scale_months,
                                              "hazard": "h0(t) = shape/scale * (t/scale)**(shape-1)"},
                "linear_predictor": "sum of log_hr * column (products for ':' terms), uncentred"},
        "observation": {"accrual_months": ACCRUAL_MONTHS, "min_follow_up_months": MIN_FOLLOW_UP_MONTHS,
                        "dropout_per_month": DROPOUT_PER_MONTH,
                        "assessment_interval_months": ASSESSMENT_INTERVAL_MONTHS,
                        "share_deaths_among_events": P_DEATH_FIRST,
                        "progression_seen_at": "first scheduled assessment at or after the true time "
                                               "(pfs1_true_months); deaths on the day",
                        "censored_at": "last scheduled assessment before the end of follow-up"},
        "allocation": {"kind": spec.allocation, "arms": dict(spec.arms),
                       "propensity_logit": dict(spec.propensity),
                       "propensity_columns": "age_centred = age - age_mean; others as in the patient table",
                       "etfes_threshold": ETFES_THRESHOLD if spec.allocation == "fes_selection" else None,
                       "allocation_probability": "P(CDK4/6i) (propensity), P(chemotherapy) (fes_selection), "
                                                 "0.5 (randomised)"},
        "fes_threshold": {"value": FES_THRESHOLD, "comparison": ">=",
                          "statistic": "true SUVmax of the lesion's uptake profile (fes_true_suv): the feature-"
                                       "format truth (features/) reads positivity this way",
                          "fes_positive": "FES-evaluable and ER-positive (er_positive: the clinical truth)"},
        "er_heterogeneity": {"model": "per patient z ~ N(0, 1); each lesion ER-negative with probability "
                                      "expit(er_negative_logit + er_frailty_sd * z)",
                             "er_negative_logit": spec.er_negative_logit, "er_frailty_sd": spec.er_frailty_sd,
                             "fes_true_suv": "ER-positive lognormal(log 4, 0.42), ER-negative lognormal(log 0.95, "
                                             "0.22), clipped to 0.4-15",
                             "diameter_mm": f"lognormal(log {DIAMETER_MEDIAN_MM:g}, {DIAMETER_LOG_SD:g}), clipped "
                                            "to 5-45"},
        "response": {**TRUE_RESPONSE, "model": "pct = intercept + b*log(fes_suv) + b*log(fdg_suv) + b*cdk46i "
                                               "+ b*chemo + b*log(baseline_size_mm / 10) + organ (vs bone) "
                                               "+ N(0, patient_sd) + N(0, lesion_sd), clipped at -100",
                     "measurable": "RECIST 1.1: >= 10 mm; nodes >= 15 mm short axis; bone only with a "
                                   "soft-tissue component >= 10 mm", "follow_up_weeks": FOLLOW_UP_WEEKS,
                     "categories": {"CR": "<= -100", "PR": "<= -30", "PD": ">= 20", "SD": "otherwise",
                                    "NE": "not measurable"}},
        "pet_response": {**TRUE_PET_RESPONSE,
                         "model": "pct change of FDG SULpeak = intercept + b*log(fes_suv) + b*log(fdg_suv) "
                                  "+ b*cdk46i + b*chemo + N(0, patient_sd) + N(0, lesion_sd), clipped at -100; "
                                  "reported with 5 % read noise on each SULpeak",
                         "measurable": "PERCIST: baseline SULpeak >= 1.5 x liver SULmean + 2 SD"},
        "case_mix": {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v)
                     for k, v in spec.__dict__.items()},
        "linear_predictor_sd": float(np.std(lp)),
    }
    return CohortTables(cohort=cohort, patients=patients, lesions=lesions, truth=truth)


HETEROGENEITY_CLINICAL = ("age", "ecog", "de_novo", "visceral", "prior_endocrine")  # objectives 1 and 2's adjustment


@lru_cache(maxsize=None)
def heterogeneity_outcome_truth(cohort: str, n_patients: int = 10_000, seed: int = 20_261_203) -> dict:
    """The truth objectives 1 and 2 must recover: the log-HR of any ER-negative (FES-evaluable) lesion on PFS1 and
    its interaction with CDK4/6i, as the population values of the analyses' own Cox models under this cohort's
    generating model (:data:`TRUE_LOG_HR`: PFS1 depends on the ER-positive fraction, and on CDK4/6i more when
    it is high). Fitted to ``n_patients`` simulated patients with an evaluable lesion (complete case, as the
    analyses); ``se`` is the Monte Carlo standard error. The interaction needs both arms (SONIA, IMPACT)."""
    p = simulate_cohort_tables(cohort, n_patients, seed).patients
    p = p[p["n_fes_evaluable"] > 0].assign(any_fes_negative=lambda d: d["any_fes_negative"].astype(float))
    for c in ("de_novo", "visceral", "prior_endocrine"):
        p[c] = p[c].astype(int)
    both_arms = p["cdk46i"].nunique() > 1
    clinical = " + ".join(c for c in HETEROGENEITY_CLINICAL if p[c].nunique() > 1)  # ET-TRANSCAN: no de novo
    trt = " + cdk46i" if both_arms else ""
    main = fit_cox(p, "pfs1_months", "pfs1_event", f"any_fes_negative + {clinical}{trt}").summary
    out = {"any_fes_negative": {"log_hr": round(float(main.loc["any_fes_negative", "coef"]), 4),
                                "se": round(float(main.loc["any_fes_negative", "se"]), 4),
                                "model": f"any_fes_negative + {clinical}{trt} (objective 1)"},
           "share_any_fes_negative": round(float(p["any_fes_negative"].mean()), 4),
           "n_simulated": int(len(p)), "seed": seed,
           "generating_model": "PFS1 log-HR per unit of fes_positive_fraction (ER-positive FES-evaluable lesions / "
                               "all lesions) and its cdk46i interaction (tables.cox.log_hr); any-negative is not "
                               "a term of its own, so these are the values the analyses' models converge to"}
    if both_arms:
        inter = fit_cox(p, "pfs1_months", "pfs1_event", f"cdk46i*any_fes_negative + {clinical}").summary
        out["cdk46i:any_fes_negative"] = {
            "log_hr": round(float(inter.loc["cdk46i:any_fes_negative", "coef"]), 4),
            "se": round(float(inter.loc["cdk46i:any_fes_negative", "se"]), 4),
            "any_fes_negative_without_cdk46i": round(float(inter.loc["any_fes_negative", "coef"]), 4),
            "cdk46i_without_any_negative": round(float(inter.loc["cdk46i", "coef"]), 4),
            "model": f"cdk46i*any_fes_negative + {clinical} (objective 2)"}
    return out
