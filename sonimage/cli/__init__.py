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

SUBCOMMANDS = ("synth", "convert", "stages", "features", "model")
OUTPUT_UMASK = 0o027  # the owner writes, the owner's group reads, others nothing


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every sub-command registered."""
    parser = argparse.ArgumentParser(prog="sonimage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
