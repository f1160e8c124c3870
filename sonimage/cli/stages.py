"""`sonimage convert DICOM_ROOT OUT`, `sonimage extract OUT` and `sonimage analyse OUT --clinical DIR`: the
stages without Prefect (:mod:`sonimage.stages`), one command each, and the options they share.

In turn, they give the same outputs as `sonimage run` (the Prefect flow).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonimage.dicom.pseudonym import Pseudonymiser, site_pseudonymiser
from sonimage.stages import convert as convert_stage


def pseudonymiser(args: argparse.Namespace) -> Pseudonymiser:
    """The pseudonymiser the options ask for: site key, optional linking table, the run's cohort."""
    return site_pseudonymiser(args.key_file, args.linking, args.cohort)


def add_pseudonym_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads original DICOM: pseudonyms and cohorts."""
    p.add_argument("--cohort", metavar="NAME",
                   help="cohort of every patient the linking table gives none (letters, digits, '.', '_', '-'); "
                        "cohorts are never taken from folder names, so give this or a linking table with a cohort "
                        "column")
    p.add_argument("--linking", type=Path, metavar="CSV",
                   help="site linking table, CSV with columns PatientID,subject_id[,cohort]: each patient's trial "
                        "pseudonym (and cohort); patients not in it get P-<keyed hash>. Keep it at the site")
    p.add_argument("--key-file", type=Path, metavar="FILE",
                   help="site pseudonymisation key (default $SONIMAGE_PSEUDONYM_KEY, else "
                        "$SONIMAGE_HOME/pseudonym.key, created on first use); keep it secret and keep it: the same "
                        "key gives the same pseudonyms on every run")


def add_workers_option(p: argparse.ArgumentParser) -> None:
    """``--workers``: Dask worker processes on this machine, 0 to run in process."""
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="Dask worker processes on this machine (default 0: in this process); about one per core")


CONVERT_HELP = """\
Convert every PET and CT series below DICOM_ROOT to a Zarr volume (PET in SUVbw, CT in HU) and every RTSTRUCT
drawn on a PET to a lesion label volume, under OUT/volumes/<cohort>/<pseudonym>/. OUT/manifest.parquet lists what
was converted; OUT/quarantine.parquet lists every file or series that could not be used, with the reason.

Give the cohort with --cohort NAME, or a linking table (--linking) with a cohort column: folder names are never
used, so a patient-named export folder stays out of every output. Then run `sonimage extract OUT`.
"""


def _convert(args: argparse.Namespace) -> int:
    from sonimage.cli.progress import watched

    with watched(args.workers) as client:
        summary = convert_stage.run(args.dicom_root, args.out, pseudonymiser(args), executor=client)
    print(summary.describe())
    print(f"manifest:   {summary.manifest}\nquarantine: {summary.quarantine}")
    return 0


def _register_convert(sub: argparse._SubParsersAction) -> None:
    """Add the `convert` sub-command."""
    p = sub.add_parser("convert", help="DICOM PET/CT and RTSTRUCT to pseudonymised volumes, with a manifest and a "
                       "quarantine table", description=CONVERT_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dicom_root", type=Path, metavar="DICOM_ROOT", help="folder holding the DICOM export (any "
                   "layout; every file below it is read or quarantined)")
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (created; a rerun skips series converted "
                   "before from the same bytes)")
    add_workers_option(p)
    add_pseudonym_options(p)
    p.set_defaults(func=_convert)


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
    """Add the `convert`, `extract` and `analyse` sub-commands."""
    _register_convert(sub)
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
