"""Benchmark: what Prefect adds to the study flow on Dask, at N patients (issue 14, point 3).

One command: ``python bench/prefect_scale.py --patients N --workers W`` prints tables and writes
``bench/results/prefect_scale.json``.

- **Study**: a ``tiny`` synthetic SONIA cohort (``sonimage synth OUT --cohorts sonia --patients N --size tiny``,
  generated once into ``bench/results/data``; a smaller N takes the first N patients of a larger cohort already
  there, as hard links).
- **With Prefect**: ``sonimage run DICOM OUT --workers W`` (the study flow on a LocalCluster of W worker processes)
  against one Prefect server started here by :func:`flows.server.prefect_server`, which the run inherits through
  ``PREFECT_API_URL`` and which stays up after the run so its task runs and logs can be counted through the API.
  The flow groups consecutive patients into one task run where Prefect's per-task cost would outweigh the work
  (``flows.tasks.PrefectExecutor.groups``), so task runs grow with N only beyond 4 per worker thread and stage.
- **Without Prefect**: ``sonimage convert DICOM OUT --workers W`` then ``sonimage extract OUT --workers W``: the same
  library stages on the same kind and size of cluster.
- **Measured** (psutil, sampled every 0.2 s over each command's process tree, plus the exact ``RUSAGE_CHILDREN``
  total): CPU seconds of the client process (which hosts the LocalCluster's scheduler, so "client" below is
  client + scheduler) and of the worker processes; the Prefect server process tree's CPU seconds during the run
  (minus its idle rate, measured before) and its share of the run's wall time; peak resident memory of the client
  (+ scheduler), of each worker and of the server; wall seconds per stage: the flow's own stage clock
  (``run_summary.json``) against the plain commands from the "Dask dashboard" line (cluster up) to exit.
- **Why CPU**: on a shared machine (load above the CPU count) wall seconds mostly measure the other tenants; the
  CPU that Prefect adds per task run (flow process: task creation, futures, results; workers: the task engine's
  state updates and result handling; server: the API calls and log rows) does not depend on them.

Context: users report Prefect-on-Dask flows that hang near 2,000 tasks (PrefectHQ/prefect#12877, a flow of 2,208
tasks stalls after ~200 with ``PoolTimeout`` on ``/api/task_runs/``) and task creation at about one a second when
the mapped callable is expensive to pickle (PrefectHQ/prefect#18191). The goal here: Prefect adds <= 10 % to the
stage wall time and shows no task-count ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

import psutil

from machine import describe, first_patients, load, load_line, synth_cohort

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SONIMAGE = str(Path(sys.executable).parent / "sonimage")
GOAL = 0.10


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


class TreeSampler(threading.Thread):
    """Peak RSS and last CPU seconds of every process below ``pid``; the root is the client (+ scheduler)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.stop = pid, interval, threading.Event()
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, float] = {}

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                with p.oneshot():
                    self.cpu[p.pid] = max(self.cpu.get(p.pid, 0.0), _cpu(p))
                    self.rss[p.pid] = max(self.rss.get(p.pid, 0.0), p.memory_info().rss / 2**20)
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)

    def summary(self) -> dict[str, float]:
        workers = [pid for pid in self.cpu if pid != self.root]
        return {"client_cpu_s": self.cpu.get(self.root, 0.0), "workers_cpu_s": sum(self.cpu[p] for p in workers),
                "client_peak_mb": self.rss.get(self.root, 0.0),
                "worker_peak_mb": max((self.rss[p] for p in workers), default=0.0)}


def server_tree() -> list[psutil.Process]:
    """The Prefect server started by :func:`flows.server.prefect_server` (a child of this process) and its children."""
    for child in psutil.Process().children(recursive=True):
        cmd = " ".join(child.cmdline())
        if "prefect" in cmd and "server" in cmd and "start" in cmd:
            return [child, *child.children(recursive=True)]
    raise SystemExit("no Prefect server process found below this one")


def server_usage(tree: list[psutil.Process]) -> tuple[float, float]:
    """CPU seconds and resident MB of the server's processes."""
    cpu = rss = 0.0
    for p in tree:
        try:
            cpu, rss = cpu + _cpu(p), rss + p.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return cpu, rss


