"""Benchmark: the study pipeline (DICOM → Zarr → lesion features → tables) on N synthetic patients × W workers.

One command: ``python bench/scale.py`` prints a table and writes ``bench/results/scale.json``.

- **Cohort**: one synthetic SONIA cohort of the largest N (``sonimage synth``, ``--size``, generated once into
  ``bench/results/data``); smaller N take its first N patients (hard links, no copies).
- **Work**: the library stages the flow maps to tasks, without Prefect's orchestration: ``convert_tree`` (header
  index, one task per series) then ``features_tree`` (the whole lesion stage, one task per patient:
  FES registration and reading, features of every lesion; then the lesion/patient tables), on a fresh
  ``LocalCluster`` of W single-threaded worker processes per run; cluster start-up and worker imports are not timed.
- **Measured**: wall seconds per stage and per patient; CPU seconds of all workers and the client; peak resident
  memory per worker; the speed-up from 1 to W workers at the same N; the machine's load before and after.
- **Extrapolation**: Amdahl's law fitted to the 1- and 2-worker wall times (serial fraction f = 2 / S₂ − 1)
  predicts the speed-up on K workers, 1 / (f + (1 − f) / K). On a shared machine (load above the CPU count) the
  wall speed-up mostly says how much more of the machine two processes got: read it with the load columns.
- **Per stage**: each task's CPU seconds as its worker process counted them while it ran, summed by stage
  (``task_cpu_s`` in the JSON; approximate: Zarr reads inside a task may run sub-tasks concurrently).

``--patients 25 50 100 --workers 1 2`` is the full grid (the default); each cell costs about as much as
converting and extracting that many patients, so pass fewer on a small machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, load, load_line, peak_mb

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CLUSTER_SIZES = (8, 32, 128)


def cohort(patients: int, size: str, seed: int) -> Path:
    """The DICOM root of a synthetic SONIA cohort of ``patients`` patients (generated once)."""
    target = RESULTS / "data" / f"scale-{size}-{patients}-seed{seed}"
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


def _warm_up() -> None:
    """Import the pipeline in a worker, as a long-running worker already has."""
    import sonimage.lesions.tree  # noqa: F401
    import sonimage.volumes.convert  # noqa: F401


def _cpu() -> float:
    return time.process_time()


def _timed(fn, *args, **kwargs) -> tuple:
    """Run ``fn`` and return its result with the CPU seconds its worker process spent meanwhile (libraries
    compute in threads of their own: Zarr codecs, ITK's registration)."""
    start = time.process_time()
    value = fn(*args, **kwargs)
    return value, time.process_time() - start


class TimedExecutor:
    """A Dask client as the stages' executor that records every task's CPU seconds, by stage."""

    def __init__(self, client) -> None:
        self.client, self.stages = client, {}

    def submit(self, fn, *args, **kwargs):
        future = self.client.submit(_timed, fn, *args, pure=False, **kwargs)
        return _TimedResult(future, self.stages.setdefault(fn.__name__, []))


class _TimedResult:
    def __init__(self, future, sink: list) -> None:
        self.future, self.sink = future, sink

    def result(self):
        value, cpu = self.future.result()
        self.sink.append(cpu)
        return value


def run_cell(dicom: Path, workers: int) -> dict:
    """Convert and extract the cohort at ``dicom`` on a fresh cluster of ``workers`` processes."""
    import pandas as pd
    from distributed import Client

    from sonimage.cluster import local_cluster
    from sonimage.dicom.pseudonym import Pseudonymiser
    from sonimage.lesions.tree import features_tree
    from sonimage.volumes.convert import convert_tree

    out = Path(tempfile.mkdtemp(prefix="sonimage-scale-"))
    try:
        with local_cluster(workers) as cluster, Client(cluster) as client:
            client.run(_warm_up)
            timed = TimedExecutor(client)
            cpu0, own0, t0 = sum(client.run(_cpu).values()), time.process_time(), time.perf_counter()
            summary = convert_tree(dicom, out, Pseudonymiser(b"bench", cohort_name="bench"), executor=timed)
            t1 = time.perf_counter()
            tables = features_tree(out, executor=timed)
            t2 = time.perf_counter()
            client_cpu = time.process_time() - own0
            cpu = sum(client.run(_cpu).values()) - cpu0 + client_cpu
            peaks = list(client.run(peak_mb).values())
        lesions = len(pd.read_parquet(tables["lesion_features"]))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"workers": workers, "series": summary.n_converted, "files": summary.n_files, "lesions": lesions,
            "convert_s": t1 - t0, "features_s": t2 - t1, "total_s": t2 - t0, "cpu_s": cpu,
            "peak_mb_per_worker": max(peaks), "client_cpu_s": client_cpu,
            "task_cpu_s": {name: sum(ts) for name, ts in timed.stages.items()}}


