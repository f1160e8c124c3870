"""Benchmark: where the time of a whole study run goes, stage by stage, per patient.

One command: ``python bench/profile.py`` prints the per-stage table and writes ``bench/results/profile.json``.

- **Study**: ``sonimage synth`` of ``--patients`` per cohort (``--cohorts``, ``--size``), generated once into
  ``bench/results/data/`` (its own wall and CPU seconds are recorded then and reported on every later run).
- **Run**: each round runs the library stages the flow maps to tasks, in one fresh process, in order and without
  an executor (``convert_tree``, ``features_tree``, ``analyse_study`` with ``--settings``), so every second of CPU
  is this process's (``time.process_time``: all its threads, Zarr codecs and ITK included). Prefect and Dask add
  their own cost on top (``bench/scale.py``).
- **Stages**: the functions the stages call are wrapped with a clock (wall and CPU seconds, calls) by name; a
  parent's ``other`` row is its time outside its named children (store reads and writes, glue). A name missing in
  the code under test is left out, so the same table times another checkout.
- **Before/after**: ``--baseline DIR`` runs the same rounds on another checkout's ``sonimage`` (e.g.
  ``git archive main | tar -x -C /tmp/base``), alternated round by round with this one; the fastest round per
  stage counts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, load, load_line, peak_mb

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
KEY = "profile-bench-key"

# (stage, parent stage or "", the functions timed for it as "module:attribute" at their call site)
STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("index", "", ("sonimage.dicom.conversion:index_files", "sonimage.stages.convert:index_files")),
    ("conversion", "", ("sonimage.dicom.conversion:convert_any", "sonimage.stages.convert:convert_job",
                        "sonimage.stages.convert:convert_mask")),
    ("convert tables", "", ("sonimage.dicom.conversion:finish", "sonimage.stages.convert:finish")),
    ("lesion stage", "", ("sonimage.lesions.tree:prepare_patient", "sonimage.lesions.tree:scan_features",
                          "sonimage.lesions.tree:patient_lesions", "sonimage.lesions.tree:patient_lesions_reused",
                          "sonimage.stages.extract:extract_patient")),
    ("registration", "lesion stage", ("sonimage.lesions.reading:register_rigid", "sonimage.lesions.reading:map_labels")),
    ("liver VOI", "lesion stage", ("sonimage.lesions.reading:liver_reference",)),
    ("FES reading", "lesion stage", ("sonimage.lesions.reading:read_lesions",)),
    ("delineation", "lesion stage", ("sonimage.lesions.jobs:delineation_rows",)),
    ("features", "lesion stage", ("sonimage.lesions.jobs:extract_features",)),
    ("feature tables", "", ("sonimage.lesions.tree:write_feature_tables",
                            "sonimage.stages.extract:write_feature_tables")),
    ("analysis", "", ("sonimage.study:analyse_study", "sonimage.stages.analyse:run")),
    ("internal validation (bootstraps)", "analysis", ("sonimage.analysis.results:objective4",)),
    ("external validation (bootstraps)", "analysis", ("sonimage.analysis.results:objective5",)),
    ("appraisal (power simulations, sensitivity)", "analysis", ("sonimage.analysis.results:appraise_study",)),
    ("report", "analysis", ("sonimage.study:render_report", "sonimage.stages.analyse:render_report")),
)
TOP = [s for s, parent, _ in STAGES if not parent]


class StageClock:
    """Wall and CPU seconds and calls per stage, from wrapped functions (inclusive; nested calls not re-counted)."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {}
        self.active: dict[str, int] = {}

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            if self.active.get(stage):  # a stage function calling another of the same stage
                return fn(*args, **kwargs)
            self.active[stage] = 1
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                t = self.totals.setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0, "calls": 0})
                t["wall_s"] += time.perf_counter() - wall
                t["cpu_s"] += time.process_time() - cpu
                t["calls"] += 1
                self.active[stage] = 0
        timed.__wrapped__ = fn
        return timed

    def install(self) -> list[str]:
        """Wrap every named function that exists (in either module layout); returns the names found."""
        found = []
        for stage, _, names in STAGES:
            for name in names:
                module_name, attr = name.split(":")
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError:  # the other layout (before or after sonimage/stages)
                    continue
                if hasattr(module, attr):
                    setattr(module, attr, self.wrap(stage, getattr(module, attr)))
                    found.append(name)
        return found