def run_command(args: list[str], env: dict[str, str], server: list[psutil.Process] | None = None,
                sampler_type: type[TreeSampler] = TreeSampler) -> dict:
    """Run one command, sampling its process tree (and the server's) with ``sampler_type``; the time its cluster
    came up; CPU totals."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s_cpu0 = server_usage(server)[0] if server else 0.0
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = sampler_type(proc.pid)
    sampler.start()
    server_peak, cluster_up, lines = 0.0, None, []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if cluster_up is None and line.startswith("Dask dashboard:"):
            cluster_up = time.perf_counter() - t0
        if server:
            server_peak = max(server_peak, server_usage(server)[1])
    code = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code:
        raise SystemExit(f"{' '.join(args)} failed ({code}):\n" + "\n".join(lines[-40:]))
    out = {"wall_s": wall, "cluster_up_s": cluster_up, **sampler.summary(),
           "tree_cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)}
    if server:
        out |= {"server_cpu_s": server_usage(server)[0] - s_cpu0, "server_peak_mb": server_peak}
    return out


def tail_seconds(runs: list, workers: int) -> float | None:
    """A stage's idle tail: its last task run's end minus the ``workers``-th last end (with every worker busy until
    its own last task ended, how long the first to finish waited for the last)."""
    ends = sorted(r.end_time for r in runs if r.end_time)
    return (ends[-1] - ends[-workers]).total_seconds() if len(ends) >= workers else None


def task_runs(workers: int) -> dict:
    """Task runs (by task), their timing, each stage's idle tail (:func:`tail_seconds`) and the log rows of the
    newest flow run, read from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        only = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        runs, offset = [], 0
        while page := client.read_task_runs(flow_run_filter=only, limit=200, offset=offset):
            runs += page
            offset += len(page)
        logs, offset = 0, 0
        while page := client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])), limit=200,
                                       offset=offset):
            logs += len(page)
            offset += len(page)
    by_task: dict[str, list] = {}
    for r in runs:
        by_task.setdefault(r.task_key.rsplit("-", 1)[0].rsplit(".", 1)[-1], []).append(r)
    tasks = {}
    for name, rs in sorted(by_task.items()):
        lag = [(r.created - r.start_time).total_seconds() for r in rs if r.start_time and r.created]
        tasks[name] = {"runs": len(rs), "completed": sum(r.state_type.value == "COMPLETED" for r in rs),
                       "run_s_median": median(r.total_run_time.total_seconds() for r in rs),
                       "run_s_sum": sum(r.total_run_time.total_seconds() for r in rs),
                       "record_lag_s": [median(lag), max(lag)] if lag else None,
                       "tail_s": tail_seconds(rs, workers), "largest_group": max(_size(r.name) for r in rs),
                       "smallest_group": min(_size(r.name) for r in rs)}
    return {"flow_run_state": flow_run.state_type.value, "task_runs": len(runs), "log_rows": logs,
            "flow_total_run_s": flow_run.total_run_time.total_seconds(), "by_task": tasks}


def _size(name: str) -> int:
    """Items in a task run, from its name: "(<k> patients)", "(<k> batches)", else one."""
    return int(name.rsplit("(", 1)[1].split()[0]) if name.endswith(("patients)", "batches)", "batch)")) else 1


def stage_seconds(out: Path) -> dict[str, float]:
    """The flow's own stage clock, from ``run_summary.json``."""
    summary = json.loads((out / "run_summary.json").read_text())
    return {k[len("time "):-len(" (s)")]: v for k, v in summary.items() if k.startswith("time ")}


def one_round(dicom: Path, workers: int, env: dict[str, str], server: list[psutil.Process], idle_cpu_rate: float,
              tmp: Path) -> dict:
    """The flow once with Prefect, then the same stages without; outputs deleted afterwards."""
    flow_out, plain_out = tmp / "flow", tmp / "plain"
    cluster = ["--workers", str(workers)]
    cohort = ["--cohort", "sonia"]  # cohorts are never taken from folder names
    flow = run_command([SONIMAGE, "run", str(dicom), str(flow_out), *cluster, *cohort, "--dashboard", ":0"], env,
                       server)
    flow["server_cpu_s"] -= idle_cpu_rate * flow["wall_s"]
    flow["stages_s"] = stage_seconds(flow_out)
    flow |= task_runs(workers)
    convert = run_command([SONIMAGE, "convert", str(dicom), str(plain_out), *cluster, *cohort], env)
    extract = run_command([SONIMAGE, "extract", str(plain_out), *cluster], env)
    for d in (flow_out, plain_out):
        shutil.rmtree(d, ignore_errors=True)
    return {"flow": flow, "convert": convert, "extract": extract}


