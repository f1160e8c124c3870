"""Benchmark: the study pipeline (DICOM → Zarr → lesion features → tables) on N synthetic patients × W workers.

One command: ``python bench/scale.py`` prints a table and writes ``bench/results/scale.json``.

- **Cohort**: one synthetic SONIA cohort of the largest N (``sonimage synth``, ``--size``, generated once into
  ``bench/results/data``); smaller N take its first N patients (hard links, no copies).
- **Work**: the library stages the flow maps to tasks, without Prefect's orchestration: ``sonimage.stages.convert.run``
  (header index in batches, one task per patient) then ``sonimage.stages.extract.run`` (the whole lesion stage,
  one task per patient:
  FES registration and reading, features of every lesion; then the lesion/patient tables), on a fresh
  ``LocalCluster`` of W single-threaded worker processes per run; cluster start-up and worker imports are not timed.
- **Measured**: wall seconds per stage and per patient; each worker process's CPU seconds during the run (its
  busy time); the serial part, measured in one process: the CPU of the client's main thread (file listing,
  planning, tables); the rest of the client process (scheduler, nannies, event loop; idle rate subtracted); peak
  resident memory per worker; the machine's load before and after.
- **Speed-up** from 1 to W workers at the same N, twice: wall clock, and CPU accounting,
  T = serial + busiest worker's CPU, S = T(1) / T(W), which the other tenants' load does not decide.
- **Extrapolation**: Amdahl's law with the measured serial fraction f = serial / (serial + worker CPU) of the
  1-worker run at the largest N, 1 / (f + (1 − f) / K) for K = 8, 32, 128, and the worker count at which the
  scheduler's process (or Prefect's server / flow process, from ``prefect_scale.json``) would be busy full time.
- **Per stage**: each task's CPU seconds as its worker process counted them while it ran, summed by stage
  (``task_cpu_s`` in the JSON; approximate: Zarr reads inside a task may run sub-tasks concurrently).

``--patients 25 50 100 --workers 1 2`` is the full grid (the default); each cell costs about as much as
converting and extracting that many patients, so pass fewer on a small machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from machine import describe, first_patients, load, load_line, peak_mb, synth_cohort

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CLUSTER_SIZES = (8, 32, 128)
IDLE_S = 3.0  # seconds the idle client process (scheduler, nannies, event loop) is measured before each run


def _warm_up() -> None:
    """Import the pipeline in a worker, as a long-running worker already has."""
    import sonimage.stages.extract  # noqa: F401
    import sonimage.dicom.conversion  # noqa: F401


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
    from sonimage.stages import convert as convert_stage, extract as extract_stage

    out = Path(tempfile.mkdtemp(prefix="sonimage-scale-"))
    try:
        with local_cluster(workers) as cluster, Client(cluster) as client:
            client.run(_warm_up)
            timed = TimedExecutor(client)
            idle0 = time.process_time()
            time.sleep(IDLE_S)
            idle_rate = (time.process_time() - idle0) / IDLE_S
            cpu0, own0, main0 = client.run(_cpu), time.process_time(), time.thread_time()
            t0 = time.perf_counter()
            summary = convert_stage.run(dicom, out, Pseudonymiser(b"bench", cohort_name="bench"), executor=timed)
            t1 = time.perf_counter()
            tables = extract_stage.run(out, executor=timed)
            t2 = time.perf_counter()
            serial, client_cpu = time.thread_time() - main0, time.process_time() - own0
            cpu1 = client.run(_cpu)
            peaks = list(client.run(peak_mb).values())
        lesions = len(pd.read_parquet(tables["lesion_features"]))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    worker_cpu = [cpu1[w] - cpu0[w] for w in cpu0]
    return {"workers": workers, "series": summary.n_converted, "files": summary.n_files, "lesions": lesions,
            "convert_s": t1 - t0, "features_s": t2 - t1, "total_s": t2 - t0, "cpu_s": sum(worker_cpu) + client_cpu,
            "worker_cpu_s": worker_cpu, "serial_cpu_s": serial,
            "scheduler_cpu_s": client_cpu - serial - idle_rate * (t2 - t0), "client_idle_cpu_per_s": idle_rate,
            "cpu_time_s": serial + max(worker_cpu), "tasks": sum(map(len, timed.stages.values())),
            "peak_mb_per_worker": max(peaks), "client_cpu_s": client_cpu,
            "task_cpu_s": {name: sum(ts) for name, ts in timed.stages.items()}}


def extrapolate(rows: list[dict]) -> dict:
    """Amdahl's law from the serial share of the 1-worker run at the largest N, and where one process saturates.

    The serial part is the client's main thread (file listing, planning, tables: the library code between fan-outs),
    f = serial / (serial + worker CPU); speed-up on K workers 1 / (f + (1 - f) / K) (Amdahl 1967). The scheduler
    (here in the client process, with the nannies and the client's event loop; its idle rate subtracted) spends
    ``scheduler_cpu_s / tasks`` per task, so it is busy full time once K workers finish tasks faster than it handles
    them: K = task CPU / scheduler CPU per task (an upper bound on the scheduler's own cost, hence a low K).
    The same bound for Prefect uses the per-task-run CPU of its server and flow process from
    ``bench/results/prefect_scale.json`` when that benchmark has run.
    """
    ones = [r for r in rows if r["workers"] == 1]
    if not ones:
        return {}
    one = max(ones, key=lambda r: r["patients"])
    work = sum(one["worker_cpu_s"])
    serial = one["serial_cpu_s"] / (one["serial_cpu_s"] + work)
    task_cpu = work / one["tasks"]
    out = {"from_patients": one["patients"], "serial_fraction": serial, "task_cpu_s": task_cpu,
           "scheduler_cpu_per_task_s": one["scheduler_cpu_s"] / one["tasks"],
           "scheduler_limit_workers": task_cpu * one["tasks"] / one["scheduler_cpu_s"], "workers": []}
    prefect = RESULTS / "prefect_scale.json"
    ext = json.loads(prefect.read_text()).get("extrapolation") if prefect.exists() else None
    if ext:
        per_task = max(ext["server_cpu_per_task_run_s"], ext["client_extra_cpu_per_task_run_s"])
        out["prefect_limit_workers"] = ext["plain_cpu_per_patient_s"] / ext["task_runs_per_patient"] / per_task
    for k in CLUSTER_SIZES:
        s_k = 1.0 / (serial + (1.0 - serial) / k)
        out["workers"].append({"workers": k, "speedup": s_k,
                               "hours_per_1000_patients": 1000 * (one["serial_cpu_s"] + work) / one["patients"] / s_k
                               / 3600})
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
    full = synth_cohort(RESULTS / "data" / f"scale-{args.size}-{size}-seed{args.seed}", size, args.size, args.seed)
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
    base = {r["patients"]: r for r in rows if r["workers"] == min(args.workers)}
    for r in rows:
        r["speedup"] = base[r["patients"]]["total_s"] / r["total_s"]
        r["speedup_cpu"] = base[r["patients"]]["cpu_time_s"] / r["cpu_time_s"]
    head = (f"{'patients':>8}{'workers':>8}{'series':>7}{'lesions':>8}{'convert s':>10}{'features s':>11}"
            f"{'total s':>9}{'CPU s/pt':>9}{'serial CPU':>11}{'sched CPU':>10}{'worker CPU s':>16}{'peak MB/w':>10}"
            f"{'speed-up wall':>14}{'CPU':>7}{'load':>12}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        busy = "/".join(f"{c:.0f}" for c in r["worker_cpu_s"])
        print(f"{r['patients']:>8}{r['workers']:>8}{r['series']:>7}{r['lesions']:>8}{r['convert_s']:>10.1f}"
              f"{r['features_s']:>11.1f}{r['total_s']:>9.1f}{r['cpu_s_per_patient']:>9.2f}{r['serial_cpu_s']:>11.1f}"
              f"{r['scheduler_cpu_s']:>10.1f}{busy:>16}{r['peak_mb_per_worker']:>10.0f}{r['speedup']:>13.2f}x"
              f"{r['speedup_cpu']:>6.2f}x{r['load_1min_start']:>6.1f}→{r['load_1min_end']:<5.1f}")
    print("serial CPU: the client's main thread (listing, planning, tables); sched CPU: the rest of the client process "
          "(scheduler, nannies, the client's event loop receiving results), its idle rate subtracted;\nworker CPU: "
          "each worker process's CPU seconds during the run.\n"
          "speed-up wall: against the smallest worker count at the same N; speed-up CPU: the same from CPU accounting, "
          "(serial + busiest worker's CPU) against it, which the other tenants' load does not decide.")
    cluster = extrapolate(rows)
    if cluster:
        print(f"\nserial fraction {cluster['serial_fraction']:.3f} (1 worker, N={cluster['from_patients']}); "
              f"{cluster['task_cpu_s']:.2f} CPU s per task; scheduler {1000 * cluster['scheduler_cpu_per_task_s']:.0f} "
              f"ms CPU per task → saturated at ~{cluster['scheduler_limit_workers']:.0f} busy workers"
              + (f"; Prefect (server or flow process) at ~{cluster['prefect_limit_workers']:.0f}"
                 if "prefect_limit_workers" in cluster else "; Prefect: run bench/prefect_scale.py for its limit"))
        for c in cluster["workers"]:
            print(f"  {c['workers']:>4} workers → speed-up {c['speedup']:.1f}x (Amdahl), "
                  f"{c['hours_per_1000_patients']:.2f} h per 1000 patients")
    print(load_line(before, load()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine_start": describe() | before, "machine_end": load(), "size": args.size, "rows": rows,
              "extrapolation": cluster}
    (RESULTS / "scale.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {RESULTS / 'scale.json'}")


if __name__ == "__main__":
    main()
