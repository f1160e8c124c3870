"""General survival methods, independent of any one study: Cox fits, benefit prediction, validation.

Modules: ``data`` (CSV/Parquet, formulas such as ``trt*(x1 + x2)``, design matrices, clear errors), ``cox`` (Efron
Cox fits matching R's coxph, the frozen JSON model), ``internal`` (PATH risk/effect pipelines, Harrell bootstrap
optimism), ``external`` (validation metrics with bootstrap CIs), ``calibration`` (Kaplan–Meier, Austin flexible
calibration), ``decision`` (net benefit, treatment-selection curves), ``benefit`` (per-patient benefit, IPCW
c-for-benefit, E-for-benefit, calibration of benefit), ``samplesize`` (Riley), ``power`` (simulated power),
``propensity`` (weights, balance), ``imputation`` (MICE, Rubin) and ``multiplicity`` (Holm, BH); bootstraps and
simulations fan out through :mod:`sonimage.parallel` (any ``submit``-style executor). The study's own analysis
(objectives, appraisal, sensitivity analyses) is in :mod:`sonimage.analysis`.
"""
