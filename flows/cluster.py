"""Where the tasks run: the embedded LocalCluster, an existing scheduler, Kubernetes or SLURM; always over TLS.

Clusters started here get a certificate authority of their own (:mod:`sonimage.cluster`). For a scheduler given
by address, or one on Kubernetes, the site's certificates come from Dask's configuration (e.g.
``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``, ``..._TLS__CLIENT__CERT``, ``..._TLS__CLIENT__KEY``; see README,
"Security"); a plain ``tcp://`` scheduler is refused: anyone who reaches it can run code on its workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from distributed.deploy import Cluster
from distributed.security import Security

from sonimage.cluster import local_cluster, loopback, remember_security
from sonimage.io import private_dir

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _local(workers: int, dashboard: str) -> Cluster:
    return local_cluster(workers, dashboard)


def _kubernetes(workers: int, dashboard: str) -> Cluster:
    from dask_kubernetes.operator import KubeCluster  # optional extra: sonimage[kubernetes]

    cluster = KubeCluster(custom_cluster_spec=str(INFRA / "kubernetes" / "dask-cluster.yaml"))
    cluster.scale(workers)
    return cluster


def _address(target: str, cluster: Cluster) -> str:
    """The scheduler's address; dask-kubernetes' operator (2026.3.0) names it ``tcp://`` whatever the scheduler
    speaks, while the manifest's scheduler speaks TLS only (not run here: no Kubernetes on these machines)."""
    address = cluster.scheduler_address
    return address.replace("tcp://", "tls://", 1) if target == "kubernetes" else address


def _slurm(workers: int, dashboard: str) -> Cluster:
    from dask_jobqueue import SLURMCluster  # optional extra: sonimage[slurm]

    options = yaml.safe_load((INFRA / "slurm" / "jobqueue.yaml").read_text())
    options.setdefault("shared_temp_directory", "~/.sonimage/dask-tls")
    private_dir(Path(os.path.expandvars(options["shared_temp_directory"])).expanduser())  # the workers' TLS files
    security = Security.temporary()
    cluster = SLURMCluster(scheduler_options={"dashboard_address": loopback(dashboard)}, security=security,
                           protocol="tls://", **options)
    remember_security(cluster.scheduler_address, security, cluster)
    cluster.scale(jobs=workers)
    return cluster


BACKENDS = {"local": _local, "kubernetes": _kubernetes, "slurm": _slurm}


def require_site_tls() -> None:
    """Fail, saying what to set, when Dask's configuration gives this client no TLS certificate of the site."""
    security = Security()
    if not (security.tls_ca_file and security.tls_client_cert):
        raise ValueError("no Dask TLS certificates configured for this client: set "
                         "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and "
                         "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY (README, Security)")


def check_target(target: str) -> None:
    """Fail early, saying why, on a cluster ``target`` that is unknown, plain TCP, or TLS without credentials."""
    if "://" in target:
        if not target.startswith("tls://"):
            raise ValueError(f"scheduler {target}: sonimage talks to Dask schedulers over TLS only "
                             "(tls://HOST:PORT with the site's certificates, README 'Security')")
        require_site_tls()
    elif target not in BACKENDS:
        raise ValueError(f"unknown cluster {target!r}: use local, kubernetes, slurm or tls://HOST:PORT")
    elif target == "kubernetes":
        require_site_tls()  # the scheduler in the cluster knows the site's certificates only


@contextmanager
def dask_cluster(target: str = "local", workers: int = 2,
                 dashboard: str = "127.0.0.1:8787") -> Iterator[tuple[str, str]]:
    """Yield (scheduler address, dashboard link): a cluster started here, or ``target`` itself when it is a
    ``tls://`` address (credentials from Dask's configuration). Clients of the address in this process find the
    credentials by themselves (:func:`sonimage.cluster.load_security`)."""
    check_target(target)
    if "://" in target:
        yield target, "(see the scheduler's own dashboard)"
        return
    with BACKENDS[target](workers, dashboard) as cluster:
        yield _address(target, cluster), cluster.dashboard_link
