"""The ``sonimage`` command: one module per sub-command, each with ``register(subparsers)``.

Commands that need the orchestration layer (``sonimage run``) plug in through the ``sonimage.commands`` entry-point
group, so the library itself never imports Prefect.

Every command runs with umask 027 (:data:`OUTPUT_UMASK`): outputs are 0640 files in 0750 folders,
readable by the owner's group, by no one else; secrets and site-private files are 0600 in 0700 folders.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

SUBCOMMANDS = ("synth", "stages", "features", "model")
OUTPUT_UMASK = 0o027  # the owner writes, the owner's group reads, others nothing

DESCRIPTION = """\
sonimage turns a PET study (FDG and FES PET/CT as DICOM, lesion contours as RTSTRUCT) into lesion features,
patient tables and survival models. Original patient identifiers never reach an output: patients get the
trial pseudonym from your linking table, or a keyed hash.

Your own data, step by step (README: "Bringing your own data"):
  sonimage convert DICOM_ROOT OUT --cohort NAME   DICOM to volumes; OUT/quarantine.parquet says what could
                                                  not be used and why
  sonimage extract OUT                            lesion features, patient table, excluded patients
  sonimage analyse OUT --clinical DIR             survival analyses and the HTML report
or all at once, with Prefect and Dask:  sonimage run DICOM_ROOT OUT --cohort NAME [--clinical DIR]

To try it on synthetic data first:  sonimage synth STUDY --patients 5 --size tiny
Each command explains its options:  sonimage COMMAND --help
"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every sub-command registered."""
    parser = argparse.ArgumentParser(prog="sonimage", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"sonimage.cli.{name}").register(sub)
    for plugin in entry_points(group="sonimage.commands"):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: parse, dispatch to the sub-command's ``func``, return its exit code."""
    args = build_parser().parse_args(argv)
    os.umask(OUTPUT_UMASK)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # bad input, or an output that cannot be written (named in the message)
        print(f"sonimage {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