def extrapolate(rows: list[dict]) -> list[dict]:
    """Amdahl's law from the 1- and 2-worker runs of the largest N measured with both."""
    both: dict[int, dict[int, dict]] = {}
    for r in rows:
        both.setdefault(r["patients"], {})[r["workers"]] = r
    sizes = [n for n, cells in both.items() if 1 in cells and 2 in cells]
    if not sizes:
        return []
    n = max(sizes)
    one, two = both[n][1], both[n][2]
    speedup = one["total_s"] / two["total_s"]
    serial = min(max(2.0 / speedup - 1.0, 0.0), 1.0)
    out = []
    for k in CLUSTER_SIZES:
        s_k = 1.0 / (serial + (1.0 - serial) / k)
        out.append({"from_patients": n, "serial_fraction": serial, "workers": k, "speedup": s_k,
                    "hours_per_1000_patients": 1000 * one["total_s"] / n / s_k / 3600})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", default="small", help="synthetic image size (sonimage synth --size)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cohort", type=int, help="patients of the generated cohort the N are taken from "
                        "(default: the largest N; a larger one already generated is reused as it is)")
    args = parser.parse_args()
    before = load()
    size = max(args.cohort or 0, *args.patients)
    full = cohort(size, args.size, args.seed)
    rows = []
    for n in sorted(args.patients):
        with tempfile.TemporaryDirectory(prefix="sonimage-scale-") as tmp:
            dicom = full if n == size else first_patients(full, n, Path(tmp))
            for w in sorted(args.workers):
                start = load()
                row = {"patients": n, **run_cell(dicom, w), "load_1min_start": start["load_1min"],
                       "load_1min_end": load()["load_1min"]}
                row["s_per_patient"] = row["total_s"] / n
                row["cpu_s_per_patient"] = row["cpu_s"] / n
                rows.append(row)
                print(f"N={n} workers={w}: {row['total_s']:.1f} s", flush=True)
    base = {r["patients"]: r["total_s"] for r in rows if r["workers"] == min(args.workers)}
    for r in rows:
        r["speedup"] = base[r["patients"]] / r["total_s"]
    head = (f"{'patients':>8}{'workers':>8}{'series':>7}{'lesions':>8}{'convert s':>10}{'features s':>11}"
            f"{'total s':>9}{'s/patient':>10}{'CPU s/pt':>9}{'peak MB/w':>10}{'speed-up':>9}{'load':>11}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['patients']:>8}{r['workers']:>8}{r['series']:>7}{r['lesions']:>8}{r['convert_s']:>10.1f}"
              f"{r['features_s']:>11.1f}{r['total_s']:>9.1f}{r['s_per_patient']:>10.2f}{r['cpu_s_per_patient']:>9.2f}"
              f"{r['peak_mb_per_worker']:>10.0f}{r['speedup']:>8.2f}x"
              f"{r['load_1min_start']:>5.1f}→{r['load_1min_end']:<5.1f}")
    print("speed-up: against the smallest worker count at the same N; load: 1-minute load average at start → end")
    cluster = extrapolate(rows)
    for c in cluster:
        print(f"extrapolation (Amdahl, serial fraction {c['serial_fraction']:.2f} from N={c['from_patients']}): "
              f"{c['workers']} workers → speed-up {c['speedup']:.1f}x, {c['hours_per_1000_patients']:.2f} h per "
              "1000 patients")
    print(load_line(before, load()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine_start": describe() | before, "machine_end": load(), "size": args.size, "rows": rows,
              "extrapolation": cluster}
    (RESULTS / "scale.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {RESULTS / 'scale.json'}")


if __name__ == "__main__":
    main()
