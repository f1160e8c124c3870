"""Where the tasks run: the embedded LocalCluster, an existing scheduler, Kubernetes or SLURM."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from distributed.deploy import Cluster

from sonimage.cluster import local_cluster

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _local(workers: int, dashboard: str) -> Cluster:
    return local_cluster(workers, dashboard)


def _kubernetes(workers: int, dashboard: str) -> Cluster:
    from dask_kubernetes.operator import KubeCluster  # optional extra: sonimage[kubernetes]

    cluster = KubeCluster(custom_cluster_spec=str(INFRA / "kubernetes" / "dask-cluster.yaml"))
    cluster.scale(workers)
    return cluster


def _slurm(workers: int, dashboard: str) -> Cluster:
    from dask_jobqueue import SLURMCluster  # optional extra: sonimage[slurm]

    options = yaml.safe_load((INFRA / "slurm" / "jobqueue.yaml").read_text())
    cluster = SLURMCluster(scheduler_options={"dashboard_address": dashboard}, **options)
    cluster.scale(jobs=workers)
    return cluster


BACKENDS = {"local": _local, "kubernetes": _kubernetes, "slurm": _slurm}


@contextmanager
def dask_cluster(target: str = "local", workers: int = 2, dashboard: str = ":8787") -> Iterator[tuple[str, str]]:
    """Yield (scheduler address, dashboard link): a cluster started here, or ``target`` itself when it is an address."""
    if "://" in target:
        yield target, "(see the scheduler's own dashboard)"
        return
    if target not in BACKENDS:
        raise ValueError(f"unknown cluster {target!r}: use local, kubernetes, slurm or tcp://HOST:PORT")
    with BACKENDS[target](workers, dashboard) as cluster:
        yield cluster.scheduler_address, cluster.dashboard_link
