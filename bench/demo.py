"""Benchmark: ``make demo`` as a new user runs it, timed step by step with each process's CPU and memory (issue 15).

One command: ``python bench/demo.py [--patients N] [--out DIR]`` prints a table and writes ``bench/results/demo.json``.

- **Fresh machine**: the feature kernels' Numba cache is removed first, then filled by the step ``make install``
  ends with (``python -m sonimage.lesions.warmup``), timed on its own row and not counted in ``make demo``.
- **Steps**: exactly the Makefile's ``demo`` target, venv install excluded: ``sonimage synth SITE [--patients N]
  --size small --seed 1 --workers 2``, then ``sonimage run SITE/dicom OUT --linking … --clinical … --settings
  deployments/demo-settings.json`` (the embedded default: a Prefect server and a LocalCluster of 2 workers, both
  started by the run). Without ``--patients`` the study has its real size (SONIA 100, IMPACT 200, TRANSCAN 147).
- **Measured** (psutil, every 0.2 s over each step's process tree, plus the exact ``RUSAGE_CHILDREN`` total): wall
  and CPU seconds per step; peak resident memory per process role (the command's own process, each Dask worker,
  the Prefect server, synthesis pool workers); the run's own stage clock and each stage's peak MB of the flow
  process and of the largest worker (``run_summary.json``), and the largest
  series written, so the workers' peak can be set against one series; the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import psutil

from machine import describe, load, load_line
from prefect_scale import TreeSampler, run_command

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SONIMAGE = str(Path(sys.executable).parent / "sonimage")


class RoleSampler(TreeSampler):
    """:class:`TreeSampler` that also remembers what each process is (from its command line)."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.role: dict[int, str] = {}

    def sample(self) -> None:
        super().sample()
        for pid in self.rss.keys() - self.role.keys():
            try:
                cmd = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue
            self.role[pid] = ("command" if pid == self.root else "prefect server" if "prefect" in cmd
                              and "server" in cmd else "worker" if "multiprocessing" in cmd or "distributed" in cmd
                              else "other")

    def summary(self) -> dict:
        """:meth:`TreeSampler.summary` and, per role: processes, CPU seconds and the largest peak resident MB of one
        process."""
        out: dict[str, dict[str, float]] = {}
        for pid, role in self.role.items():
            row = out.setdefault(role, {"processes": 0, "cpu_s": 0.0, "peak_mb_one": 0.0})
            row["processes"] += 1
            row["cpu_s"] += self.cpu.get(pid, 0.0)
            row["peak_mb_one"] = max(row["peak_mb_one"], self.rss.get(pid, 0.0))
        return super().summary() | {"roles": out}


def step(args: list[str]) -> dict:
    """One command run to completion, its process tree sampled by role (:func:`prefect_scale.run_command`)."""
    return run_command(args, dict(os.environ), sampler_type=RoleSampler)


def clear_kernel_cache() -> int:
    """Remove the Numba cache files of sonimage's kernels (the package's ``__pycache__``, or ``NUMBA_CACHE_DIR``),
    as on a fresh checkout; how many were removed."""
    roots = [Path(os.environ["NUMBA_CACHE_DIR"])] if os.environ.get("NUMBA_CACHE_DIR") else [REPO / "sonimage"]
    files = [f for root in roots for pattern in ("*.nbi", "*.nbc") for f in root.rglob(pattern)]
    for f in files:
        f.unlink()
    return len(files)


def minutes(seconds: float) -> str:
    """``seconds`` as "M min SS.S s"."""
    whole, rest = divmod(round(seconds, 1), 60)  # rounded first: 599.96 s is "10 min 00.0 s", not "9 min 60.0 s"
    return f"{whole:.0f} min {rest:04.1f} s"


def largest_series_mb(volumes: Path) -> float:
    """Uncompressed size of the largest converted series (a Zarr array's shape times its item size)."""
    largest = 0.0
    for meta in volumes.rglob("zarr.json"):
        node = json.loads(meta.read_text())
        if node.get("node_type") == "array" and len(node.get("shape", [])) == 3:
            itemsize = int("".join(c for c in node["data_type"] if c.isdigit()) or 8) // 8
            n = 1
            for s in node["shape"]:
                n *= s
            largest = max(largest, n * itemsize / 2**20)
    return largest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, help="patients per cohort (default: the real study size)")
    ap.add_argument("--out", type=Path, default=RESULTS / "data" / "demo", help="site and outputs go here")
    ap.add_argument("--keep", action="store_true", help="keep the site and outputs")
    args = ap.parse_args()
    site, out = args.out / "site", args.out / "out"
    for folder in (site, out):  # only what this benchmark makes: --out may be a folder that holds other things
        shutil.rmtree(folder, ignore_errors=True)
    cleared = clear_kernel_cache()
    warmup = step([sys.executable, "-m", "sonimage.lesions.warmup"])
    before = load()
    synth = step([SONIMAGE, "synth", str(site), *(["--patients", str(args.patients)] if args.patients else []),
                  "--size", "small", "--seed", "1", "--workers", "2"])
    mid = load()
    run = step([SONIMAGE, "run", str(site / "dicom"), str(out), "--linking", str(site / "site-private" / "linking.csv"),
                "--clinical", str(site / "truth"), "--settings", str(REPO / "deployments" / "demo-settings.json")])
    after = load()
    summary = json.loads((out / "run_summary.json").read_text())
    series_mb = largest_series_mb(out / "volumes")
    total_wall, total_cpu = synth["wall_s"] + run["wall_s"], synth["tree_cpu_s"] + run["tree_cpu_s"]
    n = summary["patients"]
    print(f"\nmake demo, {n} patients ({summary['input files']} DICOM files, {summary['lesions']} lesions), "
          "venv install excluded")
    print("| step | wall | CPU s | CPU s per patient | load at start |")
    print("|---|---:|---:|---:|---:|")
    for name, s, ld in (("synthesis", synth, before), ("DICOM -> report (sonimage run)", run, mid)):
        print(f"| {name} | {minutes(s['wall_s'])} | {s['tree_cpu_s']:.0f} | "
              f"{s['tree_cpu_s'] / n:.2f} | {ld['load_1min']:.1f} |")
    print(f"| **make demo** | **{minutes(total_wall)}** | {total_cpu:.0f} | "
          f"{total_cpu / n:.2f} | |")
    print(f"(make install's kernel warm-up, on a cache emptied of {cleared} files: {minutes(warmup['wall_s'])}, "
          f"{warmup['tree_cpu_s']:.0f} CPU s, not counted above)")
    print("\nthe run's stage clock: " + ", ".join(f"{k[5:-4]} {v:.1f} s" for k, v in summary.items()
                                                   if k.startswith("time ")))
    print("each stage's own peak resident MB (run summary): " + ", ".join(
        f"{k[8:]} {v}" for k, v in summary.items() if k.startswith("peak MB ")))
    print("| process (run) | processes | CPU s | peak MB (largest one) |")
    print("|---|---:|---:|---:|")
    for role, r in sorted(run["roles"].items()):
        print(f"| {role} | {r['processes']} | {r['cpu_s']:.0f} | {r['peak_mb_one']:.0f} |")
    print(f"largest series: {series_mb:.1f} MB uncompressed")
    print(load_line(before, after))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo.json").write_text(json.dumps(
        {"machine": describe(), "load_before": before, "load_between": mid, "load_after": after, "warmup": warmup,
         "synth": synth, "run": run, "run_summary": summary, "largest_series_mb": series_mb, "total_wall_s": total_wall,
         "total_cpu_s": total_cpu}, indent=1))
    if not args.keep:
        for folder in (site, out):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
