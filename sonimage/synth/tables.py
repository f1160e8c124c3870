"""Clinical and ground-truth tables of the synthetic SONImage cohorts, simulated from known models.

Each cohort gets a patient table (case mix, arm, PET days, PFS1) and a lesion table (organ, size, true FDG and
FES uptake, response at follow-up). PFS1 follows a Cox model with a Weibull baseline hazard whose true
coefficients (log hazard ratios per unit of the named patient column) are returned in ``truth``, so survival
fits can be checked against them. The cohorts share one outcome model and differ only in case mix (and arms),
which is what external validation should then show: calibration preserved, discrimination following the spread
of the linear predictor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from sonimage.tables.lesions import lesion_table
from sonimage.tables.patients import patient_metrics

ORGANS = ("bone", "lymph_node", "lung", "liver")
FES_THRESHOLD = 1.5  # Nienhuis et al. 2018 (SCIENCE.md); comparison ">="
WEIBULL_SHAPE = 1.3
WEIBULL_SCALE_MONTHS = 10.5
ASSESSMENT_INTERVAL_MONTHS = 12 * 7 / 30.4375  # tumour assessment every 12 weeks
ACCRUAL_MONTHS = 36.0
MIN_FOLLOW_UP_MONTHS = 24.0
DROPOUT_PER_MONTH = 0.008

# True log hazard ratios per unit of the patient column (interaction terms joined with ":").
TRUE_LOG_HR: dict[str, float] = {
    "age": -0.01,
    "ecog": 0.35,
    "de_novo": -0.30,
    "visceral": 0.45,
    "prior_endocrine": 0.35,
    "fes_positive_fraction": -1.00,
    "cdk46i": -0.25,
    "cdk46i:fes_positive_fraction": -0.60,
}

# Percent change in lesion size at follow-up: intercept + per-log-SUV slopes + arm, patient and lesion noise.
TRUE_RESPONSE: dict[str, float] = {
    "intercept": -2.0,
    "log_fes_suv": -12.0,
    "log_fdg_suv": 6.0,
    "cdk46i": -15.0,
    "patient_sd": 8.0,
    "lesion_sd": 12.0,
}


@dataclass(frozen=True)
class CohortSpec:
    """Case mix and design of one cohort."""

    prefix: str
    n_patients: int
    sites: tuple[str, ...]
    arms: Mapping[str, float]  # arm -> probability (SONIA: exact 1:1 allocation)
    randomised: bool
    age_mean: float
    age_sd: float
    ecog_p: tuple[float, float, float]
    p_de_novo: float
    p_bone_only: float
    p_visceral: float  # among patients that are not bone-only
    p_prior_endocrine: float  # among recurrent (not de novo) patients
    p_all_positive: float
    p_all_negative: float  # the rest have lesion-level FES-negativity drawn per patient (mixed where possible)
    mean_extra_lesions: float
    arms_cdk46i: Mapping[str, int] = field(default_factory=dict)


COHORTS: dict[str, CohortSpec] = {
    "sonia": CohortSpec(
        prefix="SONIA", n_patients=100, sites=("NL01", "NL02", "NL03", "NL04", "NL05"),
        arms={"AI": 0.5, "AI+CDK4/6i": 0.5}, randomised=True,
        age_mean=63.0, age_sd=10.0, ecog_p=(0.60, 0.37, 0.03), p_de_novo=0.40, p_bone_only=0.25,
        p_visceral=0.55, p_prior_endocrine=0.60, p_all_positive=0.42, p_all_negative=0.08,
        mean_extra_lesions=6.0, arms_cdk46i={"AI": 0, "AI+CDK4/6i": 1},
    ),
    "impact": CohortSpec(
        prefix="IMPACT", n_patients=200, sites=("NL01", "NL06", "NL07", "NL08"),
        arms={"AI": 0.25, "AI+CDK4/6i": 0.40, "fulvestrant": 0.10, "fulvestrant+CDK4/6i": 0.25}, randomised=False,
        age_mean=60.0, age_sd=13.0, ecog_p=(0.45, 0.40, 0.15), p_de_novo=0.55, p_bone_only=0.20,
        p_visceral=0.70, p_prior_endocrine=0.50, p_all_positive=0.35, p_all_negative=0.15,
        mean_extra_lesions=8.0,
        arms_cdk46i={"AI": 0, "AI+CDK4/6i": 1, "fulvestrant": 0, "fulvestrant+CDK4/6i": 1},
    ),
    "transcan": CohortSpec(
        prefix="TRANSCAN", n_patients=140, sites=("IT01", "IT02", "FR01", "ES01"),
        arms={"ET": 1.0}, randomised=False,
        age_mean=66.0, age_sd=7.0, ecog_p=(0.80, 0.20, 0.0), p_de_novo=0.0, p_bone_only=0.40,
        p_visceral=0.35, p_prior_endocrine=0.90, p_all_positive=0.65, p_all_negative=0.02,
        mean_extra_lesions=4.0, arms_cdk46i={"ET": 0},
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
    """Simulated lesions as a perfect feature stage would measure them: uptake is uniform, so SUVmax = SUVmean =
    SUVpeak = the true SUV; volume (FDG and FES MTV) is the sphere of the lesion's diameter; no lean body mass
    values (SUL NaN)."""
    volume = np.pi / 6 * (lesions["diameter_mm"].to_numpy(float) / 10.0) ** 3
    rows = {"cohort": cohort, "patient": lesions["subject_id"], "lesion": lesions["lesion_id"],
            "roi": [f"L{k:02d}_{o}" for k, o in zip(lesions["lesion_id"], lesions["organ"])],
            "organ": lesions["organ"]}
    for tracer in ("fdg", "fes"):
        suv = lesions[f"{tracer}_suv"].to_numpy(float)
        rows.update({f"{tracer}_suvmax": suv, f"{tracer}_suvmean": suv, f"{tracer}_suvpeak": suv,
                     f"{tracer}_mtv_ml": volume, f"{tracer}_tlg": suv * volume})
    return lesion_table(pd.DataFrame({**rows, "volume_ml": volume, "response_pct": lesions["response_pct"],
                                      "response": lesions["response"]}))


def _draw_organs(rng: np.random.Generator, n: int, bone_only: bool, visceral: bool, liver_only: bool) -> list[str]:
    """Organs of one patient's lesions, following the Nienhuis mix but consistent with the disease type."""
    if liver_only:
        return ["liver"] * n
    if bone_only:
        return ["bone"] * n
    organs = list(rng.choice(["bone", "lymph_node"], size=n, p=[0.84, 0.16]))
    if visceral:
        k = max(1, int(rng.binomial(n, 0.12)))
        organs[:k] = rng.choice(["lung", "liver"], size=k, p=[0.65, 0.35])
    elif n >= 2 and "lymph_node" not in organs:
        organs[0] = "lymph_node"
    return organs


