"""`sonimage extract OUT` and `sonimage analyse OUT --clinical DIR`: the feature and analysis stages without Prefect.

After `sonimage convert DICOM_ROOT OUT`, these give the same outputs as `sonimage run` (the Prefect flow).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonimage.cli.convert import add_workers_option


def add_settings_options(p: argparse.ArgumentParser) -> None:
    """``--settings FILE`` and ``--development COHORT``, shared by every command that runs a stage."""
    p.add_argument("--settings", type=Path, metavar="JSON", help="run settings as JSON (feature binning, FES "
                   "threshold, delineation, bootstraps; see sonimage.settings.Settings); a partial file keeps the "
                   "defaults for the rest")
    p.add_argument("--development", metavar="COHORT", help="cohort the prediction models are developed on "
                   "(default sonia); the other cohorts validate them")


def settings_from_args(args: argparse.Namespace):
    """The run's :class:`sonimage.settings.Settings` from ``--settings`` and ``--development``."""
    from sonimage.settings import Settings

    settings = Settings.load(args.settings) if args.settings else Settings()
    return settings.with_study(development=args.development) if args.development else settings


def _extract(args: argparse.Namespace) -> int:
    from sonimage.cli.progress import watched
    from sonimage.stages import extract as extract_stage

    with watched(args.workers) as client:
        outputs = extract_stage.run(args.out, client, settings_from_args(args))
    return _print(outputs)


def _analyse(args: argparse.Namespace) -> int:
    from sonimage.cli.progress import watched
    from sonimage.stages import analyse as analyse_stage

    with watched(args.workers) as client:
        outputs = analyse_stage.run(args.out, args.clinical, client, settings_from_args(args))
    return _print(outputs)


def _print(outputs: dict[str, str]) -> int:
    width = max(map(len, outputs), default=0) + 1
    for name, path in outputs.items():
        print(f"{name:<{width}} {path}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, metavar="OUT", help="output folder of `sonimage convert` (holds manifest.parquet)")
    add_settings_options(p)
    add_workers_option(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `extract` and `analyse` sub-commands."""
    p = sub.add_parser("extract", help="lesion features of a converted tree: feature, lesion and patient tables",
                       description="After `sonimage convert DICOM_ROOT OUT`: register each patient's FES scan to "
                       "the FDG scan, read every lesion of the RTSTRUCT on both, and write OUT/features/ "
                       "(lesion_features, lesions, patients, excluded_patients with the reason for each patient "
                       "left out, and QC tables). Then `sonimage analyse OUT --clinical DIR`.")
    _common(p)
    p.set_defaults(func=_extract)
    p = sub.add_parser("analyse", help="objectives 1-5 and the HTML report from the feature tables",
                       description="After `sonimage extract OUT`: join the feature tables with the trial office's "
                       "clinical tables and write OUT/report/ (report.html, metrics.json, models).")
    _common(p)
    p.add_argument("--clinical", required=True, type=Path, metavar="DIR",
                   help="the trial office's clinical tables: DIR/<cohort>/patients.parquet or patients.csv "
                   "(schema in the README; each error is named by row and column)")
    p.set_defaults(func=_analyse)
