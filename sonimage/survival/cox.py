"""Cox proportional-hazards fits (Efron ties, as R's coxph) and the frozen model file that applies anywhere."""

from __future__ import annotations

import json
import warnings
from itertools import combinations_with_replacement, permutations
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from scipy.optimize import brentq
from scipy.stats import chi2, norm

from sonimage import __version__
from sonimage.io import write_json_atomic
from sonimage.survival.data import Design, SurvivalDataError, make_design, survival_outcome

MODEL_FORMAT = "sonimage-cox/1"
Z95 = float(norm.ppf(0.975))


@dataclass(frozen=True)
class FrozenCox:
    """A fitted Cox model as plain numbers: predictions need no refit and no development data.

    The linear predictor is centred: ``lp = Σ β (x − centre)``; survival is ``S0(t) ** exp(lp)`` with ``S0``
    the Breslow baseline at the centre.
    """

    formula: str
    terms: tuple[str, ...]
    levels: dict[str, list]
    coefficients: dict[str, float]
    standard_errors: dict[str, float]
    centre: dict[str, float]
    baseline_time: tuple[float, ...]
    baseline_cumhaz: tuple[float, ...]
    settings: dict = field(default_factory=dict)
    sonimage_version: str = __version__
    format: str = MODEL_FORMAT

    @property
    def design(self) -> Design:
        return Design(tuple(self.terms), dict(self.levels))

    def linear_predictor(self, df: pd.DataFrame, source: str = "data") -> np.ndarray:
        """Centred linear predictor of each row."""
        x = self.design.matrix(df, source)
        beta = np.array([self.coefficients[c] for c in x.columns])
        centre = np.array([self.centre[c] for c in x.columns])
        return (x.to_numpy() - centre) @ beta

    def baseline_cumulative_hazard(self, times: np.ndarray | float) -> np.ndarray:
        """H0(t) (right-continuous step function, 0 before the first event)."""
        t = np.atleast_1d(np.asarray(times, float))
        bt, bh = np.asarray(self.baseline_time), np.asarray(self.baseline_cumhaz)
        idx = np.searchsorted(bt, t, side="right") - 1
        return np.where(idx >= 0, bh[np.clip(idx, 0, None)], 0.0)

    def survival(self, df: pd.DataFrame, times: np.ndarray | float, source: str = "data") -> np.ndarray:
        """Predicted survival, shape (rows, times)."""
        lp = self.linear_predictor(df, source)
        with np.errstate(over="ignore"):  # a diverged (bootstrap) model: survival 0, as the limit says
            return np.exp(-np.outer(np.exp(lp), self.baseline_cumulative_hazard(times)))

    def risk(self, df: pd.DataFrame, horizon: float, source: str = "data") -> np.ndarray:
        """Predicted probability of the event by ``horizon``."""
        return 1.0 - self.survival(df, horizon, source)[:, 0]

    def to_dict(self) -> dict:
        """Plain JSON types; ``baseline_survival`` (S0 = exp(−H0) at the centre) is added for readers."""
        d = asdict(self)
        d["terms"], d["baseline_time"], d["baseline_cumhaz"] = list(self.terms), list(self.baseline_time), \
            list(self.baseline_cumhaz)
        d["baseline_survival"] = np.exp(-np.asarray(self.baseline_cumhaz)).tolist()
        return d

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON, atomically."""
        return write_json_atomic(self.to_dict(), Path(path))

    @classmethod
    def from_dict(cls, d: dict, source: str = "model") -> "FrozenCox":
        if d.get("format") != MODEL_FORMAT:
            raise SurvivalDataError(f"{source}: not a sonimage Cox model (format {d.get('format')!r})")
        d = {k: v for k, v in d.items() if k != "baseline_survival"}
        d["terms"], d["baseline_time"], d["baseline_cumhaz"] = tuple(d["terms"]), tuple(d["baseline_time"]), \
            tuple(d["baseline_cumhaz"])
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "FrozenCox":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()), str(path))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise SurvivalDataError(f"{path}: unreadable model file ({exc})") from exc


@dataclass(frozen=True)
class CoxFit:
    """A fit with its statistics (the lifelines model stays inside; the frozen model is what travels)."""

    model: FrozenCox
    summary: pd.DataFrame  # coef, se, hr, lower/upper 95 %, z, p per design column
    concordance: float
    log_likelihood: float
    n: int
    events: int


def fit_cox(df: pd.DataFrame, time: str, event: str, formula: str, penalizer: float = 0.0, l1_ratio: float = 0.0,
            source: str = "data", design: Design | None = None, robust: bool = False,
            cluster: str | None = None, penalize: str = "all") -> CoxFit:
    """Fit ``formula`` by partial likelihood with Efron ties; optional elastic-net penalty on standardised β.

    ``penalize`` is "all" or "interactions" (main effects unpenalised, as PATH effect modelling advises).
    ``cluster`` names a column of cluster ids for a cluster-robust (sandwich) variance.
    """
    if penalize not in ("all", "interactions"):
        raise ValueError(f"penalize must be 'all' or 'interactions', got {penalize!r}")
    t, e = survival_outcome(df, time, event, source)
    design = design or make_design(df, formula, source)
    x = design.matrix(df, source)
    if len(x) < 2:
        raise SurvivalDataError(f"{source}: {len(x)} patient(s) only; the model cannot be fitted")
    constant = [c for c in x.columns if np.ptp(x[c].to_numpy()) == 0]
    if constant:
        raise SurvivalDataError(f"{source}: design column(s) {constant} do not vary; the model cannot be fitted")
    penalised = [penalizer * (penalize == "all" or ":" in c) for c in x.columns]
    xa = x.to_numpy(float)
    if cluster or robust:
        beta, se, loglik = _fit_lifelines(x, t, e, np.array(penalised), l1_ratio, df[cluster] if cluster else None)
    else:
        if l1_ratio:
            raise ValueError("an L1 penalty needs robust=True (fitted by lifelines); the fast path is L2 only")
        beta, info, loglik = efron_newton(xa, t, e, np.array(penalised) * xa.std(0, ddof=1) ** 2)
        se = np.sqrt(np.diag(np.linalg.inv(info)))
    z = beta / se
    with np.errstate(over="ignore"):  # a separated resample has an infinite upper HR, which is the honest answer
        summary = pd.DataFrame({
            "coef": beta, "se": se, "hr": np.exp(beta), "hr_lower": np.exp(beta - Z95 * se),
            "hr_upper": np.exp(beta + Z95 * se), "lower": beta - Z95 * se, "upper": beta + Z95 * se,
            "z": z, "p": 2 * norm.sf(np.abs(z)),
        }, index=pd.Index(x.columns, name="term"))
    centre = xa.mean(0)
    lp = (xa - centre) @ beta
    bt, bh = breslow_baseline(t, e, lp)
    model = FrozenCox(
        formula=formula, terms=design.terms, levels=design.levels,
        coefficients={c: float(b) for c, b in zip(x.columns, beta)},
        standard_errors={c: float(v) for c, v in summary["se"].items()},
        centre={c: float(m) for c, m in zip(x.columns, centre)},
        baseline_time=tuple(bt.tolist()), baseline_cumhaz=tuple(bh.tolist()),
        settings={"ties": "efron", "baseline": "breslow", "penalizer": penalizer, "penalize": penalize,
                  "l1_ratio": l1_ratio,
                  "penalty_scale": "standardised covariates", "time": time, "event": event, "n": int(len(t)),
                  "events": int(e.sum()), "variance": "cluster-robust" if cluster else "robust" if robust else
                  "model-based"},
    )
    return CoxFit(model, summary, float(concordance_index(t, -lp, e)), loglik, len(t), int(e.sum()))


def _fit_lifelines(x: pd.DataFrame, t: np.ndarray, e: np.ndarray, penalizer: np.ndarray, l1_ratio: float,
                   cluster: pd.Series | None) -> tuple[np.ndarray, np.ndarray, float]:
    """lifelines' fit, for the sandwich (robust / cluster-robust) standard errors and L1 penalties."""
    data = x.assign(__time=t, __event=e)
    if cluster is not None:
        data["__cluster"] = cluster.to_numpy()
    cph = CoxPHFitter(penalizer=penalizer if penalizer.any() else 0.0, l1_ratio=l1_ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph.fit(data, "__time", "__event", robust=True, cluster_col="__cluster" if cluster is not None else None)
    return cph.params_.to_numpy(), cph.standard_errors_.to_numpy(), float(cph.log_likelihood_)


def efron_newton(x: np.ndarray, time: np.ndarray, event: np.ndarray, penalty: np.ndarray | None = None,
                 tol: float = 1e-10, max_iter: int = 50, start: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Maximise the Efron partial likelihood minus ``Σ n·penalty_j·β_j²/2`` by Newton–Raphson with step halving.

    ``penalty`` is per column on the original scale (lifelines' standardised penalty ``p`` is ``p·sd_j²``).
    Returns β, the information matrix (negative Hessian of the penalised log-likelihood) and the unpenalised
    log partial likelihood at β. ``start``: initial β (zero by default).
    """
    n, p = x.shape
    order = np.argsort(-time, kind="stable")  # descending: risk sets are prefixes
    x, t, e = x[order] - x.mean(0), time[order], event[order].astype(bool)
    pen = np.zeros(p) if penalty is None else n * np.asarray(penalty, float)
    # tie blocks among deaths: index of the last row with time >= t (prefix end), group sizes, position within
    dt = t[e]
    prefix_end = np.searchsorted(-t, -dt, side="right")  # rows with t_j >= t_death
    grp_start = np.r_[0, np.flatnonzero(np.diff(dt) != 0) + 1]
    grp_id = np.repeat(np.arange(grp_start.size), np.diff(np.r_[grp_start, dt.size]))
    d = np.bincount(grp_id)[grp_id].astype(float)
    frac = (np.arange(dt.size) - grp_start[grp_id]) / d
    xd = x[e]

    @np.errstate(over="ignore", invalid="ignore", divide="ignore")  # a diverging fit is caught below
    def evaluate(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        lp = x @ beta
        r = np.exp(lp - lp.max())
        s0 = np.cumsum(r)[prefix_end - 1]
        s1 = np.cumsum(r[:, None] * x, 0)[prefix_end - 1]
        s2 = np.cumsum(r[:, None, None] * x[:, :, None] * x[:, None, :], 0)[prefix_end - 1]
        rd = r[e]
        t0 = np.bincount(grp_id, rd)[grp_id]
        t1 = np.stack([np.bincount(grp_id, rd * xd[:, j], minlength=grp_start.size) for j in range(p)], 1)[grp_id]
        xx = rd[:, None, None] * xd[:, :, None] * xd[:, None, :]
        t2 = np.zeros((grp_start.size, p, p))
        np.add.at(t2, grp_id, xx)
        den = s0 - frac * t0
        m1 = (s1 - frac[:, None] * t1) / den[:, None]
        m2 = (s2 - frac[:, None, None] * t2[grp_id]) / den[:, None, None]
        ll = float(np.sum(lp[e] - lp.max() - np.log(den)))
        grad = xd.sum(0) - m1.sum(0)
        info = (m2 - m1[:, :, None] * m1[:, None, :]).sum(0)
        return ll, grad, info

    beta = np.zeros(p) if start is None else np.asarray(start, float).copy()
    ll, grad, info = evaluate(beta)
    obj = ll - 0.5 * np.sum(pen * beta ** 2)
    for _ in range(max_iter):
        step = np.linalg.solve(info + np.diag(pen), grad - pen * beta)
        for _ in range(30):  # step halving while the penalised likelihood does not improve
            new = beta + step
            ll_new, g_new, i_new = evaluate(new)
            obj_new = ll_new - 0.5 * np.sum(pen * new ** 2)
            if obj_new >= obj - 1e-12:
                break
            step /= 2
        else:
            if np.isnan(obj_new):  # 0/0 on every halving: the estimates diverge (separation)
                raise SurvivalDataError("Cox fit diverged (separation: a covariate predicts the events perfectly?)")
        converged = abs(obj_new - obj) < tol * max(1.0, abs(obj))
        beta, ll, grad, info, obj = new, ll_new, g_new, i_new, obj_new
        if converged:
            break
    else:
        raise SurvivalDataError(f"Cox fit did not converge in {max_iter} iterations (separation or collinearity?)")
    return beta, info + np.diag(pen), ll


def breslow_baseline(time: np.ndarray, event: np.ndarray, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow cumulative baseline hazard at lp = 0: distinct event times and H0 at each."""
    order = np.argsort(time, kind="stable")
    t, e, r = time[order], event[order], np.exp(lp[order])
    at_risk = np.cumsum(r[::-1])[::-1]  # Σ exp(lp) over t_j >= t_i (first index of each tie block)
    uniq, first = np.unique(t, return_index=True)
    deaths = np.add.reduceat(e, first)
    keep = deaths > 0
    return uniq[keep], np.cumsum(deaths[keep] / at_risk[first[keep]])


def partial_log_likelihood(time: np.ndarray, event: np.ndarray, lp: np.ndarray) -> float:
    """Breslow log partial likelihood of a linear predictor (for cross-validation)."""
    order = np.argsort(time, kind="stable")
    t, e, l_ = time[order], event[order], lp[order]
    log_at_risk = np.logaddexp.accumulate(l_[::-1])[::-1]
    block = np.searchsorted(t, t, side="left")  # first index of each row's tie block
    return float(np.sum(e * (l_ - log_at_risk[block])))


CHI2_95 = float(Z95 ** 2)  # 3.84: the 95 % profile-likelihood cut


class _Breslow:
    """Risk-set sums of a Cox model with Breslow ties, with the third moments that Firth's penalty needs.

    The distinct products ``1, x_j, x_j x_k (j ≤ k), x_j x_k x_r (j ≤ k ≤ r)`` of each row are formed once (the
    moments are symmetric, so the other orderings repeat them); an evaluation weights them by ``exp(lp)``, sums
    them within the blocks between consecutive event times and accumulates the block sums over the (descending)
    event times, so every risk-set sum comes from one pass."""

    def __init__(self, x: np.ndarray, time: np.ndarray, event: np.ndarray):
        order = np.argsort(-time, kind="stable")  # descending: risk sets are prefixes
        self.x, t, e = x[order] - x.mean(0), time[order], event[order].astype(bool)
        if not e.any():
            raise SurvivalDataError("no event: the Cox partial likelihood is constant")
        uniq = np.unique(t[e])[::-1]
        self.end = np.searchsorted(-t, -uniq, side="right")  # rows with t_j >= t_event
        self.d = np.array([np.sum(e & (t == u)) for u in uniq], float)
        self.xsum = self.x[e].sum(0)
        n, p = self.x.shape
        self.pairs = np.array(list(combinations_with_replacement(range(p), 2)), int).reshape(-1, 2).T
        self.triples = np.array(list(combinations_with_replacement(range(p), 3)), int).reshape(-1, 3).T
        self.pair_of = np.empty((p, p), int)  # index of (j, k) among the distinct pairs, any order
        self.pair_of[self.pairs[0], self.pairs[1]] = self.pair_of[self.pairs[1], self.pairs[0]] = \
            np.arange(self.pairs.shape[1])
        self.triple_of = np.empty((p, p, p), int)
        for perm in permutations(range(3)):
            self.triple_of[tuple(self.triples[list(perm)])] = np.arange(self.triples.shape[1])
        j, k, r = self.triples
        self.split = (self.pair_of[j, k], self.pair_of[j, r], self.pair_of[k, r])  # E[xj xk], E[xj xr], E[xk xr]
        xt = self.x
        self.products = np.concatenate([np.ones((n, 1)), xt, xt[:, self.pairs[0]] * xt[:, self.pairs[1]],
                                        xt[:, j] * xt[:, k] * xt[:, r]], 1)[:self.end[-1]]
        self.blocks = np.r_[0, self.end[:-1]]  # first row of each block between consecutive event times

    def evaluate(self, beta: np.ndarray, third: bool = True
                 ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
        """Log partial likelihood, score, information and (``third``) ∂I/∂β_r stacked on the last axis."""
        x = self.x
        p, n2 = x.shape[1], self.pairs.shape[1]
        lp = x @ beta
        shift = lp.max()
        w = np.exp(lp - shift)
        ncol = 1 + p + n2 + (self.triples.shape[1] if third else 0)
        sums = np.cumsum(np.add.reduceat(w[:self.end[-1], None] * self.products[:, :ncol], self.blocks, 0), 0)
        s0 = sums[:, :1]
        m1 = sums[:, 1:1 + p] / s0
        m2 = sums[:, 1 + p:1 + p + n2] / s0
        d = self.d
        ll = float(self.xsum @ beta - np.sum(d * (np.log(s0[:, 0]) + shift)))
        score = self.xsum - d @ m1
        info = (d @ (m2 - m1[:, self.pairs[0]] * m1[:, self.pairs[1]]))[self.pair_of]
        if not third:
            return ll, score, info, None
        m3 = sums[:, 1 + p + n2:] / s0
        j, k, r = self.triples
        jk, jr, kr = self.split
        # third central moment: E[xj xk xr] − E[xj xk]E[xr] − E[xj xr]E[xk] − E[xj]E[xk xr] + 2 E[xj]E[xk]E[xr]
        c3 = (m3 - m2[:, jk] * m1[:, r] - m2[:, jr] * m1[:, k] - m1[:, j] * m2[:, kr]
              + 2 * m1[:, j] * m1[:, k] * m1[:, r])
        return ll, score, info, (d @ c3)[self.triple_of]


@dataclass(frozen=True)
class FirthTerm:
    """One coefficient of a Firth fit: estimate, Wald SE from the penalised information, profile penalised
    likelihood 95 % interval and penalised likelihood-ratio p-value."""

    coef: float
    se: float
    lower: float
    upper: float
    p: float


def firth_cox(x: np.ndarray, time: np.ndarray, event: np.ndarray, profile: list[int] | None = None,
              tol: float = 1e-8, max_iter: int = 100, max_step: float = 0.5) -> tuple[np.ndarray, list[FirthTerm]]:
    """Cox regression with Firth's penalised partial likelihood (Heinze & Schemper, Stat Med 2001;21:2409;
    R ``coxphf``): maximise ``l(β) + ½ log|I(β)|`` (Breslow ties, as coxphf). The estimates are finite under
    monotone likelihood (separation). Confidence intervals and p-values come from the profile penalised
    likelihood (``profile``: indices of the columns to profile; all when None); NaN bounds where the profile does
    not fall by χ²₁(0.95)/2 within |β| ≤ 20. Returns β and one :class:`FirthTerm` per profiled column."""
    rs = _Breslow(np.asarray(x, float), np.asarray(time, float), np.asarray(event))
    p = rs.x.shape[1]
    beta, obj = _firth_maximise(rs, np.zeros(p), np.ones(p, bool), tol, max_iter, max_step)
    info = rs.evaluate(beta, third=False)[2]
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    terms = []
    for j in (range(p) if profile is None else profile):
        free = np.ones(p, bool)
        free[j] = False

        def drop(b: float, j: int = j, free: np.ndarray = free) -> float:
            start = beta.copy()
            start[j] = b
            return 2 * (obj - _firth_maximise(rs, start, free, tol, max_iter, max_step)[1])

        bounds = []
        for sign in (-1, 1):
            step, lo, hi = max(2 * se[j], 0.5), beta[j], np.nan
            while abs(beta[j] + sign * step) <= 20:
                if drop(beta[j] + sign * step) >= CHI2_95:
                    hi = beta[j] + sign * step
                    break
                lo, step = beta[j] + sign * step, 2 * step
            bounds.append(np.nan if np.isnan(hi) else
                          brentq(lambda b: drop(b) - CHI2_95, *sorted((lo, hi)), xtol=1e-6))
        terms.append(FirthTerm(float(beta[j]), float(se[j]), float(bounds[0]), float(bounds[1]),
                               float(chi2.sf(max(drop(0.0), 0.0), 1))))
    return beta, terms


def _firth_maximise(rs: _Breslow, beta: np.ndarray, free: np.ndarray, tol: float, max_iter: int, max_step: float
                    ) -> tuple[np.ndarray, float]:
    """Newton–Raphson on the modified score U*(β) = U + ½ tr(I⁻¹ ∂I/∂β_r) over the ``free`` coordinates, with
    step halving on the penalised log-likelihood (Heinze & Schemper's algorithm)."""
    beta = beta.astype(float).copy()

    def penalised(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        ll, score, info, dinfo = rs.evaluate(b)
        sign, logdet = np.linalg.slogdet(info)
        inv = np.linalg.inv(info)
        return ll + 0.5 * logdet if sign > 0 else -np.inf, score + 0.5 * np.einsum("ij,jir->r", inv, dinfo), info

    obj, ustar, info = penalised(beta)
    for _ in range(max_iter):
        step = np.zeros_like(beta)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], ustar[free])
        big = np.abs(step).max(initial=0.0)
        if big > max_step:
            step *= max_step / big
        for _ in range(30):
            new_obj, new_u, new_info = penalised(beta + step)
            if new_obj >= obj - 1e-12:
                break
            step /= 2
        beta, gain = beta + step, new_obj - obj
        obj, ustar, info = new_obj, new_u, new_info
        if abs(gain) < tol and np.abs(ustar[free]).max(initial=0.0) < 1e-5:
            break
    else:
        raise SurvivalDataError(f"Firth Cox fit did not converge in {max_iter} iterations")
    return beta, float(obj)


WALD = "Cox partial likelihood (Efron ties), Wald 95 % CI"
FIRTH = ("Firth's penalised Cox likelihood (Heinze & Schemper 2001; Breslow ties, as R coxphf), profile "
         "penalised likelihood 95 % CI and likelihood-ratio p: monotone likelihood (separation) in the ordinary fit")
SEPARATED = 10.0  # SE·SD beyond this: the information has vanished along a coefficient
STILL_MOVING = 0.05  # a further Newton step of this many SDs' worth of log-HR: the estimate has not converged


def diverging(x: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray, se: np.ndarray) -> bool:
    """Monotone likelihood (Heinze & Schemper 2001: the likelihood converges while an estimate diverges): at the
    "converged" ordinary estimate, one more Newton step still moves a coefficient by a sizeable amount (a true
    maximum moves by ~0), or a standard error has blown up, or an estimate is not finite."""
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(se))):
        return True
    sd = x.std(0, ddof=1)
    if np.any(se * sd > SEPARATED):
        return True
    try:
        further = efron_newton(x, time, event, tol=np.inf, max_iter=1, start=beta)[0]
    except SurvivalDataError:
        return True
    return bool(np.any(np.abs(further - beta) * sd > STILL_MOVING))


def cox_terms(df: pd.DataFrame, time: str, event: str, formula: str, terms: list[str] | None = None,
              source: str = "data") -> list[dict]:
    """Rows (term, coef, se, hr, lower, upper, p, method) of ``terms`` (all when None), every number finite.

    The ordinary Cox fit where it converges to finite estimates; under monotone likelihood (separation, by
    :func:`diverging`) :func:`firth_cox` with profile penalised likelihood intervals; where neither
    can give an estimate (a column that does not vary, collinear columns, a profile that never falls), the row has
    ``None`` numbers and ``not_estimable`` with the reason."""
    design = make_design(df, formula, source)
    x = design.matrix(df, source)
    names = list(x.columns) if terms is None else list(terms)

    def missing(reason: str) -> list[dict]:
        return [not_estimable_row(k, reason) for k in names]

    xa = x.to_numpy(float)
    if len(xa) < 2:  # no model on fewer than two patients (np.ptp of an empty column raises)
        return missing(f"{len(df)} patient(s) only")
    constant = [c for c in x.columns if np.ptp(xa[:, list(x.columns).index(c)]) == 0]
    if constant:
        return missing(f"{', '.join(constant)} does not vary among the {len(df)} patients")
    if np.linalg.matrix_rank(xa - xa.mean(0)) < xa.shape[1]:
        return missing(f"the columns of {formula} are collinear (one is determined by the others)")
    t, e = survival_outcome(df, time, event, source)
    if not e.any():
        return missing(f"no event among the {len(df)} patients")
    try:
        fit = fit_cox(df, time, event, formula, source=source, design=design)
        s = fit.summary
        separated = diverging(xa, t, e, s["coef"].to_numpy(), s["se"].to_numpy())
    except (SurvivalDataError, np.linalg.LinAlgError):  # diverged, did not converge or singular: monotone likelihood
        separated = True
    if not separated:
        return [{"term": k, **{c: float(s.loc[k, c]) for c in ("coef", "se", "hr", "p")},
                 "lower": float(s.loc[k, "hr_lower"]), "upper": float(s.loc[k, "hr_upper"]), "method": WALD}
                for k in names]
    try:
        _, fterms = firth_cox(xa, t, e, [list(x.columns).index(k) for k in names])
    except (SurvivalDataError, np.linalg.LinAlgError) as exc:
        return missing(f"monotone likelihood (separation) and the Firth fit failed: {exc}")
    rows = []
    for k, f in zip(names, fterms):
        if not (np.isfinite(f.lower) and np.isfinite(f.upper)):
            rows.append(not_estimable_row(k, "monotone likelihood (separation): the profile penalised likelihood "
                                             "does not fall enough within |log HR| ≤ 20 for a 95 % interval"))
            continue
        rows.append({"term": k, "coef": f.coef, "se": f.se, "hr": float(np.exp(f.coef)),
                     "lower": float(np.exp(f.lower)), "upper": float(np.exp(f.upper)), "p": f.p, "method": FIRTH})
    return rows


def not_estimable_row(term: str, reason: str) -> dict:
    """A result row without numbers (``None``, null in JSON) and the reason."""
    return {"term": term, "coef": None, "se": None, "hr": None, "lower": None, "upper": None, "p": None,
            "method": None, "not_estimable": reason}
