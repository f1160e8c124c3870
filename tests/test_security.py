"""Services that let no one else in (issue 17, point 1): real clusters, a real Prefect server, real connections.

Every Dask cluster sonimage starts speaks TLS with mutual authentication and refuses a client without its
credentials (plain TCP, another certificate authority, a certificate it did not sign, no certificate); nothing it
starts listens beyond loopback unless asked. The Prefect server of `sonimage run` refuses unauthenticated API calls
and serves its UI while the run lasts; its secret appears in no output, log or printed line. Secrets and
site-private files are 0600 in 0700 folders, outputs follow the CLI's umask (027).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from distributed import Client
from distributed.security import Security

from sonimage.cluster import local_cluster, loopback, tls_kwargs, write_tls_files
from sonimage.io import write_private_atomic
from tests.helpers import require

pytestmark = pytest.mark.slow  # starts Dask clusters, a Prefect server and the stack


BIN = Path(sys.executable).parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _listening(pids: set[int]) -> set[tuple[int, str, int]]:
    return {(c.pid, c.laddr.ip, c.laddr.port) for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def _tree(pid: int) -> set[int]:
    proc = psutil.Process(pid)
    return {pid} | {p.pid for p in proc.children(recursive=True)}


def _refused(address: str, security: Security | None) -> None:
    with pytest.raises(OSError):  # CommClosedError, FatalCommClosedError and timeouts are OSErrors
        Client(address, security=security, timeout=10).close()


def _assert_refuses_strangers(address: str, ca: str) -> None:
    """A plain TCP client, one of another authority, and one that trusts the cluster's authority but shows a
    certificate it did not sign, or none at all, are all refused."""
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    _refused(f"tcp://{host}:{port}", Security(require_encryption=False))
    _refused(address, Security.temporary())
    stranger = Security.temporary()
    _refused(address, Security(require_encryption=True, tls_ca_file=ca, tls_client_cert=stranger.tls_client_cert,
                               tls_client_key=stranger.tls_client_key))
    context = ssl.create_default_context(cadata=ca) if "\n" in ca else ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw) as tls:  # TLS 1.3: the server judges the client's certificate after
                tls.sendall(b"\0" * 8)  # the handshake, and closes the connection instead of answering
                if not tls.recv(1):
                    raise ConnectionResetError("closed by the scheduler")


def test_local_cluster_refuses_clients_without_its_credentials() -> None:
    with local_cluster(1) as cluster:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        _assert_refuses_strangers(cluster.scheduler_address, cluster.security.tls_ca_file)
        with Client(cluster.scheduler_address, timeout=30) as client:  # this process finds the credentials
            assert list(client.run(os.getpid)) == list(client.scheduler_info()["workers"])
            assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])
            def scheduler_seen_from_a_task(address: str) -> str:
                with Client(address) as inner:
                    return inner.scheduler.address

            seen = client.submit(scheduler_seen_from_a_task, cluster.scheduler_address).result()
            assert seen == cluster.scheduler_address  # a task's own client (the study analysis) gets in too


def test_clusters_listen_on_loopback_only() -> None:
    me = os.getpid()
    before = _listening({me})
    with local_cluster(1, dashboard_address=":0") as cluster:  # no host given: Dask alone would bind 0.0.0.0
        listening = _listening(_tree(me)) - before
        dashboard = int(re.search(r":(\d+)/", cluster.dashboard_link).group(1))
    assert dashboard in {port for _, _, port in listening}
    assert len(listening) >= 5  # scheduler, dashboard, nanny, worker, worker HTTP
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening
    assert loopback(":8787") == "127.0.0.1:8787" and loopback("0.0.0.0:8787") == "0.0.0.0:8787"  # when asked


def test_tls_files_are_private_and_signed_by_a_run_authority(tmp_path: Path) -> None:
    security = write_tls_files(tmp_path / "tls")
    assert mode(tmp_path / "tls") == 0o700
    files = sorted(p.name for p in (tmp_path / "tls").iterdir())
    assert files == ["ca.pem", "client-key.pem", "client.pem", "scheduler-key.pem", "scheduler.pem",
                     "worker-key.pem", "worker.pem"]  # the authority's own key is not among them
    assert {mode(tmp_path / "tls" / f) for f in files} == {0o600}
    assert security.require_encryption and security.tls_client_key == str(tmp_path / "tls" / "client-key.pem")
    assert tls_kwargs(tmp_path / "tls", "worker")["tls_worker_cert"] == str(tmp_path / "tls" / "worker.pem")


def test_private_files_are_0600_in_0700_folders(tmp_path: Path) -> None:
    path = write_private_atomic(tmp_path / "site-private" / "linking.csv", b"PatientID,subject_id\n")
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    write_private_atomic(path, b"again\n")
    assert mode(path) == 0o600 and path.read_bytes() == b"again\n"


def test_run_refuses_a_plain_tcp_scheduler(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_DISTRIBUTED__COMM")}
    for target, reason in (("tcp://10.0.0.1:8786", "over TLS only"), ("tls://10.0.0.1:8786", "no Dask TLS")):
        done = subprocess.run([str(BIN / "sonimage"), "run", str(tmp_path), str(tmp_path / "out"), "--cluster", target],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()  # refused before any server started or anything was written


@pytest.fixture(scope="module")
def stack_dask(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from flows.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        stack.dask(1)
        yield stack
    finally:
        stack.stop()


def test_stack_scheduler_and_workers_refuse_strangers(stack_dask) -> None:
    address = stack_dask.env["SONIMAGE_DASK_ADDRESS"]
    tls = stack_dask.folder / "tls"
    assert address.startswith("tls://127.0.0.1:")
    assert (mode(stack_dask.folder), mode(tls), mode(tls / "worker-key.pem")) == (0o700, 0o700, 0o600)
    _assert_refuses_strangers(address, str(tls / "ca.pem"))
    with Client(address, security=Security(**tls_kwargs(tls, "client")), timeout=30) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 1 and all(w.startswith("tls://") for w in workers)
    env = stack_dask.environ()  # what stack.env gives clients: Dask finds the files through its configuration
    probe = "from distributed import Client; import sys; print(len(Client(sys.argv[1], timeout=30).run(len, [])))"
    done = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "1", done.stderr[-2000:]
    pids = set().union(*(_tree(p.pid) for p in stack_dask.procs.values()))
    listening = _listening(pids)
    assert len(listening) >= 4 and {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening


@pytest.fixture(scope="module")
def cli_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`sonimage run` on one reference study (FDG PET + RTSTRUCT), its server probed while the run lasts."""
    root = require(shared_data / "sts-001-fdg-pet")
    base = tmp_path_factory.mktemp("run")
    out, home = base / "out", base / "site-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DASK_DISTRIBUTED__COMM"))}
    env.update(SONIMAGE_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(BIN / "sonimage"), "run", str(root), str(out), "--cohort", "sts", "--workers", "1",
                             "--dashboard", ":0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    probes: dict = {}
    try:
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"Prefect UI while the run lasts: (http://\S+)", line)
            if found:
                probes = _probe(found.group(1), out / ".prefect" / "api-auth-string")
                break
        lines += proc.stdout.readlines()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {"returncode": proc.returncode, "printed": "".join(lines), "out": out, "home": home, "probes": probes}


