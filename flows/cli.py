"""`sonimage run`: the study flow on the embedded LocalCluster, an existing scheduler, Kubernetes or SLURM."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonimage.cli.convert import add_pseudonym_options
from sonimage.cli.stages import add_settings_options, settings_from_args


def _run(args: argparse.Namespace) -> int:
    from flows.environment import configure

    settings = settings_from_args(args)  # a bad settings file fails before any server starts
    configure(args.out / ".prefect")
    from flows.cluster import dask_cluster
    from flows.server import prefect_server
    with prefect_server():
        from prefect.logging.handlers import APILogWorker
        from prefect_dask import DaskTaskRunner

        from flows.pipeline import study_flow

        with dask_cluster(args.cluster, args.workers, args.dashboard, args.out / "logs") as (address, dashboard):
            print(f"Dask dashboard: {dashboard}", flush=True)
            runner = DaskTaskRunner(address=address)
            outputs = study_flow.with_options(task_runner=runner)(
                str(args.out), str(args.dicom_root), args.linking and str(args.linking),
                args.key_file and str(args.key_file), args.clinical and str(args.clinical), settings.to_json(),
                args.cohort)
        APILogWorker.drain_all(timeout=10)  # deliver the last log lines while the server is still up
    print("outputs:")
    for name, path in outputs.items():
        print(f"  {name:<11} {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `run` sub-command."""
    p = sub.add_parser("run", help="convert, extract and (with --clinical) analyse in one run, with Prefect and Dask",
                       description="The whole study in one run: convert DICOM_ROOT (as `sonimage convert`), extract "
                       "lesion features (as `sonimage extract`) and, with --clinical, the analyses and the HTML "
                       "report (as `sonimage analyse`). Prints the Dask dashboard link, a run summary and where the "
                       "outputs are. Give the cohort with --cohort NAME or a linking table with a cohort column.")
    p.add_argument("dicom_root", type=Path, metavar="DICOM_ROOT",
                   help="folder holding the DICOM export (PET/CT and RTSTRUCT)")
    p.add_argument("out", type=Path, metavar="OUT",
                   help="output folder (created; a rerun skips series converted before)")
    p.add_argument("--cluster", default="local", help="local (default), kubernetes, slurm or tcp://HOST:PORT")
    p.add_argument("--workers", type=int, default=2, help="Dask workers to start (local, kubernetes, slurm)")
    p.add_argument("--dashboard", default=":8787", help="dashboard address of a cluster started here")
    p.add_argument("--clinical", type=Path, metavar="DIR", help="the trial office's clinical tables, "
                   "DIR/<cohort>/patients.parquet or .csv (schema in the README): adds the analyses and the HTML "
                   "report")
    add_settings_options(p)
    add_pseudonym_options(p)
    p.set_defaults(func=_run)
