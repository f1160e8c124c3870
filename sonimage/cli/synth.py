"""`sonimage synth OUT`: write the synthetic SONImage study (DICOM, ground truth, site linking file)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sonimage.cli.convert import add_workers_option
from sonimage.synth.study import COHORTS, SIZES, generate_study


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    kwargs = dict(cohorts=tuple(args.cohorts), n_patients=args.patients, size=args.size, seed=args.seed)
    from sonimage.cluster import local_executor

    with local_executor(args.workers) as client:
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
    p = sub.add_parser("synth", help="generate synthetic FDG/FES PET/CT cohorts as DICOM with ground truth")
    p.add_argument("out", type=Path)
    p.add_argument("--cohorts", nargs="+", choices=COHORTS, default=list(COHORTS))
    p.add_argument("--patients", type=int, default=None, help="patients per cohort (default: the cohort's size)")
    p.add_argument("--size", choices=tuple(SIZES), default="full", help="image size (tiny for tests)")
    p.add_argument("--seed", type=int, default=0)
    add_workers_option(p)
    p.set_defaults(func=_run)