def run_child(code: Path, study: Path, settings: Path | None, analysis: bool) -> dict:
    """One round in this process: convert, features and (optionally) the analysis of ``study`` with ``code``'s
    sonimage; returns the stage clock."""
    sys.path.insert(0, str(code))
    clock = StageClock()
    found = clock.install()
    from sonimage.dicom.pseudonym import Pseudonymiser, read_linking
    from sonimage.settings import Settings
    try:  # the stages as sonimage/stages runs them, else the layout before it
        from sonimage.stages import analyse, convert, extract
        convert_tree, features_tree, analyse_study = convert.run, extract.run, analyse.run
    except ImportError:
        from sonimage.lesions.tree import features_tree
        from sonimage.study import analyse_study
        from sonimage.dicom.conversion import convert_tree

    run_settings = Settings.from_json(settings.read_text() if settings else None)
    whole = time.perf_counter(), time.process_time()
    error = ""
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        out = Path(tmp)
        convert_tree(study / "dicom", out,
                     Pseudonymiser(KEY.encode(), read_linking(study / "site-private" / "linking.csv")))
        features_tree(out, None, run_settings)
        if analysis:
            try:
                analyse_study(out, study / "truth", None, run_settings)
            except ValueError as exc:  # too few patients for the models: say so, keep the image stages
                error = f"analysis failed ({exc}): use more patients per cohort"
    return {"stages": clock.totals, "found": found, "wall_s": time.perf_counter() - whole[0],
            "cpu_s": time.process_time() - whole[1], "peak_mb": peak_mb(), "error": error}


def study_tree(cohorts: list[str], patients: int, size: str, seed: int, code: Path = REPO,
               suffix: str = "") -> tuple[Path, dict]:
    """The synthetic study (generated once with ``code``'s sonimage, timed in a process of its own) and its
    synthesis timing."""
    target = RESULTS / "data" / f"profile-{size}-{'-'.join(cohorts)}-{patients}-seed{seed}{suffix}"
    timing_file = target / "synthesis.json"
    if not timing_file.is_file():
        script = ("import json,sys,time; from pathlib import Path; from sonimage.synth.generate import generate_study; "
                  "w,c=time.perf_counter(),time.process_time(); "
                  f"s=generate_study(Path({str(target)!r}), tuple({cohorts!r}), {patients}, {size!r}, {seed}); "
                  "print(json.dumps({'wall_s':time.perf_counter()-w,'cpu_s':time.process_time()-c,"
                  "'patients':s.n_patients,'lesions':s.n_lesions,'files':s.n_files}))")
        done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                              cwd=code, env=_env(code))
        timing_file.write_text(done.stdout.strip().splitlines()[-1])
    return target, json.loads(timing_file.read_text())


def existing_study(study: Path) -> dict:
    """Patients (rows of the linking table) and DICOM files of a study given with ``--study``; no synthesis."""
    with open(study / "site-private" / "linking.csv") as f:
        patients = sum(1 for _ in f) - 1
    files = sum(len(names) for _, _, names in os.walk(study / "dicom"))
    return {"wall_s": float("nan"), "cpu_s": float("nan"), "patients": patients, "lesions": "?", "files": files}


def _env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code)}


