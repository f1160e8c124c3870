"""Survival modelling: Cox fits, benefit prediction, internal and external validation.

Modules: ``data`` (CSV/Parquet, formulas such as ``trt*(x1 + x2)``, design matrices, clear errors), ``cox`` (Efron
Cox fits matching R's coxph, the frozen JSON model), ``internal`` (PATH risk/effect pipelines, Harrell bootstrap
optimism), ``external`` (validation metrics with bootstrap CIs), ``calibration`` (Kaplan–Meier, Austin flexible
calibration), ``decision`` (net benefit, treatment-selection curves), ``benefit`` (per-patient benefit, IPCW
c-for-benefit, E-for-benefit, calibration of benefit), ``objectives`` (the study's five analyses), ``samplesize``
(Riley), ``power`` (simulated power), ``propensity`` (weights, balance), ``imputation`` (MICE, Rubin),
``multiplicity`` (Holm, BH), ``sensitivity`` (alternative analyses) and ``appraisal`` (what the study can show);
bootstraps and simulations fan out through :mod:`sonimage.parallel` (any ``submit``-style executor).
"""