def compare(r: dict) -> dict:
    """Per stage wall seconds with and without Prefect, and the CPU Prefect adds per process and per task run."""
    flow, conv, ext = r["flow"], r["convert"], r["extract"]
    plain = {"convert": conv["wall_s"] - conv["cluster_up_s"], "features": ext["wall_s"] - ext["cluster_up_s"]}
    stages = {s: {"flow_s": flow["stages_s"][s], "plain_s": plain[s],
                  "overhead": flow["stages_s"][s] / plain[s] - 1.0} for s in plain}
    both = sum(flow["stages_s"][s] for s in plain), sum(plain.values())
    stages["convert + features"] = {"flow_s": both[0], "plain_s": both[1], "overhead": both[0] / both[1] - 1.0}
    n = max(flow["task_runs"], 1)
    cpu = {}
    for role in ("client_cpu_s", "workers_cpu_s", "tree_cpu_s"):
        extra = flow[role] - conv[role] - ext[role]
        cpu[role] = {"flow": flow[role], "plain": conv[role] + ext[role], "extra": extra, "extra_ms_per_task_run":
                     1000 * extra / n}
    cpu["server_cpu_s"] = {"flow": flow["server_cpu_s"], "plain": 0.0, "extra": flow["server_cpu_s"],
                           "extra_ms_per_task_run": 1000 * flow["server_cpu_s"] / n}
    total_extra = cpu["tree_cpu_s"]["extra"] + flow["server_cpu_s"]
    return {"stages": stages, "cpu": cpu, "cpu_overhead": total_extra / cpu["tree_cpu_s"]["plain"],
            "server_cpu_share": flow["server_cpu_s"] / flow["wall_s"]}


