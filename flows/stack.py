"""sonimage's services as plain processes on loopback, no containers: ``make stack`` (or ``python -m flows.stack``).

PostgreSQL (a throwaway cluster, run as the ``postgres`` user when started by root), the Prefect server on it, a
process work pool and its worker, a Dask scheduler with workers, and an S3-compatible object store (moto's server).
Every secret comes from the environment or is generated for the session (``SONIMAGE_DB_PASSWORD``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, the Prefect API's auth string, the Dask cluster's certificate
authority); nothing is written into the repository. The session folder is 0700 and its files are created with
umask 077. The Prefect server (API and UI) requires its auth string (:mod:`flows.server`); the Dask scheduler and
workers speak TLS only, with certificates in ``FOLDER/tls`` that every process of the stack, and every client that
sources ``FOLDER/stack.env``, finds through Dask's configuration (:func:`sonimage.cluster.tls_environ`). Tests start
the same pieces through :class:`Stack`.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from flows.environment import DEFAULTS
from flows.server import AUTH_FILE, healthy, new_auth_string, server_environ
from sonimage.cli import OUTPUT_UMASK
from sonimage.cluster import remember_security, tls_environ, use_security_loader, write_tls_files
from sonimage.io import private_dir, write_private_atomic

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
POOL = "sonimage-process"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found (Debian: apt-get install postgresql)")
    return found


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its commands as the unprivileged ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Stack:
    """Processes started for a session: each logs to ``folder/logs/<name>.log``; :meth:`stop` ends them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = private_dir(Path(folder).resolve())
        (self.folder / "logs").mkdir(exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {**DEFAULTS, "PREFECT_HOME": str(self.folder / "prefect"),
                                    "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_": "None"}
        self._cleanup: list[Path] = []

    def environ(self) -> dict[str, str]:
        """The environment clients of the stack need (on top of this process's)."""
        return {**os.environ, **self.env}

    def start(self, name: str, cmd: list[str], umask: int = 0o077, **env: str) -> subprocess.Popen:
        """Start ``cmd`` in the background, logging to ``logs/<name>.log``; what it writes is private (umask 077)
        unless it writes outputs (``umask=OUTPUT_UMASK``)."""
        log = open(self.folder / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen([str(c) for c in cmd], env={**self.environ(), **env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, umask=umask)
        log.close()
        self.procs[name] = proc
        return proc

    def wait_until(self, name: str, ready, timeout: float = 120.0) -> None:
        """Wait until ``ready()`` is true; fail naming the process and its log when it died or took too long."""
        deadline = time.monotonic() + timeout
        while not ready():
            proc = self.procs[name]
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.folder / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                state = f"exited with {proc.returncode}" if proc.returncode is not None else "timed out"
                raise RuntimeError(f"{name} {state} (log {self.folder / 'logs' / name}.log):\n{tail}")
            time.sleep(0.25)

    def postgres(self) -> str:
        """A fresh PostgreSQL cluster on a free loopback port; returns the SQLAlchemy URL of its ``prefect`` db."""
        data = Path(tempfile.mkdtemp(prefix="sonimage-pg-"))  # outside folder: the postgres user must reach it
        self._cleanup.append(data)
        password = os.environ.get("SONIMAGE_DB_PASSWORD") or secrets.token_urlsafe(16)
        (data / "pw").write_text(password)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(data, user.pw_uid, user.pw_gid)
            os.chown(data / "pw", user.pw_uid, user.pw_gid)
        subprocess.run([*_as_postgres_user(), _postgres_bin("initdb"), "-D", str(data / "db"), "-U", "sonimage",
                        "--auth=scram-sha-256", f"--pwfile={data / 'pw'}", "-E", "UTF8"],
                       check=True, capture_output=True)
        (data / "pw").unlink()
        port = free_port()
        self.start("postgres", [*_as_postgres_user(), _postgres_bin("postgres"), "-D", data / "db", "-p", port,
                                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}"])
        ready = [_postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)]
        self.wait_until("postgres", lambda: subprocess.run(ready, capture_output=True).returncode == 0, 60)
        subprocess.run([_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "sonimage", "prefect"],
                       check=True, capture_output=True, env={**os.environ, "PGPASSWORD": password})
        return f"postgresql+asyncpg://sonimage:{password}@127.0.0.1:{port}/prefect"

    def prefect_server(self, database: str | None = None) -> str:
        """The Prefect server (on ``database``, else SQLite in the stack's folder) with its scheduler service and
        its UI, requiring a generated auth string that clients get as ``PREFECT_API_AUTH_STRING``."""
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        home = private_dir(Path(self.env["PREFECT_HOME"]))
        secret = new_auth_string(home)
        env = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", **server_environ(home, secret)}
        if database:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
        self.start("prefect-server", [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", port,
                                      "--analytics-off"], **env)
        self.wait_until("prefect-server", lambda: healthy(f"{url}/health"), 180)
        self.env.update(PREFECT_API_URL=url, PREFECT_API_AUTH_STRING=secret)
        return url

    def dask(self, workers: int = 2) -> str:
        """A Dask scheduler and ``workers`` single-threaded workers (each under a nanny) on loopback, TLS only, with
        a certificate authority made for the session; returns the scheduler's address."""
        spec = self.folder / "dask-scheduler.json"
        spec.unlink(missing_ok=True)
        security = write_tls_files(self.folder / "tls")
        self.env.update(tls_environ(self.folder / "tls"))
        port = free_port()
        self.start("dask-scheduler", [BIN / "dask", "scheduler", "--protocol", "tls", "--host", "127.0.0.1",
                                      "--port", "0", "--dashboard-address", f"127.0.0.1:{port}",
                                      "--scheduler-file", spec])
        self.wait_until("dask-scheduler", spec.exists, 60)
        for i in range(workers):
            self.start(f"dask-worker-{i}", [BIN / "dask", "worker", "--scheduler-file", spec, "--nthreads", "1",
                                            "--protocol", "tls", "--host", "127.0.0.1",
                                            "--dashboard-address", "127.0.0.1:0", "--name", f"w{i}"],
                       umask=OUTPUT_UMASK)
        from distributed import Client

        with Client(scheduler_file=str(spec), timeout=60, security=security) as client:
            client.wait_for_workers(workers, timeout=120)
            address = client.scheduler.address
        use_security_loader()  # clients of the stack's scheduler in this process (tests) find its credentials
        remember_security(address, security, self)
        self.env.update(SONIMAGE_DASK_ADDRESS=address, SONIMAGE_DASK_DASHBOARD=f"http://127.0.0.1:{port}/status")
        return address

    def object_store(self, buckets: tuple[str, ...] = ()) -> str:
        """moto's S3-compatible server with ``buckets``; returns its endpoint (also exported for fsspec's s3)."""
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        self.env.update(AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID") or secrets.token_hex(10),
                        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY") or secrets.token_hex(20),
                        AWS_DEFAULT_REGION="us-east-1", FSSPEC_S3_ENDPOINT_URL=endpoint)
        self.start("object-store", [BIN / "moto_server", "-H", "127.0.0.1", "-p", port])
        self.wait_until("object-store", lambda: healthy(f"{endpoint}/moto-api/"), 60)
        for bucket in buckets:
            req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
            urllib.request.urlopen(req, timeout=10).close()
        return endpoint

    def work_pool_worker(self, pool: str = POOL) -> None:
        """The process work pool and a worker polling it (flow runs inherit the stack's environment)."""
        created = subprocess.run([BIN / "prefect", "--no-prompt", "work-pool", "create", pool, "--type", "process",
                                  "--overwrite"], env=self.environ(), capture_output=True, text=True)
        if created.returncode:
            raise RuntimeError(f"work pool {pool}: {created.stdout}{created.stderr}")
        self.start("prefect-worker", [BIN / "prefect", "worker", "start", "--pool", pool, "--type", "process"],
                   umask=OUTPUT_UMASK, PREFECT_WORKER_QUERY_SECONDS="2", SONIMAGE_CHECKOUT=str(REPO))

    def deploy(self, prefect_file: Path = REPO / "deployments" / "prefect.yaml") -> subprocess.CompletedProcess:
        """Register the deployments of ``prefect_file`` on the stack's server."""
        return subprocess.run([BIN / "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", prefect_file],
                              cwd=REPO, env={**self.environ(), "SONIMAGE_CHECKOUT": str(REPO)}, capture_output=True,
                              text=True, timeout=300)

    def stop(self) -> None:
        """End every process this stack started (newest first) and remove the database folder."""
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for folder in self._cleanup:
            shutil.rmtree(folder, ignore_errors=True)


def up(folder: Path, workers: int = 2, postgres: bool = True) -> Stack:
    """The whole stack: PostgreSQL (or SQLite without ``postgres``), Prefect server, Dask, object store, work pool
    worker, deployments."""
    stack = Stack(folder)
    try:
        stack.prefect_server(stack.postgres() if postgres else None)
        stack.object_store(("sonimage-drop", "sonimage-study"))  # first: Dask workers inherit its credentials
        stack.dask(workers)
        stack.work_pool_worker()
        deployed = stack.deploy()
        if deployed.returncode:
            raise RuntimeError(f"prefect deploy failed:\n{deployed.stdout}{deployed.stderr}")
    except BaseException:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None) -> int:
    """Start the stack, write its client environment to ``FOLDER/stack.env`` and run until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m flows.stack", description=__doc__)
    parser.add_argument("folder", type=Path, help="state and logs of the session (not in the repository)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    os.umask(OUTPUT_UMASK)  # flow runs of the stack write outputs as `sonimage` does
    stack = up(args.folder, args.workers)
    env_file = args.folder / "stack.env"
    write_private_atomic(env_file, "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(stack.env.items()))
                         .encode())
    print(f"stack up: Prefect API {stack.env['PREFECT_API_URL']}, Dask {stack.env['SONIMAGE_DASK_ADDRESS']} "
          f"(dashboard {stack.env['SONIMAGE_DASK_DASHBOARD']}), object store {stack.env['FSSPEC_S3_ENDPOINT_URL']}")
    print(f"client environment (API auth string, Dask TLS files): source {env_file}; Prefect UI "
          f"{stack.env['PREFECT_API_URL'].removesuffix('/api')} (log in with the auth string in "
          f"{Path(stack.env['PREFECT_HOME']) / AUTH_FILE}); logs in {args.folder / 'logs'}; Ctrl-C stops everything")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
