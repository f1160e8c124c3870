"""`sonimage run`: the study flow on the embedded LocalCluster, an existing scheduler, Kubernetes or SLURM."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sonimage.cli.stages import add_pseudonym_options
from sonimage.cli.stages import add_settings_options, settings_from_args


def _run(args: argparse.Namespace) -> int:
    from flows.environment import configure

    settings = settings_from_args(args)  # a bad settings file or cluster fails before any server starts
    from flows.runners import check_target, dask_cluster
    check_target(args.cluster)
    configure(args.out / ".prefect")
    from flows.server import AUTH_FILE, prefect_server
    started_here = not os.environ.get("PREFECT_API_URL")
    with prefect_server() as api:
        from prefect.logging.handlers import APILogWorker
        from prefect_dask import DaskTaskRunner

        from flows.pipeline import study_flow

        ui = api.removesuffix("/api")
        if started_here:
            print(f"Prefect UI while the run lasts: {ui} (log in with the contents of "
                  f"{Path(os.environ['PREFECT_HOME']) / AUTH_FILE})", flush=True)
        with dask_cluster(args.cluster, args.workers, args.dashboard, args.out / "logs") as (address, dashboard):
            print(f"Dask dashboard: {dashboard}", flush=True)
            runner = DaskTaskRunner(address=address)  # TLS credentials: sonimage.cluster.load_security
            outputs = study_flow.with_options(task_runner=runner)(
                str(args.out), str(args.dicom_root), args.linking and str(args.linking),
                args.key_file and str(args.key_file), args.clinical and str(args.clinical), settings.to_json(),
                args.cohort)
        APILogWorker.drain_all(timeout=10)  # deliver the last log lines while the server is still up
    if started_here:
        print(f"The Prefect UI at {ui} stopped with the run; to keep watching runs, run them on `make stack` "
              "(README, 'The stack').")
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
    p.add_argument("--cluster", default="local", help="local (default), kubernetes, slurm or tls://HOST:PORT (TLS "
                   "with the site's certificates, see README 'Security')")
    p.add_argument("--workers", type=int, default=2, help="Dask workers to start (local, kubernetes, slurm)")
    p.add_argument("--dashboard", default="127.0.0.1:8787", help="dashboard address of a cluster started here "
                   "(loopback unless a host is given, e.g. 0.0.0.0:8787)")
    p.add_argument("--clinical", type=Path, metavar="DIR", help="the trial office's clinical tables, "
                   "DIR/<cohort>/patients.parquet or .csv (schema in the README): adds the analyses and the HTML "
                   "report")
    add_settings_options(p)
    add_pseudonym_options(p)
    p.set_defaults(func=_run)
