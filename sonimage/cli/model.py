"""`sonimage model`: fit a Cox model on any table, validate a frozen model elsewhere, predict treatment benefit."""

from __future__ import annotations

import argparse
from pathlib import Path

# The statistics stack (lifelines, scikit-survival) is imported inside each command, so that every other
# `sonimage` command starts without it.


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def register(sub: argparse._SubParsersAction) -> None:
    """Add `model fit`, `model validate`, `model benefit` and `model samplesize`."""
    p = sub.add_parser("model", help="Cox models: fit, validate a frozen model, predict benefit (CSV or Parquet)")
    msub = p.add_subparsers(dest="model_command", required=True)

    f = msub.add_parser("fit", help="fit a Cox model (Efron ties) and write it as a frozen JSON model")
    f.add_argument("--data", required=True, type=Path, help="development table (.csv or .parquet)")
    f.add_argument("--time", required=True, help="follow-up time column")
    f.add_argument("--event", required=True, help="event column (1 event, 0 censored)")
    f.add_argument("--formula", required=True, help='right-hand side, e.g. "age + trt*(x1 + x2)"')
    f.add_argument("--penalizer", type=_floats, default=[0.0],
                   help="L2 penalty on standardised coefficients; a comma list is tuned by cross-validation")
    f.add_argument("--penalize", choices=("all", "interactions"), default="all", help="which terms are penalised")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds for penalty tuning")
    f.add_argument("--out", required=True, type=Path, help="model JSON to write")
    f.set_defaults(func=_fit)

    v = msub.add_parser("validate", help="external validation metrics of a frozen model, with bootstrap CIs")
    v.add_argument("--model", required=True, type=Path, help="frozen model JSON written by `sonimage model fit`")
    v.add_argument("--data", required=True, type=Path, help="validation table (.csv or .parquet) with the model's "
                   "covariates")
    v.add_argument("--time", required=True, help="follow-up time column")
    v.add_argument("--event", required=True, help="event column (1 event, 0 censored)")
    v.add_argument("--horizon", required=True, type=float, help="prediction horizon, in the time column's unit")
    v.add_argument("--treatment", help="treatment column (0/1): adds c-for-benefit and calibration of benefit")
    v.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for the CIs")
    v.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")
    v.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    v.set_defaults(func=_validate)

    b = msub.add_parser("benefit", help="per-row predicted survival under each arm and the difference")
    b.add_argument("--model", required=True, type=Path, help="frozen model JSON with a treatment interaction")
    b.add_argument("--data", required=True, type=Path, help="table (.csv or .parquet) of the patients to predict for")
    b.add_argument("--treatment", required=True, help="treatment column of the model (0 = control, 1 = treated)")
    b.add_argument("--horizon", required=True, type=_floats, help="one horizon or a comma list")
    b.add_argument("--keep", nargs="*", default=[], help="columns copied to the output (e.g. subject_id)")
    b.add_argument("--out", required=True, type=Path, help="Parquet file to write")
    b.set_defaults(func=_benefit)

    s = msub.add_parser("samplesize", help="Riley et al. minimum sample size for a survival model (pmsampsize)")
    r2 = s.add_mutually_exclusive_group(required=True)
    r2.add_argument("--r2", type=float, help="anticipated (optimism-adjusted) Cox-Snell R-squared")
    r2.add_argument("--c", type=float, help="anticipated C-statistic, converted to Cox-Snell R-squared")
    s.add_argument("--parameters", required=True, type=int, help="candidate predictor parameters")
    s.add_argument("--rate", required=True, type=float, help="overall event rate per unit of time")
    s.add_argument("--timepoint", required=True, type=float, help="prediction horizon (same unit)")
    s.add_argument("--meanfup", required=True, type=float, help="mean follow-up (same unit)")
    s.add_argument("--shrinkage", type=float, default=0.9, help="targeted expected shrinkage (default 0.9)")
    s.add_argument("--available", type=int, help="patients available, compared with the minimum")
    s.add_argument("--out", type=Path, help="JSON file to write")
    s.set_defaults(func=_samplesize)


