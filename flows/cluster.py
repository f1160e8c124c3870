"""Where the tasks run: the embedded LocalCluster, an existing scheduler, Kubernetes or SLURM."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from distributed.deploy import Cluster

from sonimage.cluster import local_cluster

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _local(workers: int, dashboard: str, logs: Path) -> Cluster:
    return local_cluster(workers, dashboard)


def _kubernetes(workers: int, dashboard: str, logs: Path) -> Cluster:
    from dask_kubernetes.operator import KubeCluster  # optional extra: sonimage[kubernetes]

    cluster = KubeCluster(custom_cluster_spec=str(INFRA / "kubernetes" / "dask-cluster.yaml"))
    cluster.scale(workers)
    return cluster


SLURM_ENV = {"queue": "SONIMAGE_SLURM_PARTITION", "account": "SONIMAGE_SLURM_ACCOUNT",
             "walltime": "SONIMAGE_SLURM_WALLTIME", "memory": "SONIMAGE_SLURM_MEMORY", "cores": "SONIMAGE_SLURM_CORES",
             "local_directory": "SONIMAGE_SLURM_LOCAL_DIRECTORY"}


def _seconds(walltime: str) -> int:
    """SLURM's ``[D-]HH:MM:SS`` (or ``MM:SS``) in seconds."""
    days, _, clock = walltime.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(days or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def slurm_options(environ: dict[str, str] | None = None) -> dict:
    """SLURMCluster options: ``infra/slurm/jobqueue.yaml`` overridden by ``SONIMAGE_SLURM_*`` variables, workers
    retiring at 80 ± 10 % of the walltime (staggered, so that they do not all leave at once and their replacements
    start before SLURM would kill a job)."""
    env = os.environ if environ is None else environ
    options = yaml.safe_load((INFRA / "slurm" / "jobqueue.yaml").read_text())
    for key, var in SLURM_ENV.items():
        if env.get(var):
            options[key] = int(env[var]) if key == "cores" else env[var]
    wall = _seconds(options["walltime"])
    options["worker_extra_args"] = ["--lifetime", f"{int(wall * 0.8)}s", "--lifetime-stagger", f"{max(1, int(wall * 0.1))}s"]
    prologue = ["export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None"]  # sonimage/cluster.py
    venv = env.get("SONIMAGE_SLURM_VENV")
    options["python"] = str(Path(venv) / "bin" / "python") if venv else sys.executable
    options["job_script_prologue"] = prologue
    return options


def _slurm(workers: int, dashboard: str, logs: Path) -> Cluster:
    from dask_jobqueue import SLURMCluster  # optional extra: sonimage[slurm]

    cluster = SLURMCluster(scheduler_options={"dashboard_address": dashboard,
                                              "host": os.environ.get("SONIMAGE_SLURM_SCHEDULER_HOST", "127.0.0.1")},
                           log_directory=str(logs), **slurm_options())
    # Adaptive with a fixed size: a job that ends (walltime, scancel, node failure) is replaced by a new one.
    cluster.adapt(minimum_jobs=workers, maximum_jobs=workers)
    return cluster


BACKENDS = {"local": _local, "kubernetes": _kubernetes, "slurm": _slurm}


@contextmanager
def dask_cluster(target: str = "local", workers: int = 2, dashboard: str = ":8787", logs: Path = Path("logs")
                 ) -> Iterator[tuple[str, str]]:
    """Yield (scheduler address, dashboard link): a cluster started here, or ``target`` itself when it is an address.
    Batch-system clusters write their job logs to ``logs``."""
    if "://" in target:
        yield target, "(see the scheduler's own dashboard)"
        return
    if target not in BACKENDS:
        raise ValueError(f"unknown cluster {target!r}: use local, kubernetes, slurm or tcp://HOST:PORT")
    with BACKENDS[target](workers, dashboard, logs) as cluster:
        yield cluster.scheduler_address, cluster.dashboard_link
