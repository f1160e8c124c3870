"""One real Prefect server for a run whose Dask workers are separate processes, open to this run only.

Without ``PREFECT_API_URL`` every worker process would start its own temporary server on the same SQLite file
(slow, see shared NOTES); so a run starts one server on a free loopback port and every worker inherits its URL.

The server requires HTTP basic auth (Prefect's ``PREFECT_SERVER_API_AUTH_STRING``; clients send
``PREFECT_API_AUTH_STRING``) with a secret generated for the run: it reaches the server and the processes the run
starts (the flow, its Dask workers) through their environment only, never a task parameter, a log line or the
terminal. It is kept 0600 in ``$PREFECT_HOME/api-auth-string`` so that the UI, served by the same server on
loopback for as long as the run lasts, can be logged into. The server's files (its SQLite database, the UI's copy)
are created with umask 077.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sonimage.io import write_private_atomic

AUTH_FILE = "api-auth-string"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether ``url`` answers 200 (Prefect's ``/api/health`` needs no credentials)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def server_environ(home: Path, secret: str) -> dict[str, str]:
    """The environment of a Prefect server that requires ``secret`` and serves its UI from a copy under ``home``."""
    return {"PREFECT_SERVER_API_AUTH_STRING": secret, "PREFECT_SERVER_UI_ENABLED": "true",
            "PREFECT_UI_STATIC_DIRECTORY": str(Path(home) / "ui")}


def new_auth_string(home: Path) -> str:
    """A fresh API secret, kept (0600) in ``home/api-auth-string`` for logging into the UI."""
    secret = secrets.token_urlsafe(32)
    write_private_atomic(Path(home) / AUTH_FILE, secret.encode())
    return secret


@contextmanager
def prefect_server(timeout: float = 180.0) -> Iterator[str]:
    """Yield the API URL: the configured one, or an authenticated server started here (on loopback, in
    ``$PREFECT_HOME``) for the duration of the block, its URL and secret exported to this process's environment."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    home = Path(os.environ.get("PREFECT_HOME", ".prefect"))
    secret = new_auth_string(home)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = open(home / "server.log", "ab")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_AUTH_STRING"}
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port), "--analytics-off"], stdout=log, stderr=subprocess.STDOUT,
                            env={**env, **server_environ(home, secret)}, umask=0o077)
    try:
        deadline = time.monotonic() + timeout
        while not healthy(f"{url}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start (see {log.name})")
            time.sleep(0.5)
        os.environ.update(PREFECT_API_URL=url, PREFECT_API_AUTH_STRING=secret)
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_API_AUTH_STRING", None)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
