"""What the benchmarks record about the machine they ran on: it may be shared, so load goes with every result."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def load() -> dict[str, float]:
    """1-, 5- and 15-minute load averages and the number of CPUs."""
    one, five, fifteen = os.getloadavg()
    return {"load_1min": one, "load_5min": five, "load_15min": fifteen, "cpus": os.cpu_count() or 0}


def describe() -> dict[str, object]:
    """Machine facts for a result file: host platform, Python, CPUs and current load, UTC time."""
    return {"platform": platform.platform(), "python": platform.python_version(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **load()}


def load_line(before: dict[str, float], after: dict[str, float]) -> str:
    """One line saying under what load a table was measured."""
    return (f"machine: {after['cpus']} CPUs, load average (1 min) {before['load_1min']:.1f} at start, "
            f"{after['load_1min']:.1f} at end; a load above the CPU count means other work shared the cores, "
            "so compare CPU seconds (per process) rather than wall seconds")


def peak_mb() -> float:
    """This process's own peak resident memory in MB: ``VmHWM`` of ``/proc/self/status`` where there is one.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it over ``execve`` from the process that forked this one, so a
    Dask worker spawned by a LocalCluster's nanny (which lives in the benchmark's client process) reported the
    client's peak whenever that was higher (a 600 MB parent: the new child's ru_maxrss 614 MB, VmHWM 13 MB)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Clock:
    """Wall and CPU (this process) seconds since creation."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def synth_cohort(target: Path, patients: int, size: str, seed: int) -> Path:
    """The DICOM root of a synthetic SONIA cohort at ``target`` (``sonimage synth``, generated once)."""
    if not (target / "dicom").is_dir():
        subprocess.run([str(Path(sys.executable).parent / "sonimage"), "synth", str(target), "--cohorts", "sonia",
                        "--patients", str(patients), "--size", size, "--seed", str(seed), "--workers", "2"],
                       check=True)
    return target / "dicom"


def first_patients(root: Path, n: int, into: Path) -> Path:
    """A DICOM tree of the first ``n`` patients of ``root``'s cohort, made of hard links."""
    cohort_dir = next(p for p in sorted(root.iterdir()) if p.is_dir())
    patients = sorted(p for p in cohort_dir.iterdir() if p.is_dir())
    if len(patients) < n:
        raise SystemExit(f"{cohort_dir} holds {len(patients)} patients, {n} asked for")
    target = into / "dicom"
    for patient in patients[:n]:
        for path in patient.rglob("*"):
            if path.is_file():
                dest = target / path.relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, dest)
    return target
