"""Model-building pipelines (PATH risk and effect modelling) and Harrell's bootstrap optimism correction.

A pipeline is a frozen recipe: ``fit(df)`` runs every data-driven step (penalty tuning included) and returns a
:class:`FrozenCox`. The bootstrap refits the whole recipe on each resample, so tuning is validated too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sonimage.parallel import Executor, chunks, parallel_map
from sonimage.survival.calibration import calibration_slope
from sonimage.survival.cox import FrozenCox, breslow_baseline, fit_cox, partial_log_likelihood
from sonimage.survival.data import make_design, parse_formula, survival_outcome
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
        """The penalizer with the highest cross-validated partial log-likelihood.

        A fold whose training part leaves a design column constant (small samples: an interaction with a rare
        level) cannot score any penalizer and is skipped; a penalizer whose fit fails on a fold (collinear
        columns, typically unpenalised) cannot be chosen; with no usable fold the largest penalizer is taken.
        """
        if len(self.penalizers) == 1:
            return float(self.penalizers[0])
        t, e = survival_outcome(df, self.time, self.event)
        design = make_design(df, self.formula)
        x = design.matrix(df).to_numpy(float)
        fold = np.random.default_rng(self.seed).permutation(len(df)) % self.folds
        scores = np.zeros(len(self.penalizers))
        usable = 0
        for k in range(self.folds):
            train = fold != k
            if (np.ptp(x[train], axis=0) == 0).any():
                continue
            usable += 1
            for i, pen in enumerate(self.penalizers):
                try:
                    m = fit_cox(df[train], self.time, self.event, self.formula, pen, design=design,
                                penalize=self.penalize).model
                except (np.linalg.LinAlgError, ValueError):  # collinear in this fold: not a usable penalty
                    scores[i] = -np.inf
                    continue
                lp = m.linear_predictor(df)
                scores[i] += partial_log_likelihood(t, e, lp) - partial_log_likelihood(t[train], e[train], lp[train])
        if usable == 0 or not np.isfinite(scores).any():
            return float(max(self.penalizers))
        return float(self.penalizers[int(np.argmax(scores))])

    def fit(self, df: pd.DataFrame) -> FrozenCox:
        pen = self.tune(df)
        m = fit_cox(df, self.time, self.event, self.formula, pen, penalize=self.penalize).model
        settings = {**m.settings, "approach": "effect modelling (PATH)", "penalizer_grid": list(self.penalizers),
                    "tuning": f"{self.folds}-fold cross-validated partial likelihood"}
        return replace(m, settings=settings)


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


def _performance(model: FrozenCox, df: pd.DataFrame, time: str, event: str) -> tuple[float, float]:
    t, e = survival_outcome(df, time, event)
    lp = model.linear_predictor(df)
    return harrell_c(t, e, lp), calibration_slope(t, e, lp)["estimate"]


def _optimism_chunk(replicates: range, pipeline, df: pd.DataFrame, seed: int) -> list[tuple[float, ...]]:
    out = []
    for b in replicates:
        idx = np.random.default_rng([seed, b]).integers(0, len(df), len(df))
        boot = df.iloc[idx].reset_index(drop=True)
        try:
            m = pipeline.fit(boot)
        except ValueError:  # e.g. a resample where a covariate does not vary
            continue
        out.append(_performance(m, boot, pipeline.time, pipeline.event) + _performance(m, df, pipeline.time,
                                                                                       pipeline.event))
    return out


def bootstrap_optimism(pipeline: EffectModel | RiskModel, df: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                       executor: Executor | None = None, n_chunks: int = 16) -> dict:
    """Harrell's optimism-corrected C and calibration slope; the corrected slope is the shrinkage factor."""
    model = pipeline.fit(df)
    app_c, app_slope = _performance(model, df, pipeline.time, pipeline.event)
    rows = [r for part in parallel_map(_optimism_chunk, chunks(n_boot, n_chunks), executor, pipeline, df, seed)
            for r in part]
    r = np.array(rows, float).reshape(-1, 4)
    opt_c, opt_slope = float(np.mean(r[:, 0] - r[:, 2])), float(np.mean(r[:, 1] - r[:, 3]))
    return {
        "apparent": {"harrell_c": app_c, "calibration_slope": app_slope},
        "optimism": {"harrell_c": opt_c, "calibration_slope": opt_slope},
        "corrected": {"harrell_c": app_c - opt_c, "calibration_slope": app_slope - opt_slope},
        "shrinkage": app_slope - opt_slope,
        "bootstrap_replicates": int(n_boot), "bootstrap_used": int(len(r)),
        "method": "Harrell bootstrap optimism: whole pipeline (incl. penalty tuning) refitted per resample",
    }
