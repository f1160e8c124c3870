"""Model-building pipelines (PATH risk and effect modelling) and Harrell's bootstrap optimism correction.

A pipeline is a frozen recipe: ``fit(df)`` runs every data-driven step (penalty tuning included) and returns a
:class:`FrozenCox`. The bootstrap refits the whole recipe on each resample, so tuning is validated too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sonimage.parallel import Executor, chunks, parallel_map
from sonimage.survival.benefit import BENEFIT_METRICS, benefit_metrics, predict_benefit
from sonimage.survival.calibration import calibration_slope
from sonimage.survival.cox import FrozenCox, breslow_baseline, efron_newton, fit_cox, partial_log_likelihood
from sonimage.survival.data import SurvivalDataError, make_design, parse_formula, survival_outcome
from sonimage.survival.external import harrell_c


@dataclass(frozen=True)
class EffectModel:
    """Effect modelling: treatment × covariate interactions, penalised (interactions only), penalty tuned by
    cross-validated partial likelihood (Verweij & van Houwelingen 1993) over ``penalizers``."""

    formula: str
    time: str
    event: str
    penalizers: tuple[float, ...] = (0.0,)
    penalize: str = "interactions"
    folds: int = 5
    seed: int = 0

    def tune(self, df: pd.DataFrame) -> float:
        """The penalizer with the highest cross-validated partial log-likelihood (see :meth:`cv_scores`)."""
        return self.cv_scores(df)[0]

    def cv_scores(self, df: pd.DataFrame) -> tuple[float, list[float]]:
        """The chosen penalizer and the cross-validated partial log-likelihood of every grid value.

        A fold whose training part is empty or leaves a design column constant (small samples: fewer patients
        than folds, an interaction with a rare level) cannot score any penalizer and is skipped; a penalizer whose
        fit fails on a fold (collinear columns, typically unpenalised) cannot be chosen; with no usable fold the
        largest penalizer is taken.
        """
        if len(self.penalizers) == 1:
            return float(self.penalizers[0]), [float("nan")]
        t, e = survival_outcome(df, self.time, self.event)
        design = make_design(df, self.formula)
        x = design.matrix(df)
        mask = np.array([self.penalize == "all" or ":" in c for c in x.columns], float)
        x = x.to_numpy(float)
        fold = np.random.default_rng(self.seed).permutation(len(df)) % self.folds
        scores = np.zeros(len(self.penalizers))
        usable = 0
        for k in range(self.folds):
            train = fold != k
            if train.sum() < 2 or (np.ptp(x[train], axis=0) == 0).any():  # fewer patients than folds: empty
                continue
            usable += 1
            scale = mask * x[train].std(0, ddof=1) ** 2  # as fit_cox: penalty on standardised coefficients
            for i, pen in enumerate(self.penalizers):
                if not np.isfinite(scores[i]):
                    continue
                try:
                    beta = efron_newton(x[train], t[train], e[train], pen * scale)[0]
                except (np.linalg.LinAlgError, ValueError):  # collinear in this fold: not a usable penalty
                    scores[i] = -np.inf
                    continue
                lp = x @ beta  # the partial likelihood ignores the centring constant
                scores[i] += partial_log_likelihood(t, e, lp) - partial_log_likelihood(t[train], e[train], lp[train])
        if usable == 0 or not np.isfinite(scores).any():
            return float(max(self.penalizers)), [float("nan")] * len(self.penalizers)
        return float(self.penalizers[int(np.argmax(scores))]), scores.tolist()

    def fit(self, df: pd.DataFrame) -> FrozenCox:
        check_hierarchy(self.formula)
        pen, scores = self.cv_scores(df)
        m = fit_cox(df, self.time, self.event, self.formula, pen, penalize=self.penalize).model
        grid = sorted(self.penalizers)
        edge = None
        if len(grid) > 1 and pen == grid[-1]:
            edge = "largest"
        elif len(grid) > 1 and pen == grid[0]:
            edge = "smallest"
        settings = {**m.settings, "approach": "effect modelling (PATH)", "penalizer_grid": list(self.penalizers),
                    "cv_partial_loglik": scores, "penalizer_at_edge": edge,
                    "tuning": f"{self.folds}-fold cross-validated partial likelihood"}
        return replace(m, settings=settings)


def log_penalty_path(smallest: float = 1e-3, largest: float = 100.0, per_decade: int = 2,
                     with_zero: bool = True) -> tuple[float, ...]:
    """A log-spaced penalty grid (as glmnet's λ path), optionally with 0 (no penalty) in front.

    The default spans five decades so that the cross-validated choice is rarely at an edge; when it is, the
    fitted model says so (``penalizer_at_edge``).
    """
    k = int(round(np.log10(largest / smallest) * per_decade)) + 1
    path = tuple(float(f"{v:.3g}") for v in np.logspace(np.log10(smallest), np.log10(largest), k))
    return ((0.0,) if with_zero else ()) + path


@dataclass(frozen=True)
class RiskModel:
    """Risk modelling (PATH): a prognostic index fitted blinded to treatment, then treatment × index.

    The result is re-expressed as one frozen Cox model on the original columns (``treatment*(prognostic)``),
    so it is applied and validated like any other.
    """

    prognostic_formula: str
    treatment: str
    time: str
    event: str

    def fit(self, df: pd.DataFrame) -> FrozenCox:
        stage1 = fit_cox(df, self.time, self.event, self.prognostic_formula).model
        pi = stage1.linear_predictor(df)
        d2 = pd.DataFrame({"trt": df[self.treatment].to_numpy(float), "pi": pi,
                           "t": df[self.time].to_numpy(), "e": df[self.event].to_numpy()})
        g = fit_cox(d2, "t", "e", "trt*pi").model.coefficients
        terms = parse_formula(f"{self.treatment}*({' + '.join(stage1.terms)})")
        coefs, centre = {self.treatment: g["trt"]}, {}
        # lp2 = g_trt·trt + g_pi·Σβ(x−c) + g_int·trt·Σβ(x−c): expand into columns x and trt:x
        for col, b in stage1.coefficients.items():
            coefs[col] = g["pi"] * b
            coefs[f"{self.treatment}:{col}"] = g["trt:pi"] * b
            coefs[self.treatment] -= g["trt:pi"] * b * stage1.centre[col]
            centre[col], centre[f"{self.treatment}:{col}"] = stage1.centre[col], 0.0
        centre[self.treatment] = 0.0
        model = FrozenCox(
            formula=f"{self.treatment}*({self.prognostic_formula})", terms=tuple(terms), levels=stage1.levels,
            coefficients=coefs, standard_errors={}, centre=centre, baseline_time=(0.0,), baseline_cumhaz=(0.0,),
            settings={**stage1.settings, "approach": "risk modelling (PATH)", "prognostic_index": stage1.coefficients,
                      "stage2": {"treatment": g["trt"], "index": g["pi"], "treatment:index": g["trt:pi"]}},
        )
        t, e = survival_outcome(df, self.time, self.event)
        bt, bh = breslow_baseline(t, e, model.linear_predictor(df))
        return replace(model, baseline_time=tuple(bt), baseline_cumhaz=tuple(bh))


def effect_formula(treatment: str, modifiers: list[str], prognostic: str) -> str:
    """An effect-model formula that keeps every risk-model covariate and the main effect of each modifier:
    ``prognostic covariates + treatment*(modifiers)`` (PATH: interactions never without their main effects)."""
    main = list(dict.fromkeys([*parse_formula(prognostic), *modifiers]))
    return f"{' + '.join(main)} + {treatment}*({' + '.join(modifiers)})"


def check_hierarchy(formula: str) -> None:
    """Raise when an interaction's variable has no main-effect term (a model PATH and TRIPOD would reject)."""
    terms = parse_formula(formula)
    missing = sorted({v for t in terms if ":" in t for v in t.split(":")} - set(terms))
    if missing:
        raise SurvivalDataError(f"formula {formula!r}: interaction(s) without the main effect of {missing}")


def _performance(model: FrozenCox, df: pd.DataFrame, time: str, event: str, benefit: BenefitSpec | None
                 ) -> list[float]:
    t, e = survival_outcome(df, time, event)
    lp = model.linear_predictor(df)
    out = [harrell_c(t, e, lp), calibration_slope(t, e, lp)["estimate"]]
    if benefit is not None:
        arm = df[benefit.treatment].to_numpy(float)
        for h in benefit.horizons:
            ben = predict_benefit(model, df, benefit.treatment, [h])[f"benefit_{h:g}"].to_numpy()
            m = benefit_metrics(t, e, arm == 1, arm == 0, ben, h)
            out += [m[k] for k in BENEFIT_METRICS]
    return out


@dataclass(frozen=True)
class BenefitSpec:
    """Which column is the treatment (0/1) and at which horizons benefit metrics are optimism-corrected."""

    treatment: str
    horizons: tuple[float, ...] = (12.0, 24.0)

    def names(self) -> list[str]:
        return [f"{k}_{h:g}" for h in self.horizons for k in BENEFIT_METRICS]


def _optimism_chunk(replicates: range, pipeline, df: pd.DataFrame, seed: int, benefit: BenefitSpec | None
                    ) -> list[list[float]]:
    out = []
    for b in replicates:
        idx = np.random.default_rng([seed, b]).integers(0, len(df), len(df))
        boot = df.iloc[idx].reset_index(drop=True)
        try:
            m = pipeline.fit(boot)
            out.append(_performance(m, boot, pipeline.time, pipeline.event, benefit)
                       + _performance(m, df, pipeline.time, pipeline.event, benefit))
        except ValueError:  # e.g. a resample where a covariate does not vary or a fit diverges: not used
            continue
    return out


def bootstrap_optimism(pipeline: EffectModel | RiskModel, df: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                       executor: Executor | None = None, n_chunks: int = 16, benefit: BenefitSpec | None = None
                       ) -> dict:
    """Harrell's optimism-corrected C and calibration slope (the corrected slope is the shrinkage factor) and,
    with ``benefit``, of c-for-benefit and E-for-benefit at each horizon (Harrell, Lee & Mark 1996; for benefit
    metrics as in van Klaveren et al. 2018): optimism = mean over resamples of (performance of the resample's
    model on the resample − on the original data); percentile 95 % CIs of the corrected values are not
    defined by this procedure, so the bootstrap SD of the optimism is given instead.
    """
    model = pipeline.fit(df)
    names = ["harrell_c", "calibration_slope", *(benefit.names() if benefit else [])]
    apparent = _performance(model, df, pipeline.time, pipeline.event, benefit)
    rows = [r for part in parallel_map(_optimism_chunk, chunks(n_boot, n_chunks), executor, pipeline, df, seed,
                                       benefit) for r in part]
    r = np.array(rows, float).reshape(-1, 2 * len(names))
    k = len(names)
    diff = r[:, :k] - r[:, k:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every resample stays NaN
        optimism = np.nanmean(diff, axis=0) if len(r) else np.full(k, np.nan)
        spread = np.nanstd(diff, axis=0, ddof=1) if len(r) > 1 else np.full(k, np.nan)
    corrected = np.asarray(apparent) - optimism
    return {
        "apparent": dict(zip(names, map(float, apparent))),
        "optimism": dict(zip(names, map(float, optimism))),
        "optimism_sd": dict(zip(names, map(float, spread))),
        "corrected": dict(zip(names, map(float, corrected))),
        "shrinkage": float(corrected[1]),
        "bootstrap_replicates": int(n_boot), "bootstrap_used": int(len(r)),
        "method": "Harrell bootstrap optimism: whole pipeline (incl. penalty tuning) refitted per resample",
    }
