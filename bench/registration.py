"""Benchmark: the lesion stage's rigid CT registration against the synthetic study's truth, before and after.

One command: ``python bench/registration.py --study DIR --out CONVERTED [--baseline DIR]`` prints a table and writes
``bench/results/registration.json``.

- **Study**: a synthetic study tree (``dicom/``, ``truth/<cohort>/lesions.parquet``), e.g. a hard-linked subset of
  the real-size site, already converted into ``--out`` (``sonimage convert``); its patients' stores are read once
  per process, outside the clock.
- **Measure** per patient: ``register_rigid(FDG CT, FES CT)`` in the process's CPU seconds (ITK runs on one thread),
  its quality columns (NCC, body Dice: ``registration.parquet``), and the target registration error of the lesions:
  the distance between each true FDG-day lesion centre carried by the transform and its true FES-day centre. The
  FES day also deforms the patient mildly (1–2.5 mm), so no rigid transform reaches zero.
- **Before/after**: ``--baseline DIR`` (another checkout, e.g. ``git archive main | tar -x -C /tmp/base``) runs in a
  process of its own, alternated round by round with this checkout; the fastest round per patient counts for CPU,
  the transforms are the same every round (deterministic).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machine import describe, load, load_line

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def run_child(out: Path, study: Path) -> list[dict]:
    """Every patient's registration with this process's sonimage: CPU seconds, quality, lesion TRE (mm)."""
    import pandas as pd

    from sonimage.lesions.registration import register_rigid
    from sonimage.stages.extract import plan_patients, read_patient

    scans, _ = plan_patients(out)
    rows = []
    for scan in scans:
        volumes = read_patient(scan, out)
        if volumes.fdg_ct is None or volumes.fes_ct is None:
            continue
        cpu = time.process_time()
        rigid = register_rigid(volumes.fdg_ct, volumes.fes_ct)
        cpu = time.process_time() - cpu
        truth = pd.read_parquet(study / "truth" / scan.cohort / "lesions.parquet")
        lesions = truth[truth.subject_id == scan.patient]
        transform = rigid.transform()
        fdg = lesions[[f"fdg_centre_{a}_mm" for a in "xyz"]].to_numpy(float)
        fes = lesions[[f"fes_centre_{a}_mm" for a in "xyz"]].to_numpy(float)
        moved = np.array([transform.TransformPoint(tuple(p)) for p in fdg]).reshape(-1, 3)
        rows.append({"patient": scan.patient, "cpu_s": cpu, "ncc": rigid.ncc, "body_dice": rigid.body_dice,
                     "tre_mm": np.linalg.norm(moved - fes, axis=1).tolist()})
    return rows


def child(code: Path, out: Path, study: Path) -> list[dict]:
    """A round in a fresh process with ``code``'s sonimage."""
    done = subprocess.run([sys.executable, __file__, "--child", str(code), "--out", str(out), "--study", str(study)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)})
    if done.returncode:
        raise RuntimeError(f"round with {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(rounds: list[list[dict]]) -> dict[str, float]:
    """CPU per patient (fastest round per patient) and the quality and TRE distributions."""
    first = rounds[0]
    cpu = np.min([[r["cpu_s"] for r in rnd] for rnd in rounds], axis=0)
    tre = np.concatenate([r["tre_mm"] for r in first])
    worst = np.array([max(r["tre_mm"], default=np.nan) for r in first])
    ncc, dice = np.array([r["ncc"] for r in first]), np.array([r["body_dice"] for r in first])
    return {"patients": len(first), "lesions": int(tre.size), "cpu_s_per_patient": float(cpu.mean()),
            "tre_mean_mm": float(tre.mean()), "tre_median_mm": float(np.median(tre)),
            "tre_p95_mm": float(np.percentile(tre, 95)), "tre_max_mm": float(tre.max()),
            "worst_lesion_per_patient_median_mm": float(np.nanmedian(worst)),
            "ncc_min": float(ncc.min()), "ncc_median": float(np.median(ncc)),
            "body_dice_min": float(dice.min()), "body_dice_median": float(np.median(dice))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, required=True, help="the study tree (dicom/, truth/)")
    ap.add_argument("--out", type=Path, required=True, help="its converted tree (sonimage convert)")
    ap.add_argument("--baseline", type=Path, help="another checkout to time in the same run (before/after)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per checkout (alternated)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(args.out.resolve(), args.study.resolve())))
        return
    before = load()
    codes = {**({"baseline": args.baseline.resolve()} if args.baseline else {}), "this checkout": REPO}
    rounds: dict[str, list[list[dict]]] = {name: [] for name in codes}
    for _ in range(max(args.repeat, 1)):
        for name, code in codes.items():
            rounds[name].append(child(code, args.out.resolve(), args.study.resolve()))
    after = load()
    results = {name: summary(r) for name, r in rounds.items()}
    labels = [("patients", "patients", "{:.0f}"), ("lesions", "lesions", "{:.0f}"),
              ("register_rigid CPU s per patient", "cpu_s_per_patient", "{:.3f}"),
              ("lesion TRE mean (mm)", "tre_mean_mm", "{:.3f}"), ("lesion TRE median (mm)", "tre_median_mm", "{:.3f}"),
              ("lesion TRE p95 (mm)", "tre_p95_mm", "{:.3f}"), ("lesion TRE max (mm)", "tre_max_mm", "{:.3f}"),
              ("worst lesion per patient, median (mm)", "worst_lesion_per_patient_median_mm", "{:.3f}"),
              ("NCC min / median", ("ncc_min", "ncc_median"), "{:.4f} / {:.4f}"),
              ("body Dice min / median", ("body_dice_min", "body_dice_median"), "{:.4f} / {:.4f}")]
    print("| measure | " + " | ".join(codes) + " |")
    print("|---|" + "---:|" * len(codes))
    for label, key, fmt in labels:
        keys = key if isinstance(key, tuple) else (key,)
        print(f"| {label} | " + " | ".join(fmt.format(*(results[n][k] for k in keys)) for n in codes) + " |")
    print(load_line(before, after))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "registration.json").write_text(json.dumps(
        {"machine": describe(), "load_before": before, "load_after": after, "summary": results, "rounds": rounds},
        indent=1))


if __name__ == "__main__":
    main()
