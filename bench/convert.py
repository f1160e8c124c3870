"""Benchmark: DICOM → SUV Zarr conversion against SimpleITK's ImageSeriesReader on the same series.

One command: ``python bench/convert.py`` prints a table and writes ``bench/results/convert.json``.
Each single-series measurement runs in a fresh process (clean peak memory); the tools run interleaved in
``--repeat`` rounds and medians count; wall and per-process CPU seconds and the machine's load are recorded.
``sonimage-pydicom-index`` is sonimage with the header index of a full pydicom parse (the index before the
minimal tag reader), for a before/after in the same run.
Series: the real GE series in ../shared/data/sts-001-fdg-pet, and a full-size synthetic FDG-PET/CT patient and
cohort generated once into ``bench/results/data`` (``--patients`` of them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import Clock, describe, load, load_line, peak_mb

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


TOOLS = ("simpleitk", "sonimage", "sonimage-pydicom-index")


def one_simpleitk(folder: Path) -> dict:
    """Plain read of one series with SimpleITK (series discovery plus read), as a user would."""
    import SimpleITK as sitk

    base = peak_mb()
    clock = Clock()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    found = clock.read()
    image = reader.Execute()
    end = clock.read()
    return {"seconds": end[0], "cpu_s": end[1], "discover_s": found[0], "discover_cpu_s": found[1],
            "read_s": end[0] - found[0], "slices": image.GetSize()[2], "peak_mb": peak_mb() - base}


def one_sonimage(folder: Path, reader: str = "tagreader") -> dict:
    """sonimage's conversion of one series: header index (pseudonymised), validation, SUV, chunked Zarr write.

    ``reader`` "pydicom" indexes with a full pydicom parse of every header (the index before the tag reader),
    else the library's ``index_files``.
    """
    from sonimage.dicom import index
    from sonimage.dicom.pseudonym import Pseudonymiser
    from sonimage.dicom.reader import load_plan
    from sonimage.dicom.series import group_series
    from sonimage.volumes.store import VARIABLE_BY_QUANTITY, write_volume
    from sonimage.volumes.volume import Volume

    pseudo = Pseudonymiser(b"bench")
    out = Path(tempfile.mkdtemp())
    # Warm-up: xarray and zarr import codecs and backends lazily on their first write (an import cost).
    write_volume(Volume(np.zeros((2, 2, 2), np.float32), (1.0, 1.0, 1.0)), out / "warm.zarr", "suv")
    base = peak_mb()
    clock = Clock()
    if reader == "pydicom":
        records = [index.read_instance_pydicom(p, folder, pseudo) for p in index.list_files(folder)]
        instances = [r for r in records if isinstance(r, index.Instance)]
    else:
        listing = getattr(index, "file_paths", index.list_files)  # path strings where the checkout has them
        instances, _ = index.index_files(listing(folder), folder, pseudo)
    plans, _, _ = group_series(instances)
    plan = next(p for p in plans if p.modality == "PT")
    found = clock.read()
    volume = load_plan(plan, folder)
    write_volume(volume, out / "s.zarr", VARIABLE_BY_QUANTITY[volume.attrs["quantity"]])
    end = clock.read()
    shutil.rmtree(out)
    return {"seconds": end[0], "cpu_s": end[1], "discover_s": found[0], "discover_cpu_s": found[1],
            "read_s": end[0] - found[0], "slices": plan.shape[0], "peak_mb": peak_mb() - base,
            "array_mb": volume.array.nbytes / 2**20}


def _one(tool: str, folder: Path) -> dict:
    env = dict(os.environ)
    if tool == "baseline":  # sonimage from another checkout (PYTHONPATH comes before the editable install)
        env["PYTHONPATH"] = os.environ["SONIMAGE_BASELINE"]
    return json.loads(subprocess.run([sys.executable, __file__, "--one", tool, str(folder)], check=True,
                                     capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1])


def _dicom_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def series_rows(name: str, folder: Path, repeat: int) -> list[dict]:
    """Every tool on one series, each run in a fresh process, tools interleaved in ``repeat`` rounds; medians."""
    mb = _dicom_mb(folder)
    tools = TOOLS + (("baseline",) if os.environ.get("SONIMAGE_BASELINE") else ())
    rounds = [[_one(tool, folder) for tool in tools] for _ in range(repeat)]
    rows = []
    for k, tool in enumerate(tools):
        runs = [r[k] for r in rounds]
        med = {key: statistics.median(r[key] for r in runs)
               for key in ("seconds", "cpu_s", "discover_s", "discover_cpu_s", "read_s")}
        rows.append({"case": name, "tool": tool, "slices": runs[0]["slices"], **med,
                     "slices_per_s": runs[0]["slices"] / med["seconds"], "mb_per_s": mb / med["seconds"],
                     "peak_mb": max(r["peak_mb"] for r in runs), "array_mb": runs[0].get("array_mb")})
    return rows


def _warm_up() -> None:
    """Import the conversion stack in a worker, as a long-running worker already has."""
    import sonimage.dicom.conversion  # noqa: F401


def cohort_rows(root: Path, workers: int) -> list[dict]:
    """A whole cohort: sonimage on a LocalCluster of worker processes vs SimpleITK reading series one by one."""
    import SimpleITK as sitk
    from distributed import Client

    from sonimage.cluster import local_cluster

    from sonimage.dicom.pseudonym import Pseudonymiser
    from sonimage.stages import convert as convert_stage

    mb = _dicom_mb(root)
    folders = sorted({p.parent for p in root.rglob("*.dcm")})
    t = time.perf_counter()
    n_slices = 0
    for folder in folders:
        reader = sitk.ImageSeriesReader()
        names = reader.GetGDCMSeriesFileNames(str(folder))
        if len(names) > 1:
            reader.SetFileNames(names)
            n_slices += reader.Execute().GetSize()[2]
    sitk_s = time.perf_counter() - t
    out = Path(tempfile.mkdtemp())
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.run(_warm_up)  # worker start-up (imports) is not conversion time, as cluster start-up is not
        t = time.perf_counter()
        convert_stage.run(root, out, Pseudonymiser(b"bench", cohort_name="bench"), executor=client)
        son_s = time.perf_counter() - t
        peaks = client.run(peak_mb)
    import pandas as pd

    manifest = pd.read_parquet(out / "manifest.parquet")
    manifest = manifest[manifest.status == "converted"]
    largest = float((manifest.shape_z * manifest.shape_y * manifest.shape_x * 4).max() / 2**20)
    shutil.rmtree(out)
    return [
        {"case": f"cohort ({len(folders)} series)", "tool": "simpleitk (serial)", "slices": n_slices,
         "seconds": sitk_s, "slices_per_s": n_slices / sitk_s, "mb_per_s": mb / sitk_s, "peak_mb": None},
        {"case": f"cohort ({len(folders)} series)", "tool": f"sonimage ({workers} workers)", "slices": n_slices,
         "seconds": son_s, "slices_per_s": n_slices / son_s, "mb_per_s": mb / son_s,
         "peak_mb": max(peaks.values()), "largest_series_mb": largest},
    ]


def synthetic_study(patients: int) -> Path | None:
    """A full-size synthetic study (generated once), or None when the generator is unavailable."""
    target = RESULTS / "data" / f"full-{patients}"
    if not (target / "dicom").is_dir():
        done = subprocess.run([str(Path(sys.executable).parent / "sonimage"), "synth", str(target), "--cohorts", "sonia",
                               "--patients", str(patients), "--size", "full", "--seed", "7"])
        if done.returncode != 0:
            return None
    return target / "dicom"


def _print(rows: list[dict]) -> None:
    head = (f"{'case':<28}{'tool':<24}{'slices':>7}{'total s':>9}{'CPU s':>7}{'index s':>9}{'index CPU':>10}"
            f"{'read s':>8}{'MB/s':>7}{'peak MB':>9}{'CPU vs sitk':>12}")
    print(head)
    print("-" * len(head))
    sitk_cpu = {r["case"]: r["cpu_s"] for r in rows if r["tool"] == "simpleitk"}

    def cell(value: float | None, width: int, digits: int = 2) -> str:
        return f"{'':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    for r in rows:
        ratio = (f"{r['cpu_s'] / sitk_cpu[r['case']]:>11.2f}x" if r.get("cpu_s") and r["case"] in sitk_cpu
                 else "")
        print(f"{r['case']:<28}{r['tool']:<24}{r['slices']:>7}{r['seconds']:>9.2f}{cell(r.get('cpu_s'), 7)}"
              f"{cell(r.get('discover_s'), 9)}{cell(r.get('discover_cpu_s'), 10)}{cell(r.get('read_s'), 8)}"
              f"{r['mb_per_s']:>7.1f}{cell(r['peak_mb'], 9, 0)}{ratio}")
    print("index: header scan and series discovery; read: SimpleITK's read, or sonimage's SUV conversion and Zarr "
          "write. CPU s: the process's own CPU time (fair under load). Medians of interleaved fresh-process runs.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", nargs=2, metavar=("TOOL", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-cohort", action="store_true", help="single series only")
    parser.add_argument("--baseline", type=Path, help="root of another checkout whose sonimage is timed too, as "
                        "'baseline' (e.g. main, for a before/after in one run)")
    args = parser.parse_args()
    if args.one:
        tool, folder = args.one[0], Path(args.one[1])
        result = one_simpleitk(folder) if tool == "simpleitk" else one_sonimage(
            folder, "pydicom" if tool == "sonimage-pydicom-index" else "tagreader")
        print(json.dumps(result))
        return
    if args.baseline:
        os.environ["SONIMAGE_BASELINE"] = str(args.baseline.resolve())
    before = load()
    rows: list[dict] = []
    real = SHARED / "sts-001-fdg-pet" / "dicom"
    if real.is_dir():
        rows += series_rows("real GE series (sts-001)", real, args.repeat)
    study = None if args.skip_cohort else synthetic_study(args.patients)
    if study is not None:
        pet = next(p.parent for p in sorted(study.rglob("*.dcm")) if "PT" in p.parent.name.upper()
                   or "PET" in p.parent.name.upper())
        rows += series_rows("synthetic full-size PET", pet, args.repeat)
        rows += cohort_rows(study, args.workers)
    after = load()
    _print(rows)
    print(load_line(before, after))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine_start": describe() | before, "machine_end": after, "repeat": args.repeat, "rows": rows}
    (RESULTS / "convert.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {RESULTS / 'convert.json'}")


if __name__ == "__main__":
    main()
