"""`sonimage convert DICOM_ROOT OUT`: every PET and CT series to a Zarr store, plus manifest and quarantine."""

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


def _run(args: argparse.Namespace) -> int:
    from sonimage.cli.progress import watched

    with watched(args.workers) as client:
        summary = convert_stage.run(args.dicom_root, args.out, pseudonymiser(args), executor=client)
    print(summary.describe())
    print(f"manifest:   {summary.manifest}\nquarantine: {summary.quarantine}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_run)