def _fit(args: argparse.Namespace) -> int:
    from sonimage.survival.cox import fit_cox
    from sonimage.survival.data import read_table
    from sonimage.survival.internal import EffectModel

    df = read_table(args.data)
    src = str(args.data)
    if len(args.penalizer) > 1:
        model = EffectModel(args.formula, args.time, args.event, tuple(args.penalizer), args.penalize,
                            args.folds).fit(df)
        print(f"penalizer chosen by {args.folds}-fold CV: {model.settings['penalizer']}")
    else:
        fit = fit_cox(df, args.time, args.event, args.formula, args.penalizer[0], source=src, penalize=args.penalize)
        model = fit.model
        print(fit.summary[["coef", "se", "hr", "hr_lower", "hr_upper", "p"]].round(4).to_string())
        print(f"n = {fit.n}, events = {fit.events}, Harrell C = {fit.concordance:.4f}")
    model.save(args.out)
    print(f"wrote {args.out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from sonimage.survival.benefit import benefit_validation
    from sonimage.io import write_json_atomic
    from sonimage.survival.cox import FrozenCox
    from sonimage.survival.data import read_table
    from sonimage.survival.external import validate

    model = FrozenCox.load(args.model)
    df = read_table(args.data)
    src = str(args.data)
    metrics = validate(model, df, args.time, args.event, args.horizon, args.bootstrap, args.seed, source=src)
    if args.treatment:
        metrics["benefit"] = benefit_validation(model, df, args.time, args.event, args.treatment, args.horizon,
                                                source=src, n_boot=args.bootstrap, seed=args.seed)
    write_json_atomic(metrics, args.out)
    for k in ("harrell_c", "uno_c", "auc", "oe_ratio", "calibration_slope", "ici", "e50", "e90", "brier", "ipa"):
        m = metrics[k]
        ci = f"95 % CI {m['lower']:.4f} to {m['upper']:.4f}" if m["lower"] is not None else m["ci_note"]
        print(f"{k:18s} {m['estimate']:.4f}  ({ci})")
    print(f"wrote {args.out}")
    return 0


def _benefit(args: argparse.Namespace) -> int:
    import pandas as pd

    from sonimage.survival.benefit import predict_benefit
    from sonimage.survival.cox import FrozenCox
    from sonimage.survival.data import read_table
    from sonimage.tables.parquet import write_table

    model = FrozenCox.load(args.model)
    df = read_table(args.data)
    out = predict_benefit(model, df, args.treatment, args.horizon, source=str(args.data))
    if args.keep:
        missing = [c for c in args.keep if c not in df.columns]
        if missing:
            raise ValueError(f"{args.data}: unknown column(s) {missing} in --keep")
        out = pd.concat([df[args.keep], out], axis=1)
    write_table(out, args.out)
    print(f"wrote {args.out} ({len(out)} rows)")
    return 0


def _samplesize(args: argparse.Namespace) -> int:
    from sonimage.io import write_json_atomic
    from sonimage.survival.samplesize import r2_cs_from_c, survival_sample_size

    r2 = args.r2
    if r2 is None:
        r2 = r2_cs_from_c(args.c, args.rate * args.meanfup)
        print(f"C = {args.c} -> Cox-Snell R2 = {r2:.4f} (Riley et al. BMJ 2020 approximation)")
    res = survival_sample_size(r2, args.parameters, args.rate, args.timepoint, args.meanfup, args.shrinkage)
    rows = [("Criterion 1: shrinkage", res.n_shrinkage), ("Criterion 2: optimism in Nagelkerke R2", res.n_optimism),
            ("Criterion 3: overall risk within +/- 0.05", res.n_precise_risk), ("pmsampsize final", res.n_pmsampsize),
            ("Minimum n (all criteria)", res.n_final)]
    for label, n in rows:
        print(f"{label:42s} {n:7d}   EPP {n * args.rate * args.meanfup / args.parameters:6.2f}")
    lo, est, hi = res.risk_ci_at_final
    print(f"overall risk at {args.timepoint:g}: {est:.3f} (95 % CI {lo:.3f} to {hi:.3f}) at n = {res.n_final}")
    out = res.to_dict()
    if args.available:
        out["available"] = args.available
        print(f"available: {args.available} ({'meets' if args.available >= res.n_final else 'below'} the minimum)")
    if args.out:
        write_json_atomic(out, args.out)
        print(f"wrote {args.out}")
    return 0