def _probe(ui: str, auth_file: Path) -> dict:
    """What the run's server answers: the API without and with the run's secret, and the UI."""
    secret = auth_file.read_text()
    basic = {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"guess").decode()}
    filter_runs = f"{ui}/api/flow_runs/filter"
    with httpx.Client(timeout=30) as http:
        answers = {"anonymous": http.post(filter_runs, json={}).status_code,
                   "wrong secret": http.post(filter_runs, json={}, headers=wrong).status_code,
                   "ui": http.get(ui, headers={"Accept": "text/html"}, follow_redirects=True).status_code,
                   "ui login": http.get(f"{ui}/ui-settings").json()["auth"]}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the flow run appears once the cluster is up
            runs = http.post(filter_runs, json={}, headers=basic)
            answers["authenticated"] = runs.status_code
            if runs.status_code != 200 or runs.json():
                break
            time.sleep(0.5)
        answers["runs"] = [r["name"] for r in runs.json()] if runs.status_code == 200 else []
    return {**answers, "secret": secret}


def test_run_server_refuses_unauthenticated_api_calls(cli_run: dict) -> None:
    assert cli_run["returncode"] == 0, cli_run["printed"][-3000:]
    probes = cli_run["probes"]
    assert (probes["anonymous"], probes["wrong secret"]) == (401, 401)
    assert probes["authenticated"] == 200 and len(probes["runs"]) == 1
    assert probes["ui"] == 200 and probes["ui login"] == "BASIC"  # served while the run lasts, behind the secret


def test_run_prints_no_dead_link_and_no_secret(cli_run: dict) -> None:
    printed, out = cli_run["printed"], cli_run["out"]
    ui = re.search(r"Prefect UI while the run lasts: (http://\S+)", printed).group(1)
    links = re.findall(r"View at (http://\S+)", printed)
    assert links and all(link.startswith(f"{ui}/runs/flow-run/") for link in links)  # the UI probed above
    assert "stopped with the run" in printed and "make stack" in printed
    secret = cli_run["probes"]["secret"].encode()
    holders = [p.relative_to(out) for p in out.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert holders == [Path(".prefect/api-auth-string")]
    assert secret.decode() not in printed


def test_run_writes_secrets_private_and_outputs_by_umask(cli_run: dict) -> None:
    out, home = cli_run["out"], cli_run["home"]
    prefect = out / ".prefect"
    assert (mode(home), mode(home / "pseudonym.key")) == (0o700, 0o600)
    assert (mode(prefect), mode(prefect / "api-auth-string"), mode(prefect / "prefect.db")) == (0o700, 0o600, 0o600)
    assert mode(out) == 0o750 and mode(out / "manifest.parquet") == 0o640
    assert {mode(p) for p in (out / "volumes").rglob("*") if p.is_dir()} == {0o750}
    assert {mode(p) for p in (out / "features").rglob("*") if p.is_file()} == {0o640}
