"""Penalty tuning on a small cohort where some cross-validation folds leave a design column constant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonimage.survival.internal import EffectModel


def test_tuning_skips_folds_without_the_rare_level() -> None:
    rng = np.random.default_rng(3)
    n = 24
    df = pd.DataFrame({"time": rng.exponential(12, n), "event": rng.integers(0, 2, n) | (np.arange(n) < 12),
                       "trt": np.arange(n) % 2, "x": rng.normal(size=n), "rare": 0})
    df.loc[[1, 2], "rare"] = 1  # one treated, one untreated: folds without patient 1 have a constant trt:rare
    model = EffectModel("trt*(x + rare)", "time", "event", penalizers=(0.0, 0.5, 2.0), folds=4)
    pen = model.tune(df)
    assert pen in (0.0, 0.5, 2.0)
    fitted = model.fit(df)
    assert set(fitted.coefficients) >= {"trt", "x", "rare", "trt:x", "trt:rare"}
    assert all(np.isfinite(v) for v in fitted.coefficients.values())
