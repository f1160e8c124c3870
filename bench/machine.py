"""What the benchmarks record about the machine they ran on: it may be shared, so load goes with every result."""

from __future__ import annotations

import os
import platform
import resource
import time


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
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Clock:
    """Wall and CPU (this process) seconds since creation."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu
