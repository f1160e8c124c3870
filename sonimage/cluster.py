"""Dask clusters for sonimage's tasks: single-threaded worker processes behind TLS, dashboards on loopback.

Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker by default. Setting it at all switches off
glibc's dynamic mmap threshold, so each large NumPy array is a fresh mmap with page faults on first touch:
series conversion ran 1.7x slower in a worker than in the main process. sonimage's clusters leave it unset.
For workers started elsewhere (``dask worker``, Kubernetes, SLURM) set
``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None`` in their environment.

A plain ``tcp://`` scheduler runs whatever any local user sends it (``Client.run`` read the pseudonymisation key).
Every cluster sonimage starts therefore speaks TLS with mutual authentication (Dask's TLS support,
https://distributed.dask.org/en/stable/tls.html): an in-process cluster gets a certificate authority made for this
run and kept in memory (:meth:`distributed.security.Security.temporary`); processes started from the command line
get one written by :func:`write_tls_files` (0600 files in a 0700 folder). A client without a certificate of that
authority is refused. Clients find the credentials without being handed them: :func:`load_security` is Dask's
``distributed.client.security-loader``, so the key never travels inside a pickled task runner or task.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
from distributed import Client, LocalCluster
from distributed.security import Security

from sonimage.io import private_dir, write_private_atomic

WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": None}}
# How long a task may wait while the cluster has no worker at all before it fails (Dask's
# ``distributed.scheduler.no-workers-timeout``; unset, a run whose workers all died and were not restarted waited
# for ever: issue 14). Far above a nanny's restart of a dead worker (seconds) and a worker's start-up under load.
NO_WORKERS_TIMEOUT = "3 minutes"
SECURITY_LOADER = "distributed.client.security-loader"
TLS_ROLES = ("scheduler", "worker", "client")

_credentials: dict[str, Security] = {}  # scheduler address -> credentials of the clusters this process started


def load_security(info: dict) -> Security | None:
    """Dask's client security loader: the credentials of a cluster this process started, or inside one of its
    workers the worker's own, for a client of that scheduler; None (Dask's configuration) for any other address."""
    address = info.get("address")
    if address in _credentials:
        return _credentials[address]
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    return worker.security if worker.scheduler.address == address else None


def use_security_loader() -> None:
    """Make :func:`load_security` this process's (and its clusters' workers') client security loader, unless the
    site configured one of its own."""
    if not dask.config.get(SECURITY_LOADER, None):
        dask.config.set({SECURITY_LOADER: f"{__name__}.load_security"})


def remember_security(address: str, security: Security, owner: object) -> None:
    """Let clients of ``address`` in this process use ``security`` for as long as ``owner`` (the cluster) lives."""
    use_security_loader()
    _credentials[address] = security
    weakref.finalize(owner, _credentials.pop, address, None)


def loopback(address: str | None) -> str | None:
    """A listening address with no host (``:8787``, ``8787``) bound to 127.0.0.1, not to every interface as Dask
    would; an explicit host (``0.0.0.0:8787``) is kept, None (no dashboard) too."""
    if address is None:
        return None
    host, _, port = str(address).rpartition(":")
    return address if host else f"127.0.0.1:{port}"


def local_cluster(n_workers: int = 2, dashboard_address: str | None = "127.0.0.1:0",
                  security: Security | None = None, no_workers_timeout: str = NO_WORKERS_TIMEOUT) -> LocalCluster:
    """A LocalCluster of single-threaded worker processes on loopback with glibc's default allocator behaviour,
    behind TLS with a certificate authority of its own (``security``, default a new temporary one); a task that
    waits ``no_workers_timeout`` with no worker in the cluster fails (``distributed.scheduler.NoWorkerError``)
    instead of waiting for ever."""
    security = security or Security.temporary()
    use_security_loader()  # before the nannies start: they hand this configuration to their workers
    with dask.config.set({**WORKER_ENVIRON, "distributed.scheduler.no-workers-timeout": no_workers_timeout}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               protocol="tls://", security=security, dashboard_address=loopback(dashboard_address))
    remember_security(cluster.scheduler_address, security, cluster)
    return cluster


@contextmanager
def local_executor(n_workers: int) -> Iterator[Client | None]:
    """A client of a :func:`local_cluster` of ``n_workers`` workers, or None (run in process) for 0."""
    if n_workers == 0:
        yield None
        return
    with local_cluster(n_workers) as cluster, Client(cluster) as client:
        yield client


def write_tls_files(folder: Path, days: int = 30) -> Security:
    """A certificate authority for one cluster and a certificate + key per role (scheduler, worker, client), signed
    by it, as PEM files in ``folder`` (0700, files 0600); returns the client's :class:`Security` over them.

    The authority's own key is never written: once the role certificates are signed nobody can add another.
    Dask's CLI takes them as ``--tls-ca-file ca.pem --tls-cert ROLE.pem --tls-key ROLE-key.pem``; Dask's
    configuration as ``distributed.comm.tls.{ca-file, ROLE.cert, ROLE.key}`` (see :func:`tls_environ`).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = private_dir(folder)
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = "sonimage-run-ca"
    write_private_atomic(folder / "ca.pem", certificate(ca_name, ca_key, ca_name, ca_key, True)
                   .public_bytes(serialization.Encoding.PEM))
    for role in TLS_ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_atomic(folder / f"{role}.pem", certificate(f"sonimage-{role}", key, ca_name, ca_key, False)
                       .public_bytes(serialization.Encoding.PEM))
        write_private_atomic(folder / f"{role}-key.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return Security(**tls_kwargs(folder, "client"))


def tls_kwargs(folder: Path, role: str) -> dict[str, str]:
    """The :class:`Security` arguments of ``role`` for the files of :func:`write_tls_files` in ``folder``."""
    folder = Path(folder)
    return {"require_encryption": True, "tls_ca_file": str(folder / "ca.pem"),
            f"tls_{role}_cert": str(folder / f"{role}.pem"), f"tls_{role}_key": str(folder / f"{role}-key.pem")}


def tls_environ(folder: Path) -> dict[str, str]:
    """Dask configuration as environment variables that gives every process (scheduler, workers, clients, flow runs)
    the TLS files of ``folder`` for each role."""
    folder = Path(folder)
    env = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
           "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(folder / "ca.pem")}
    for role in TLS_ROLES:
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT"] = str(folder / f"{role}.pem")
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__KEY"] = str(folder / f"{role}-key.pem")
    return env
