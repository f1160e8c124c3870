"""`sonimage convert DICOM_ROOT OUT`: every PET and CT series to a Zarr store, plus manifest and quarantine."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonimage.dicom.pseudonym import Pseudonymiser, site_pseudonymiser
from sonimage.volumes.convert import convert_tree


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
    p.add_argument("--workers", type=int, default=0, help="Dask worker processes on this machine (0: in process)")


def _run(args: argparse.Namespace) -> int:
    from sonimage.cli.progress import watched

    with watched(args.workers) as client:
        summary = convert_tree(args.dicom_root, args.out, pseudonymiser(args), executor=client)
    print(summary.describe())
    print(f"manifest:   {summary.manifest}\nquarantine: {summary.quarantine}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `convert` sub-command."""
    p = sub.add_parser("convert", help="convert a DICOM tree to Zarr volumes with a manifest and a quarantine table")
    p.add_argument("dicom_root", type=Path)
    p.add_argument("out", type=Path)
    add_workers_option(p)
    add_pseudonym_options(p)
    p.set_defaults(func=_run)