def child(code: Path, study: Path, settings: Path | None, analysis: bool) -> dict:
    """A round in a fresh process."""
    args = [sys.executable, __file__, "--child", str(code), "--study", str(study)]
    args += ["--settings", str(settings)] if settings else []
    args += [] if analysis else ["--skip-analysis"]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(code))
    if done.returncode:
        raise RuntimeError(f"round with {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best(rounds: list[dict]) -> dict:
    """Per stage, the round with the least CPU; whole-run totals likewise."""
    stages = {}
    for stage in {s for r in rounds for s in r["stages"]}:
        stages[stage] = min((r["stages"][stage] for r in rounds if stage in r["stages"]), key=lambda t: t["cpu_s"])
    fastest = min(rounds, key=lambda r: r["cpu_s"])
    return {"stages": stages, "wall_s": fastest["wall_s"], "cpu_s": fastest["cpu_s"], "peak_mb": fastest["peak_mb"]}


def rows(result: dict, n: int) -> list[tuple[str, float, float, int]]:
    """(stage label, wall s per patient, CPU s per patient, calls) in table order, with ``other`` residuals."""
    out = []
    stages = result["stages"]
    for stage, parent, _ in STAGES:
        if parent or stage not in stages:
            continue  # children are listed under their parent
        t = stages[stage]
        out.append((stage, t["wall_s"] / n, t["cpu_s"] / n, int(t["calls"])))
        children = [s for s, p, _ in STAGES if p == stage and s in stages]
        if children:
            out += [(f"  {s}", stages[s]["wall_s"] / n, stages[s]["cpu_s"] / n, int(stages[s]["calls"]))
                    for s in children]
            out.append(("  other (store I/O, glue)", (t["wall_s"] - sum(stages[s]["wall_s"] for s in children)) / n,
                        (t["cpu_s"] - sum(stages[s]["cpu_s"] for s in children)) / n, 0))
    top_wall = sum(stages[s]["wall_s"] for s in TOP if s in stages)
    top_cpu = sum(stages[s]["cpu_s"] for s in TOP if s in stages)
    out.append(("rest of the run (listing, planning, imports)", (result["wall_s"] - top_wall) / n,
                (result["cpu_s"] - top_cpu) / n, 0))
    out.append(("TOTAL DICOM -> report", result["wall_s"] / n, result["cpu_s"] / n, 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=3, help="patients per cohort")
    ap.add_argument("--cohorts", nargs="+", default=["sonia", "impact", "transcan"])
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settings", type=Path, default=REPO / "deployments" / "demo-settings.json")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per checkout (alternated)")
    ap.add_argument("--baseline", type=Path, help="another checkout to time in the same run (before/after)")
    ap.add_argument("--skip-analysis", action="store_true")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--study", type=Path, help="an existing study (dicom/, site-private/linking.csv, truth/) "
                    "instead of a synthetic one, e.g. a hard-linked subset of a site's tree")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.child:
        print(json.dumps(run_child(args.child, args.study, args.settings, not args.skip_analysis)))
        return
    before = load()
    if args.study:
        study, synthesis = args.study.resolve(), existing_study(args.study)
    else:
        study, synthesis = study_tree(args.cohorts, args.patients, args.size, args.seed)
    n = synthesis["patients"]
    codes = {"this checkout": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    syntheses = {"this checkout": synthesis}
    if args.baseline:  # the same study generated by the baseline's code, into a folder of its own
        syntheses["baseline"] = synthesis if args.study else study_tree(
            args.cohorts, args.patients, args.size, args.seed, codes["baseline"], "-baseline")[1]
    rounds: dict[str, list[dict]] = {name: [] for name in codes}
    for _ in range(args.repeat):
        for name, code in codes.items():
            rounds[name].append(child(code, study, args.settings, not args.skip_analysis))
    after = load()
    results = {name: best(r) for name, r in rounds.items()}
    names = list(codes)[::-1]  # baseline first
    what = f"patients of {args.study}" if args.study else (f"synthetic patients ({', '.join(args.cohorts)}, size "
                                                           f"{args.size}, {synthesis['lesions']} lesions")
    print(f"\n{n} {what}, {synthesis['files']} DICOM files; fastest of {args.repeat} round(s); seconds per patient")
    for name in names:
        print(f"synthesis (generated once, {name}'s code): {syntheses[name]['wall_s'] / n:.2f} s wall, "
              f"{syntheses[name]['cpu_s'] / n:.2f} CPU s per patient")
    table = {name: {label: (w, c, k) for label, w, c, k in rows(results[name], n)} for name in names}
    labels = list(dict.fromkeys(label for name in names for label in table[name]))
    head = "| stage | " + " | ".join(f"{name} wall | {name} CPU" for name in names) + " | calls |"
    print(head)
    print("|---|" + "---:|" * (2 * len(names) + 1))
    for label in labels:
        cells = []
        for name in names:
            w, c, _ = table[name].get(label, (float("nan"),) * 3)
            cells.append(f"{w:.3f} | {c:.3f}")
        calls = table[names[-1]].get(label, (0, 0, 0))[2]
        print(f"| {label} | " + " | ".join(cells) + f" | {calls or ''} |")
    for name in names:
        print(*{r["error"] for r in rounds[name] if r["error"]})
    print("peak resident memory: " + ", ".join(f"{name} {results[name]['peak_mb']:.0f} MB" for name in names))
    print(load_line(before, after))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile.json").write_text(json.dumps(
        {"machine": describe(), "load_before": before, "load_after": after, "patients": n,
         "cohorts": args.cohorts, "size": args.size, "synthesis": syntheses, "rounds": rounds,
         "best": results, "per_patient": {name: {k: list(v) for k, v in table[name].items()} for name in names}},
        indent=1))


if __name__ == "__main__":
    main()
