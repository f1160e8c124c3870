"""A one-node SLURM cluster on loopback for the tests (Debian's slurm-wlm and munge, run as root).

``slurmctld`` and ``slurmd`` run with a generated ``slurm.conf`` and their own state, spool, pid and log files
under one folder; ``munged`` is the machine's (started here when it is not running). Everything is stopped by
the pids in the pid files. :func:`one_node` raises :class:`Unavailable` naming the part that could not start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Unavailable(RuntimeError):
    """A daemon or tool of the cluster cannot start here (the message names it)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _munge() -> None:
    """Start the machine's munged as the munge user when ``munge -n | unmunge`` does not already succeed."""
    if not shutil.which("munged") or not shutil.which("munge"):
        raise Unavailable("munge is not installed (apt-get install munge)")

    def works() -> bool:
        enc = subprocess.run(["munge", "-n"], capture_output=True)
        return enc.returncode == 0 and subprocess.run(["unmunge"], input=enc.stdout,
                                                      capture_output=True).returncode == 0
    if works():
        return
    if os.geteuid() != 0:
        raise Unavailable("munged is not running and starting it needs root")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "-c"], check=True)
    Path("/run/munge").mkdir(exist_ok=True)
    # munged refuses a socket folder others cannot search; Debian's package may leave it 0750 (a fresh machine)
    os.chmod("/run/munge", 0o755)
    shutil.chown("/run/munge", "munge", "munge")
    shutil.chown("/etc/munge/munge.key", "munge", "munge")
    os.chmod("/etc/munge/munge.key", 0o400)
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=False, capture_output=True)
    for _ in range(50):
        if works():
            return
        time.sleep(0.1)
    raise Unavailable("munged did not start (munge -n | unmunge fails)")


def write_conf(folder: Path, cpus: int = 2, memory_mb: int = 8000) -> Path:
    """A minimal one-node ``slurm.conf`` (see the shared NOTES) with free ports and private state."""
    host = socket.gethostname()
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=sonimage-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "AuthType=auth/munge", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "ReturnToService=2", "MpiDefault=none", "SchedulerType=sched/backfill",
        "KillWait=5", "MinJobAge=10", "InactiveLimit=0",
        f"NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES", ""]))
    return conf


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@contextmanager
def one_node(folder: Path, cpus: int = 2) -> Iterator[dict[str, str]]:
    """Run slurmctld + slurmd for the block; yield the environment (``SLURM_CONF``) for sbatch/squeue/scancel."""
    for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"):
        if not shutil.which(tool):
            raise Unavailable(f"{tool} is not installed (apt-get install slurm-wlm)")
    if os.geteuid() != 0:
        raise Unavailable("slurmd must run as root")
    _munge()
    conf = write_conf(folder, cpus)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        for daemon in (["slurmctld", "-c"], ["slurmd"]):
            run = subprocess.run(daemon, env=env, capture_output=True, text=True)
            if run.returncode != 0:
                raise Unavailable(f"{daemon[0]} did not start: {run.stderr.strip()[:300]}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout
            if state.strip() in ("idle", "mixed", "allocated"):
                break
            time.sleep(0.5)
        else:
            log = (folder / "log" / "slurmd.log")
            raise Unavailable(f"the SLURM node did not become idle (sinfo: {state.strip()!r}; see {log})")
        yield {"SLURM_CONF": str(conf)}
    finally:
        _stop(folder / "slurmd.pid")
        _stop(folder / "slurmctld.pid")
