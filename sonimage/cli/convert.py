"""`sonimage convert DICOM_ROOT OUT`: every PET and CT series to a Zarr store, plus manifest and quarantine."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonimage.dicom.pseudonym import Pseudonymiser, load_key, read_linking
from sonimage.volumes.convert import convert_tree


def pseudonymiser(args: argparse.Namespace) -> Pseudonymiser:
    """The pseudonymiser the options ask for: site key plus optional linking table."""
    return Pseudonymiser(load_key(args.key_file), read_linking(args.linking) if args.linking else {})


def add_pseudonym_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads original DICOM."""
    p.add_argument("--linking", type=Path, help="site linking table (CSV: PatientID,subject_id) for trial pseudonyms")
    p.add_argument("--key-file", type=Path, help="site pseudonymisation key (default $SONIMAGE_HOME/pseudonym.key)")


def add_workers_option(p: argparse.ArgumentParser) -> None:
    """``--workers``: Dask worker processes on this machine, 0 to run in process."""
    p.add_argument("--workers", type=int, default=0, help="Dask worker processes on this machine (0: in process)")


def _run(args: argparse.Namespace) -> int:
    from sonimage.cluster import local_executor

    with local_executor(args.workers) as client:
        summary = convert_tree(args.dicom_root, args.out, pseudonymiser(args), executor=client)
    print(f"{summary.n_files} files: {summary.n_converted} series converted, "
          f"{summary.n_quarantined_files} files quarantined")
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