def _fes_negative_flags(rng: np.random.Generator, evaluable: np.ndarray, kind: str) -> np.ndarray:
    """Which lesions are FES-negative, for a patient of kind 'positive', 'negative' or 'mixed'."""
    n = evaluable.size
    if kind == "positive":
        return np.zeros(n, bool)
    if kind == "negative":
        return np.ones(n, bool)
    neg = rng.random(n) < rng.beta(2.0, 3.0)
    idx = np.flatnonzero(evaluable)
    if idx.size >= 2:  # a mixed patient shows both kinds among evaluable lesions
        neg[idx[0]], neg[idx[1]] = True, False
    return neg


def _lesions_for_patient(rng: np.random.Generator, spec: CohortSpec, subject: str, bone_only: bool,
                         visceral: bool, liver_only: bool, cdk: int) -> dict[str, np.ndarray]:
    n = 1 + int(rng.poisson(spec.mean_extra_lesions))
    organs = np.array(_draw_organs(rng, n, bone_only, visceral, liver_only))
    evaluable = organs != "liver"
    u = rng.random()
    kind = "positive" if u < spec.p_all_positive else "negative" if u < spec.p_all_positive + spec.p_all_negative \
        else "mixed"
    negative = _fes_negative_flags(rng, evaluable, kind)
    fes = np.where(negative, rng.uniform(0.5, 1.4, n), np.exp(rng.normal(np.log(4.0), 0.4, n)).clip(1.6, 15.0))
    fdg = np.exp(rng.normal(np.log(5.0) + 0.35 * negative, 0.45, n)).clip(1.5, 30.0)
    diameter = np.exp(rng.normal(np.log(15.0), 0.4, n)).clip(8.0, 40.0)
    r = TRUE_RESPONSE
    pct = (r["intercept"] + r["log_fes_suv"] * np.log(fes) + r["log_fdg_suv"] * np.log(fdg) + r["cdk46i"] * cdk
           + rng.normal(0.0, r["patient_sd"]) + rng.normal(0.0, r["lesion_sd"], n)).clip(-100.0, None).round(1)
    return {
        "subject_id": np.full(n, subject), "lesion_id": np.arange(1, n + 1), "organ": organs,
        "diameter_mm": diameter.round(1), "fdg_suv": fdg.round(3), "fes_suv": fes.round(3),
        "fes_evaluable": evaluable, "fes_positive": evaluable & (fes.round(3) >= FES_THRESHOLD),
        "response_pct": pct, "response": recist_category(pct),
    }


def recist_category(pct: np.ndarray) -> np.ndarray:
    """RECIST-like category of a percent size change: CR (gone), PR (≤ −30 %), PD (≥ +20 %), else SD."""
    pct = np.asarray(pct, float)
    return np.select([pct <= -100.0, pct <= -30.0, pct >= 20.0], ["CR", "PR", "PD"], "SD")


