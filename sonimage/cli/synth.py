"""`sonimage synth OUT`: write the synthetic SONImage study (DICOM, ground truth, site linking file)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sonimage.cli.stages import add_workers_option
from sonimage.synth.generate import COHORTS, SIZES, generate_study


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    kwargs = dict(cohorts=tuple(args.cohorts), n_patients=args.patients, size=args.size, seed=args.seed)
    from sonimage.cli.progress import watched

    with watched(args.workers) as client:
        summary = generate_study(args.out, workers=client, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{summary.n_patients} patients ({summary.n_generated} generated, "
          f"{summary.n_patients - summary.n_generated} already complete) in {', '.join(summary.cohorts)}")
    print(f"{summary.n_series} series, {summary.n_files} DICOM files ({summary.n_bytes / 1e6:.1f} MB), "
          f"{summary.n_lesions} lesions, {seconds:.1f} s")
    print(f"DICOM: {summary.out / 'dicom'}\ntruth: {summary.out / 'truth'}\n"
          f"site linking table: {summary.out / 'site-private' / 'linking.csv'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `synth` sub-command."""
    p = sub.add_parser("synth", help="generate a synthetic FDG/FES PET/CT study as DICOM, with ground truth",
                       description="Write a synthetic study as a PACS export would look, to try sonimage without "
                       "patient data: OUT/dicom (DICOM), OUT/truth (true values and the trial office's clinical "
                       "tables), OUT/site-private/linking.csv (cohort, PatientID, subject_id). Then: sonimage "
                       "convert OUT/dicom RESULTS --linking OUT/site-private/linking.csv")
    p.add_argument("out", type=Path, metavar="OUT",
                   help="folder for the synthetic study (created; a rerun keeps finished patients)")
    p.add_argument("--cohorts", nargs="+", choices=COHORTS, default=list(COHORTS), help="cohorts to generate "
                   "(default all three)")
    p.add_argument("--patients", type=int, default=None, metavar="N",
                   help="patients per cohort (default: the cohort's design size, 100 or more)")
    p.add_argument("--size", choices=tuple(SIZES), default="full",
                   help="image size: tiny (seconds per patient, for tests), small (the demo), full (scanner-like)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same study")
    add_workers_option(p)
    p.set_defaults(func=_run)
