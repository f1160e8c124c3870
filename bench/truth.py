"""Truth benchmark: the lesion stage's FES reading and MTV against the synthetic study's ground truth.

Generates (once, reused on rerun) a synthetic cohort with ``sonimage synth``'s library function, converts it,
runs the library's lesion stages (registration, per-lesion PET features, delineations, FES evaluability) and
compares with ``truth/<cohort>/lesions.parquet``:

- lesion FES positivity (SUVmax ≥ 1.5) among lesions that are FES-evaluable in truth and read as evaluable;
- false-positive rate among truly FES-negative evaluable lesions (read positive / read at all), and how many
  such lesions the reading declared non-evaluable;
- per-patient pattern agreement (all positive / mixed / all negative / not evaluable);
- Pearson r of the image-derived and the true FES-positive fraction (Boers: over all lesions), patients
  FES-evaluable in both;
- the MTV error of every delineation method against the true (rendered) lesion volume.

    .venv/bin/python bench/truth.py [--patients 30] [--size full] [--seed 3] [--label after]

Prints a table and writes ``bench/results/truth-<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from sonimage.dicom.pseudonym import Pseudonymiser, read_linking
from sonimage.lesions import jobs as lesion_jobs
from sonimage.synth.study import generate_study
from sonimage.tables.lesion_match import lesion_number
from sonimage.tables.patients import FesRule, patient_metrics
from sonimage.volumes.convert import convert_tree

RESULTS = Path(__file__).parent / "results"
FAMILIES = ("pet",)  # the uptake and volume metrics only: texture is not what this benchmark measures


def _features(job, out: Path):
    return lesion_jobs.lesion_features(job, out, families=FAMILIES)


def run_stages(study: Path, out: Path, workers: int) -> tuple[pd.DataFrame, list[dict], list, dict[str, float]]:
    """Convert, register, extract; returns the lesion summary, registration records, raw results and timings."""
    times = {}
    t0 = time.perf_counter()
    pseudo = Pseudonymiser(b"bench", read_linking(study / "site-private" / "linking.csv"))
    with ProcessPoolExecutor(workers) as pool:
        if not (out / "manifest.parquet").exists():  # conversion does not change with the lesion stage: reused
            convert_tree(study / "dicom", out, pseudo, pool)
        times["convert_s"] = time.perf_counter() - t0
        scans, _ = lesion_jobs.patient_scans(pd.read_parquet(out / "manifest.parquet"))
        t0 = time.perf_counter()
        prepared = list(pool.map(lesion_jobs.prepare_patient, scans, [out] * len(scans)))
        times["prepare_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jobs = [j for batch, _ in prepared for j in batch]
        results = list(pool.map(_features, jobs, [out] * len(jobs), chunksize=8))
        times["features_s"] = time.perf_counter() - t0
    records = [r for _, r in prepared]
    if hasattr(lesion_jobs, "reading_tables"):  # the FES reading (absent before issue 7)
        return lesion_jobs.lesion_summary(results, lesion_jobs.reading_tables(records)["fes_reading"]), records, \
            results, times
    return lesion_jobs.lesion_summary(results), records, results, times


def with_lesion_id(summary: pd.DataFrame) -> pd.DataFrame:
    """The lesion summary with the truth's lesion number, read from the ROI name (the k-th ROI is not lesion k:
    readers miss lesions)."""
    return summary.assign(lesion_id=summary["roi"].map(lesion_number))


def lesion_agreement(summary: pd.DataFrame, truth: pd.DataFrame, rule: FesRule = FesRule()) -> dict:
    """Lesion-level FES positivity against truth."""
    both = with_lesion_id(summary).merge(truth.add_suffix("_true"), left_on=["patient", "lesion_id"],
                                         right_on=["subject_id_true", "lesion_id_true"])
    read_eval = both["fes_evaluable"].astype(bool) if "fes_evaluable" in both else \
        (both.organ != "liver") & both.fes_suvmax.notna()
    true_eval = both["fes_evaluable_true"].astype(bool)
    read_pos = rule.positive(both)
    true_pos = both["fes_positive_true"].astype(bool)
    scored = true_eval & read_eval
    neg = true_eval & ~true_pos
    return {
        "lesions": int(len(both)), "truly_evaluable": int(true_eval.sum()),
        "read_evaluable_of_truly_evaluable": int(scored.sum()),
        "read_evaluable_but_truly_not": int((read_eval & ~true_eval).sum()),
        "accuracy": float((read_pos[scored] == true_pos[scored]).mean()),
        "truly_negative_evaluable": int(neg.sum()),
        "negative_declared_not_evaluable": int((neg & ~read_eval).sum()),
        "false_positive": int((neg & read_eval & read_pos).sum()),
        "false_positive_rate": float((neg & read_eval & read_pos).sum() / max((neg & read_eval).sum(), 1)),
        "false_positive_rate_all_negatives": float((neg & read_eval & read_pos).sum() / max(neg.sum(), 1)),
        "truly_positive_evaluable": int((true_eval & true_pos).sum()),
        "false_negative": int((true_eval & true_pos & read_eval & ~read_pos).sum()),
        "positive_declared_not_evaluable": int((true_eval & true_pos & ~read_eval).sum()),
    }


def patient_agreement(summary: pd.DataFrame, truth_patients: pd.DataFrame, rule: FesRule = FesRule()) -> dict:
    """Pattern agreement and correlation of the FES-positive fraction."""
    metrics = patient_metrics(summary, rule).set_index("patient")
    t = truth_patients.set_index("subject_id").reindex(metrics.index)
    true_pattern = t["fes_pattern"]
    read = metrics["fes_pattern"]
    frac_read = pd.to_numeric(metrics["fes_positive_fraction"], errors="coerce")
    frac_true = t["fes_positive_fraction"].where(t["n_fes_evaluable"] > 0)
    ok = frac_read.notna() & frac_true.notna()
    table = pd.crosstab(true_pattern.rename("true"), read.rename("read"))
    return {
        "patients": int(len(metrics)),
        "pattern_agreement": float((read == true_pattern).mean()),
        "pattern_table": {f"{a} -> {b}": int(table.loc[a, b]) for a in table.index for b in table.columns
                          if table.loc[a, b]},
        "fraction_r": float(np.corrcoef(frac_read[ok], frac_true[ok])[0, 1]) if ok.sum() > 2 else float("nan"),
        "fraction_patients": int(ok.sum()),
        "fraction_mean_abs_error": float((frac_read[ok] - frac_true[ok]).abs().mean()),
        "not_evaluable_read": int((read == "not evaluable").sum()),
        "not_evaluable_true": int((true_pattern == "not evaluable").sum()),
    }


def mtv_errors(summary: pd.DataFrame, truth: pd.DataFrame, delineations: pd.DataFrame | None) -> list[dict]:
    """Relative MTV error (%) of every delineation method against the rendered lesion volume."""
    true = truth.set_index(["subject_id", "lesion_id"])["volume_ml"]
    ids = with_lesion_id(summary).set_index(["patient", "lesion"])["lesion_id"]
    rows = []
    if delineations is None or delineations.empty:
        methods = {"reader contour": summary.set_index(["patient", "lesion"])["fdg_mtv_ml"]}
    else:
        fdg = delineations[delineations.tracer == "FDG"]
        methods = {m: g.set_index(["patient", "lesion"])["mtv_ml"] for m, g in fdg.groupby("label")}
    for method, mtv in methods.items():
        ref = true.reindex(pd.MultiIndex.from_arrays([mtv.index.get_level_values(0),
                                                      ids.reindex(mtv.index).to_numpy()])).to_numpy()
        err = pd.Series(100.0 * (mtv.to_numpy() - ref) / ref)
        small = pd.Series(ref < 4.0)
        ok = err.notna()
        rows.append({"method": method, "n": int(ok.sum()), "median_error_pct": float(err[ok].median()),
                     "median_abs_error_pct": float(err[ok].abs().median()),
                     "p90_abs_error_pct": float(err[ok].abs().quantile(0.9)),
                     "median_abs_error_under_4ml_pct": float(err[ok & small].abs().median())})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patients", type=int, default=30)
    p.add_argument("--size", default="full", choices=["full", "small", "tiny"])
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--cohort", default="sonia")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--label", default="after", help="name of this run in the JSON file (e.g. before / after)")
    p.add_argument("--data", type=Path, default=RESULTS / "data", help="where the study and outputs are kept")
    args = p.parse_args()

    study = args.data / f"study-{args.cohort}-{args.size}-{args.patients}-s{args.seed}"
    out = args.data / f"out-{args.cohort}-{args.size}-{args.patients}-s{args.seed}"
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        generate_study(study, cohorts=(args.cohort,), n_patients=args.patients, size=args.size, seed=args.seed,
                       workers=pool)
    gen_s = time.perf_counter() - t0
    summary, records, results, times = run_stages(study, out, args.workers)
    truth = pd.read_parquet(study / "truth" / args.cohort / "lesions.parquet")
    with_lesion_id(summary).merge(truth.add_suffix("_true"), left_on=["patient", "lesion_id"],
                                  right_on=["subject_id_true", "lesion_id_true"], how="left").to_parquet(
        args.data / f"lesions-{args.label}.parquet")
    truth_patients = pd.read_parquet(study / "truth" / args.cohort / "patients.parquet")
    delineations = None
    if hasattr(lesion_jobs, "delineation_table"):
        delineations = lesion_jobs.delineation_table(results)
    doc = {
        "label": args.label, "cohort": args.cohort, "size": args.size, "patients": args.patients, "seed": args.seed,
        "timing_s": {"generate": gen_s, **times},
        "lesion": lesion_agreement(summary, truth),
        "patient": patient_agreement(summary, truth_patients),
        "mtv": mtv_errors(summary, truth, delineations),
        "suvpeak_rule": {"lesion": lesion_agreement(summary, truth, FesRule(statistic="suvpeak")),
                         "patient": patient_agreement(summary, truth_patients, FesRule(statistic="suvpeak"))},
        "registration": pd.DataFrame(records).drop(columns=["lesions", "liver"], errors="ignore")
        .describe().round(3).to_dict(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"truth-{args.label}.json"
    path.write_text(json.dumps(doc, indent=2, default=float))

    les, pat = doc["lesion"], doc["patient"]
    print(f"truth benchmark ({args.label}): {args.cohort}, {args.patients} patients, size {args.size}, "
          f"seed {args.seed}")
    print(f"{'lesions (truly FES-evaluable / read evaluable of them)':58s} {les['truly_evaluable']} / "
          f"{les['read_evaluable_of_truly_evaluable']}")
    print(f"{'lesion FES-positivity accuracy':58s} {les['accuracy']:.3f}")
    print(f"{'false positives / truly negative evaluable read':58s} {les['false_positive']} / "
          f"{les['truly_negative_evaluable'] - les['negative_declared_not_evaluable']} "
          f"({100 * les['false_positive_rate']:.1f} %)")
    print(f"{'truly negative declared not evaluable':58s} {les['negative_declared_not_evaluable']}")
    print(f"{'false negatives / truly positive declared not evaluable':58s} {les['false_negative']} / "
          f"{les['positive_declared_not_evaluable']}")
    print(f"{'patient pattern agreement':58s} {pat['pattern_agreement']:.3f}")
    print(f"{'r(image, true FES-positive fraction), n patients':58s} {pat['fraction_r']:.3f}, "
          f"{pat['fraction_patients']}")
    peak = doc["suvpeak_rule"]
    print(f"{'sensitivity rule SUVpeak >= 1.5: FP rate, r, pattern':58s} "
          f"{100 * peak['lesion']['false_positive_rate']:.1f} %, {peak['patient']['fraction_r']:.3f}, "
          f"{peak['patient']['pattern_agreement']:.3f}")
    print(f"{'MTV method':34s} {'n':>4s} {'median %':>9s} {'|median| %':>11s} {'p90 |err| %':>12s}")
    for r in doc["mtv"]:
        print(f"{r['method']:34s} {r['n']:4d} {r['median_error_pct']:9.1f} {r['median_abs_error_pct']:11.1f} "
              f"{r['p90_abs_error_pct']:12.1f}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
