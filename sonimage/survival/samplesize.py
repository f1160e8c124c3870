"""Minimum sample size for developing a survival prediction model (Riley et al.), as R's ``pmsampsize``.

Riley RD, Snell KIE, Ensor J, et al. Minimum sample size required for developing a multivariable prediction
model: Part II binary and time-to-event outcomes. Stat Med 2019;38:1276-96 (doi:10.1002/sim.7992), and
Riley RD, Ensor J, Snell KIE, et al. Calculating the sample size required for developing a clinical prediction
model. BMJ 2020;368:m441. The arithmetic follows pmsampsize's ``pmsampsize_surv`` (CRAN, version with the
unrounded maximum R², reproduced in tests against its own test file):

1. shrinkage ≤ 10 %:  n = p / ((S − 1) ln(1 − R²cs / S)), S = 0.9;
2. small optimism in Nagelkerke's R² (≤ 0.05): the same with S = R²cs / (R²cs + 0.05 max R²cs), where
   max R²cs = 1 − exp(2 lnL_null / n) and lnL_null = E ln(E / n) − E for an exponential null model;
3. precise overall risk at the time point: the 95 % CI of 1 − exp(−rate·t), with the rate's Poisson SE over the
   person-time, within ± ``margin``. pmsampsize only prints this interval (its criterion-3 row is max(n1, n2));
   here the smallest n meeting the margin is also computed and enters the final n (BMJ 2020, criterion (i)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class SampleSize:
    """Each criterion's minimum n, the events and events per parameter (EPP) they imply, and the final n."""

    n_shrinkage: int
    n_optimism: int
    n_precise_risk: int
    n_pmsampsize: int
    n_final: int
    shrinkage_target: float
    shrinkage_optimism: float
    max_r2_cs: float
    r2_nagelkerke: float
    events_final: float
    epp_final: float
    risk_ci_at_final: tuple[float, float, float]
    inputs: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _n_for_shrinkage(p: int, r2: float, s: float) -> int:
    return math.ceil(p / ((s - 1.0) * math.log(1.0 - r2 / s)))


def _risk_interval(rate: float, timepoint: float, person_time: float) -> tuple[float, float, float]:
    """(lower, estimate, upper) of the cumulative incidence 1 − exp(−rate·t) from a Poisson rate."""
    se = math.sqrt(rate / person_time)
    return (1.0 - math.exp(-(rate - Z95 * se) * timepoint), 1.0 - math.exp(-rate * timepoint),
            1.0 - math.exp(-(rate + Z95 * se) * timepoint))


def _risk_margin(n: int, rate: float, timepoint: float, meanfup: float) -> float:
    lo, est, hi = _risk_interval(rate, timepoint, round(meanfup * n, 1))
    return max(hi - est, est - lo)


def survival_sample_size(r2_cs: float, parameters: int, rate: float, timepoint: float, meanfup: float,
                         shrinkage: float = 0.9, optimism: float = 0.05, margin: float = 0.05) -> SampleSize:
    """Riley's minimum n for a Cox model with ``parameters`` candidate parameters.

    ``r2_cs`` is the anticipated (optimism-adjusted) Cox–Snell R²; ``rate`` the overall event rate per unit of
    time, ``timepoint`` and ``meanfup`` in the same unit.
    """
    if not 0 < r2_cs < shrinkage:
        raise ValueError(f"Cox-Snell R2 must lie in (0, shrinkage = {shrinkage}), got {r2_cs}")
    if parameters < 1 or rate <= 0 or timepoint <= 0 or meanfup <= 0:
        raise ValueError("parameters, rate, timepoint and meanfup must be positive")
    n_ref = 10000  # pmsampsize's arbitrary n for the null log-likelihood (the ratio E/n is what matters)
    events = math.ceil(rate * meanfup * n_ref)
    ln_null = events * math.log(events / n_ref) - events
    max_r2 = 1.0 - math.exp(2.0 * ln_null / n_ref)
    if r2_cs > max_r2:
        raise ValueError(f"Cox-Snell R2 {r2_cs} exceeds its maximum {max_r2:.3f} for this event rate (Riley eq. 23)")
    n1 = _n_for_shrinkage(parameters, r2_cs, shrinkage)
    s2 = r2_cs / (r2_cs + optimism * max_r2)
    n2 = _n_for_shrinkage(parameters, r2_cs, s2)
    n_pm = max(n1, n2)
    n3 = 1
    if _risk_margin(n3, rate, timepoint, meanfup) > margin:
        hi = 2
        while _risk_margin(hi, rate, timepoint, meanfup) > margin:
            hi *= 2
        lo = hi // 2
        while hi - lo > 1:  # the margin shrinks monotonically with n
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _risk_margin(mid, rate, timepoint, meanfup) <= margin else (mid, hi)
        n3 = hi
    final = max(n_pm, n3)
    events_final = final * rate * meanfup
    return SampleSize(
        n_shrinkage=n1, n_optimism=n2, n_precise_risk=n3, n_pmsampsize=n_pm, n_final=final,
        shrinkage_target=shrinkage, shrinkage_optimism=s2, max_r2_cs=max_r2, r2_nagelkerke=r2_cs / max_r2,
        events_final=events_final, epp_final=events_final / parameters,
        risk_ci_at_final=_risk_interval(rate, timepoint, round(meanfup * final, 1)),
        inputs={"r2_cs": r2_cs, "parameters": parameters, "rate": rate, "timepoint": timepoint,
                "meanfup": meanfup, "shrinkage": shrinkage, "optimism": optimism, "margin": margin})


def r2_cs_from_c(c: float, event_fraction: float) -> float:
    """Cox–Snell R² implied by a C-statistic for a survival model (Riley et al. BMJ 2020, supplement).

    C → Royston's D (Jinks, Royston & Sauerbrei, Stat Med 2015: D ≈ 5.50(C−½) + 10.26(C−½)³) → R²_D (Royston &
    Sauerbrei 2004) → O'Quigley's R² → likelihood-ratio statistic LR = −E ln(1 − R²_OQ) → R²cs = 1 − exp(−LR/n).
    """
    if not 0.5 < c < 1:
        raise ValueError(f"C must lie in (0.5, 1), got {c}")
    d = 5.50 * (c - 0.5) + 10.26 * (c - 0.5) ** 3
    k = math.pi ** 2 / 6
    r2_d = (math.pi / 8) * d ** 2 / (k + (math.pi / 8) * d ** 2)
    r2_oq = -k * r2_d / ((1 - k) * r2_d - 1)
    return 1.0 - (1.0 - r2_oq) ** min(1.0, event_fraction)


def r2_cs_from_fit(lr_statistic: float, n: int, parameters: int) -> tuple[float, float]:
    """Apparent Cox–Snell R² of a fitted model and its van Houwelingen–Le Cessie shrinkage-adjusted value
    (Riley et al. 2019, eq. 10-11): R²adj = S_VH · R²app with S_VH = 1 + p / (n ln(1 − R²app))."""
    r2_app = 1.0 - math.exp(-lr_statistic / n)
    s_vh = 1.0 + parameters / (n * math.log(1.0 - r2_app)) if r2_app > 0 else 0.0
    return r2_app, max(0.0, s_vh * r2_app)
