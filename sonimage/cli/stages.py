"""`sonimage extract OUT` and `sonimage analyse OUT --clinical DIR`: the feature and analysis stages without Prefect.

After `sonimage convert DICOM_ROOT OUT`, these give the same outputs as `sonimage run` (the Prefect flow).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonimage.cli.convert import add_workers_option


def add_settings_options(p: argparse.ArgumentParser) -> None:
    """``--settings FILE`` and ``--development COHORT``, shared by every command that runs a stage."""
    p.add_argument("--settings", type=Path, help="run settings as JSON (sonimage.settings.Settings; a partial file "
                   "keeps the defaults for the rest)")
    p.add_argument("--development", help="development cohort of the prediction models (default sonia)")


def settings_from_args(args: argparse.Namespace):
    """The run's :class:`sonimage.settings.Settings` from ``--settings`` and ``--development``."""
    from sonimage.settings import Settings

    settings = Settings.load(args.settings) if args.settings else Settings()
    return settings.with_study(development=args.development) if args.development else settings


def _extract(args: argparse.Namespace) -> int:
    from sonimage.cluster import local_executor
    from sonimage.lesions.tree import features_tree

    with local_executor(args.workers) as client:
        outputs = features_tree(args.out, client, settings_from_args(args))
    return _print(outputs)


def _analyse(args: argparse.Namespace) -> int:
    from sonimage.cluster import local_executor
    from sonimage.study import analyse_study

    with local_executor(args.workers) as client:
        outputs = analyse_study(args.out, args.clinical, client, settings_from_args(args))
    return _print(outputs)


def _print(outputs: dict[str, str]) -> int:
    for name, path in outputs.items():
        print(f"{name:<16} {path}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder of `sonimage convert`")
    add_settings_options(p)
    add_workers_option(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `extract` and `analyse` sub-commands."""
    p = sub.add_parser("extract", help="lesion features of a converted tree: feature, lesion and patient tables")
    _common(p)
    p.set_defaults(func=_extract)
    p = sub.add_parser("analyse", help="objectives 1-5 and the HTML report from the feature tables")
    _common(p)
    p.add_argument("--clinical", required=True, type=Path, help="clinical tables (<cohort>/patients.parquet)")
    p.set_defaults(func=_analyse)