def print_round(r: dict) -> None:
    """The task runs, stage times, CPU and memory of one round."""
    flow, c = r["flow"], r["comparison"]
    print(f"\nN={r['patients']}, round {r['round']}: {flow['task_runs']} task runs ({flow['flow_run_state']}), "
          f"{flow['log_rows']} log rows; "
          f"load {r['load_start']:.1f} → {r['load_end']:.1f}")
    print(f"{'task':<22}{'runs':>6}{'done':>6}{'items/run':>10}{'running s (median)':>19}{'idle tail s':>12}"
          f"{'record lag s (median, max)':>28}")
    for name, t in flow["by_task"].items():
        lag, tail = t["record_lag_s"], t["tail_s"]
        print(f"{name:<22}{t['runs']:>6}{t['completed']:>6}{t['largest_group']:>6}–{t['smallest_group']:<3}"
              f"{t['run_s_median']:>19.2f}{(f'{tail:.1f}' if tail is not None else '-'):>12}"
              f"{(f'{lag[0]:.2f}, {lag[1]:.2f}' if lag else '-'):>28}")
    print("running s: Running → Completed (tasks sharing a worker can overlap); idle tail: the stage's last task end "
          "minus the W-th last (how long the first worker to finish waited); record lag: the server's row created "
          "after the task started (state changes reach it as events)")
    print(f"\n{'stage (wall)':<22}{'Prefect s':>10}{'plain s':>9}{'overhead':>10}")
    for name, s in c["stages"].items():
        print(f"{name:<22}{s['flow_s']:>10.1f}{s['plain_s']:>9.1f}{100 * s['overhead']:>9.0f}%")
    print(f"\n{'CPU seconds':<22}{'Prefect':>9}{'plain':>9}{'extra':>9}{'ms/task run':>13}")
    for name, s in c["cpu"].items():
        print(f"{name.removesuffix('_cpu_s'):<22}{s['flow']:>9.1f}{s['plain']:>9.1f}{s['extra']:>9.1f}"
              f"{s['extra_ms_per_task_run']:>13.1f}")
    print(f"Prefect adds {100 * c['cpu_overhead']:.0f} % CPU (all processes incl. the server); server CPU share of the "
          f"run's wall time {100 * c['server_cpu_share']:.1f} %")
    print(f"\n{'peak MB':<22}{'Prefect':>9}{'plain':>9}")
    plain_client = max(r["convert"]["client_peak_mb"], r["extract"]["client_peak_mb"])
    plain_worker = max(r["convert"]["worker_peak_mb"], r["extract"]["worker_peak_mb"])
    print(f"{'client + scheduler':<22}{flow['client_peak_mb']:>9.0f}{plain_client:>9.0f}")
    print(f"{'worker (largest)':<22}{flow['worker_peak_mb']:>9.0f}{plain_worker:>9.0f}")
    print(f"{'Prefect server':<22}{flow['server_peak_mb']:>9.0f}{'-':>9}")


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line y = a + b x through (x, y) points (a single point: a = 0)."""
    if len({x for x, _ in points}) < 2:
        x, y = points[0]
        return 0.0, y / x
    mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def extrapolate(rows: list[dict], patients: int) -> dict:
    """Fixed + per-task-run extra CPU (and plain CPU per patient) fitted over the N measured, taken to ``patients``."""
    def line(key) -> tuple[float, float]:
        return fit([(x, key(r)) for r in rows for x in [r["_x"]]])

    for r in rows:
        r["_x"] = r["flow"]["task_runs"]
    extra = line(lambda r: r["comparison"]["cpu"]["tree_cpu_s"]["extra"] + r["flow"]["server_cpu_s"])
    server = line(lambda r: r["flow"]["server_cpu_s"])
    client = line(lambda r: r["comparison"]["cpu"]["client_cpu_s"]["extra"])
    for r in rows:
        r["_x"] = r["patients"]
    tasks = line(lambda r: r["flow"]["task_runs"])
    plain = line(lambda r: r["comparison"]["cpu"]["tree_cpu_s"]["plain"])
    for r in rows:
        del r["_x"]
    n_tasks = tasks[0] + tasks[1] * patients
    added = extra[0] + extra[1] * n_tasks
    return {"patients": patients, "task_runs": n_tasks, "extra_cpu_fixed_s": extra[0],
            "extra_cpu_per_task_run_s": extra[1], "server_cpu_per_task_run_s": server[1],
            "client_extra_cpu_per_task_run_s": client[1], "task_runs_per_patient": tasks[1],
            "plain_cpu_fixed_s": plain[0], "plain_cpu_per_patient_s": plain[1],
            "extra_cpu_s": added, "cpu_overhead": added / (plain[0] + plain[1] * patients)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[1000],
                        help="study sizes; two or more also fit Prefect's fixed and per-task-run cost")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of (with Prefect, without), in turn, per N")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cohort", type=int, help="take the N patients from a generated cohort of this many")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to measure the idle server's CPU rate")
    parser.add_argument("--target", type=int, default=1000, help="study size the fitted costs are taken to")
    args = parser.parse_args()
    from flows.environment import configure
    from flows.server import prefect_server

    before = load()
    size = max(args.cohort or 0, *args.patients)
    full = synth_cohort(RESULTS / "data" / f"tiny-{size}-seed{args.seed}", size, "tiny", args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sonimage-prefect-scale-") as tmp_name:
        tmp = Path(tmp_name)
        configure(tmp / ".prefect")
        with prefect_server():
            path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
            env = {**os.environ, "PYTHONPATH": path}
            server = server_tree()
            idle0 = server_usage(server)[0]
            time.sleep(args.idle)
            idle_rate = (server_usage(server)[0] - idle0) / args.idle
            for n in sorted(args.patients):
                dicom = full if n == size else first_patients(full, n, tmp / f"subset-{n}")
                for i in range(1, args.rounds + 1):
                    start = load()["load_1min"]
                    r = {"patients": n, "round": i, **one_round(dicom, args.workers, env, server, idle_rate, tmp)}
                    r |= {"load_start": start, "load_end": load()["load_1min"]}
                    r["comparison"] = compare(r)
                    print_round(r)
                    rows.append(r)
    print(f"\n{'patients':>8}{'round':>6}{'task runs':>10}{'stage s, Prefect':>17}{'plain':>7}{'wall +':>8}"
          f"{'CPU +':>7}{'server CPU':>11}{'load':>12}")
    for r in rows:
        c = r["comparison"]
        both = c["stages"]["convert + features"]
        print(f"{r['patients']:>8}{r['round']:>6}{r['flow']['task_runs']:>10}{both['flow_s']:>17.1f}"
              f"{both['plain_s']:>7.1f}{100 * both['overhead']:>7.0f}%{100 * c['cpu_overhead']:>6.0f}%"
              f"{100 * c['server_cpu_share']:>10.1f}%"
              f"{r['load_start']:>6.1f}→{r['load_end']:<5.1f}")
    print(f"wall +: stage wall time Prefect adds (goal <= {100 * GOAL:.0f} %); CPU +: CPU seconds it adds, all "
          f"processes incl. the server; server CPU: the server's CPU seconds / the run's wall (idle {idle_rate:.3f} "
          "CPU s/s subtracted)")
    ext = extrapolate(rows, args.target)
    print(f"fit over N = {sorted(args.patients)}: Prefect adds {ext['extra_cpu_fixed_s']:.1f} CPU s per run + "
          f"{1000 * ext['extra_cpu_per_task_run_s']:.0f} ms per task run "
          f"(server {1000 * ext['server_cpu_per_task_run_s']:.0f} ms); plain stages "
          f"{ext['plain_cpu_fixed_s']:.1f} CPU s + {ext['plain_cpu_per_patient_s']:.2f} per patient; "
          f"at {args.target} patients ({ext['task_runs']:.0f} task runs): +{100 * ext['cpu_overhead']:.0f} % CPU")
    print(load_line(before, load()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine_start": describe() | before, "machine_end": load(), "workers": args.workers, "size": "tiny",
              "server_idle_cpu_per_s": idle_rate, "rows": rows, "extrapolation": ext}
    (RESULTS / "prefect_scale.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"written: {RESULTS / 'prefect_scale.json'}")


if __name__ == "__main__":
    main()
