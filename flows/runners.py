"""Where the flows' tasks run: the embedded LocalCluster, an existing scheduler, Kubernetes or SLURM; always over
TLS.

Clusters started here get a certificate authority of their own (:mod:`sonimage.cluster`). For a scheduler given
by address, or one on Kubernetes, the site's certificates come from Dask's configuration (e.g.
``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``, ``..._TLS__CLIENT__CERT``, ``..._TLS__CLIENT__KEY``; see README,
"Security"); a plain ``tcp://`` scheduler is refused: anyone who reaches it can run code on its workers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from distributed.deploy import Cluster
from distributed.security import Security

from sonimage.cluster import local_cluster, loopback, remember_security
from sonimage.io import private_dir

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _local(workers: int, dashboard: str, logs: Path) -> Cluster:
    return local_cluster(workers, dashboard)


def _kubernetes(workers: int, dashboard: str, logs: Path) -> Cluster:
    from dask_kubernetes.operator import KubeCluster  # optional extra: sonimage[kubernetes]

    cluster = KubeCluster(custom_cluster_spec=str(INFRA / "kubernetes" / "dask-cluster.yaml"))
    cluster.scale(workers)
    return cluster


def _address(target: str, cluster: Cluster) -> str:
    """The scheduler's address; dask-kubernetes' operator (2026.3.0) names it ``tcp://`` whatever the scheduler
    speaks, while the manifest's scheduler speaks TLS only (not run here: no Kubernetes on these machines)."""
    address = cluster.scheduler_address
    return address.replace("tcp://", "tls://", 1) if target == "kubernetes" else address


SLURM_ENV = {"queue": "SONIMAGE_SLURM_PARTITION", "account": "SONIMAGE_SLURM_ACCOUNT",
             "walltime": "SONIMAGE_SLURM_WALLTIME", "memory": "SONIMAGE_SLURM_MEMORY", "cores": "SONIMAGE_SLURM_CORES",
             "local_directory": "SONIMAGE_SLURM_LOCAL_DIRECTORY",
             "shared_temp_directory": "SONIMAGE_SLURM_TLS_DIRECTORY"}


def _seconds(walltime: str) -> int:
    """SLURM's ``[D-]HH:MM:SS`` (or ``MM:SS``) in seconds."""
    days, _, clock = walltime.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(days or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def slurm_options(environ: dict[str, str] | None = None) -> dict:
    """SLURMCluster options: ``infra/slurm/jobqueue.yaml`` overridden by ``SONIMAGE_SLURM_*`` variables, workers
    retiring at 70 ± 10 % of the walltime (staggered, so that they do not all leave at once and their replacements
    start before SLURM would kill a job)."""
    env = os.environ if environ is None else environ
    options = yaml.safe_load((INFRA / "slurm" / "jobqueue.yaml").read_text())
    for key, var in SLURM_ENV.items():
        if env.get(var):
            options[key] = int(env[var]) if key == "cores" else env[var]
    wall = _seconds(options["walltime"])
    options["worker_extra_args"] = ["--lifetime", f"{round(wall * 0.7)}s",
                                    "--lifetime-stagger", f"{max(1, round(wall * 0.1))}s"]
    venv = env.get("SONIMAGE_SLURM_VENV")
    options["python"] = str(Path(venv) / "bin" / "python") if venv else sys.executable
    # see sonimage/cluster.py
    options["job_script_prologue"] = ["export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None"]
    return options


def _slurm(workers: int, dashboard: str, logs: Path) -> Cluster:
    from dask_jobqueue import SLURMCluster  # optional extra: sonimage[slurm]

    options = slurm_options()
    private_dir(Path(os.path.expandvars(options["shared_temp_directory"])).expanduser())  # the workers' TLS files
    security = Security.temporary()
    host = os.environ.get("SONIMAGE_SLURM_SCHEDULER_HOST", "127.0.0.1")
    if host == "127.0.0.1":  # a one-machine cluster: the workers listen on loopback too
        options["worker_extra_args"] += ["--host", host]
    cluster = SLURMCluster(scheduler_options={"dashboard_address": loopback(dashboard),
                                              "host": host},
                           security=security, protocol="tls://", log_directory=str(logs), **options)
    remember_security(cluster.scheduler_address, security, cluster)
    # Adaptive with a fixed size: a job that ends (walltime, scancel, node failure) is replaced by a new one.
    cluster.adapt(minimum_jobs=workers, maximum_jobs=workers)
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
def dask_cluster(target: str = "local", workers: int = 2, dashboard: str = "127.0.0.1:8787",
                 logs: Path = Path("logs")) -> Iterator[tuple[str, str]]:
    """Yield (scheduler address, dashboard link): a cluster started here, or ``target`` itself when it is a
    ``tls://`` address (credentials from Dask's configuration). Clients of the address in this process find the
    credentials by themselves (:func:`sonimage.cluster.load_security`). Batch-system clusters write their job logs
    to ``logs``."""
    check_target(target)
    if "://" in target:
        yield target, "(see the scheduler's own dashboard)"
        return
    with BACKENDS[target](workers, dashboard, logs) as cluster:
        yield _address(target, cluster), cluster.dashboard_link


def default_runner() -> DaskTaskRunner:
    """The scheduler at $SONIMAGE_DASK_ADDRESS when set (deployments), else a LocalCluster of worker processes.
    (Prefect is imported here, not above: ``sonimage run`` picks its target before it configures Prefect.)"""
    from prefect_dask import DaskTaskRunner

    address = os.environ.get("SONIMAGE_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={"n_workers": 2, "dashboard_address": ":8787"})
