"""A Dask LocalCluster tuned for sonimage's tasks.

Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker by default. Setting it at all switches off
glibc's dynamic mmap threshold, so each large NumPy array is a fresh mmap with page faults on first touch:
series conversion ran 1.7x slower in a worker than in the main process. sonimage's clusters leave it unset.
For workers started elsewhere (``dask worker``, Kubernetes, SLURM) set
``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None`` in their environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": None}}


def local_cluster(n_workers: int = 2, dashboard_address: str = ":0") -> LocalCluster:
    """A LocalCluster of single-threaded worker processes with glibc's default allocator behaviour."""
    with dask.config.set(WORKER_ENVIRON):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            dashboard_address=dashboard_address)


@contextmanager
def local_executor(n_workers: int) -> Iterator[Client | None]:
    """A client of a :func:`local_cluster` of ``n_workers`` workers, or None (run in process) for 0."""
    if n_workers == 0:
        yield None
        return
    with local_cluster(n_workers) as cluster, Client(cluster) as client:
        yield client