def _pattern(n_eval: int, n_pos: int) -> str:
    if n_eval == 0:
        return "not evaluable"
    return "all positive" if n_pos == n_eval else "all negative" if n_pos == 0 else "mixed"


def linear_predictor(patients: pd.DataFrame, log_hr: Mapping[str, float]) -> np.ndarray:
    """Σ β·x over the named patient columns; 'a:b' terms are products of columns."""
    lp = np.zeros(len(patients))
    for term, beta in log_hr.items():
        x = np.ones(len(patients))
        for col in term.split(":"):
            x = x * patients[col].to_numpy(float)
        lp += beta * x
    return lp


def _pfs(rng: np.random.Generator, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PFS1 months and event flag (censored at the last tumour assessment), and the true event times."""
    n = lp.size
    t_true = WEIBULL_SCALE_MONTHS * (-np.log(rng.random(n)) / np.exp(lp)) ** (1.0 / WEIBULL_SHAPE)
    admin = MIN_FOLLOW_UP_MONTHS + ACCRUAL_MONTHS * rng.random(n)
    dropout = rng.exponential(1.0 / DROPOUT_PER_MONTH, n)
    censor = np.minimum(admin, dropout)
    event = t_true <= censor
    last_assessment = np.floor(censor / ASSESSMENT_INTERVAL_MONTHS) * ASSESSMENT_INTERVAL_MONTHS
    last_assessment = np.maximum(last_assessment, ASSESSMENT_INTERVAL_MONTHS)
    time = np.where(event, t_true, last_assessment)
    return time.round(3), event.astype(int), t_true


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
    rng = np.random.default_rng([seed, list(COHORTS).index(cohort), n])

    arms = list(spec.arms)
    if spec.randomised:  # permuted 1:1 allocation
        arm = np.array([arms[i % len(arms)] for i in range(n)])
        rng.shuffle(arm)
    else:
        arm = rng.choice(arms, size=n, p=list(spec.arms.values()))
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
    cdk = np.array([spec.arms_cdk46i[a] for a in arm], int)
    subjects = [f"{spec.prefix}-{i + 1:04d}" for i in range(n)]

    parts = [_lesions_for_patient(rng, spec, subjects[i], bool(bone_only[i]), bool(visceral[i]),
                                  bool(liver_only[i]), int(cdk[i])) for i in range(n)]
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
        "arm": arm, "cdk46i": cdk, "fdg_day": fdg_day.astype(int), "fes_day": fes_day.astype(int),
        "n_lesions": per["n_lesions"].to_numpy(int), "n_fes_evaluable": per["n_fes_evaluable"].to_numpy(int),
        "n_fes_positive": per["n_fes_positive"].to_numpy(int),
    })
    patients["fes_positive_fraction"] = patients["n_fes_positive"] / patients["n_lesions"]
    patients["fes_pattern"] = [_pattern(e, p) for e, p in zip(patients["n_fes_evaluable"],
                                                              patients["n_fes_positive"])]
    patients["any_fes_negative"] = patients["n_fes_positive"] < patients["n_fes_evaluable"]
    lp = linear_predictor(patients, coefs)
    time, event, _ = _pfs(rng, lp)
    patients["pfs1_months"] = time
    patients["pfs1_event"] = event

    truth = {
        "cohort": cohort, "n_patients": n, "seed": int(seed),
        "cox": {"log_hr": coefs, "baseline": {"distribution": "weibull", "shape": WEIBULL_SHAPE,
                                              "scale_months": WEIBULL_SCALE_MONTHS,
                                              "hazard": "h0(t) = shape/scale * (t/scale)**(shape-1)"},
                "linear_predictor": "sum of log_hr * column (products for ':' terms), uncentred"},
        "censoring": {"accrual_months": ACCRUAL_MONTHS, "min_follow_up_months": MIN_FOLLOW_UP_MONTHS,
                      "dropout_per_month": DROPOUT_PER_MONTH,
                      "assessment_interval_months": ASSESSMENT_INTERVAL_MONTHS,
                      "censored_at": "last tumour assessment before censoring"},
        "fes_threshold": {"value": FES_THRESHOLD, "comparison": ">=", "statistic": "SUVmax (uniform uptake)"},
        "response": {**TRUE_RESPONSE, "model": "pct = intercept + b*log(fes_suv) + b*log(fdg_suv) + b*cdk46i "
                                               "+ N(0, patient_sd) + N(0, lesion_sd), clipped at -100",
                     "categories": {"CR": "<= -100", "PR": "<= -30", "PD": ">= 20", "SD": "otherwise"}},
        "case_mix": {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v)
                     for k, v in spec.__dict__.items()},
        "linear_predictor_sd": float(np.std(lp)),
    }
    return CohortTables(cohort=cohort, patients=patients, lesions=lesions, truth=truth)
