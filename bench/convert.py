"""Benchmark: DICOM → SUV Zarr conversion against SimpleITK's ImageSeriesReader on the same series.

One command: ``python bench/convert.py`` prints a table and writes ``bench/results/convert.json``.
Each single-series measurement runs in a fresh process (clean peak memory), median of ``--repeat`` runs.
Series: the real GE series in ../shared/data/sts-001-fdg-pet, and a full-size synthetic FDG-PET/CT patient and
cohort generated once into ``bench/results/data`` (``--patients`` of them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_simpleitk(folder: Path) -> dict:
    """Plain read of one series with SimpleITK (series discovery plus read), as a user would."""
    import SimpleITK as sitk

    base = _peak_mb()
    t = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    t_read = time.perf_counter()
    image = reader.Execute()
    end = time.perf_counter()
    return {"seconds": end - t, "discover_s": t_read - t, "read_s": end - t_read, "slices": image.GetSize()[2],
            "peak_mb": _peak_mb() - base}


def one_sonimage(folder: Path) -> dict:
    """sonimage's conversion of one series: header index, validation, SUV, chunked Zarr write."""
    from sonimage.dicom.index import index_files, list_files
    from sonimage.dicom.pseudonym import Pseudonymiser
    from sonimage.dicom.reader import load_plan
    from sonimage.dicom.series import group_series
    from sonimage.volumes.store import VARIABLE_BY_QUANTITY, write_volume
    from sonimage.volume import Volume

    out = Path(tempfile.mkdtemp())
    # Warm-up: xarray and zarr import codecs and backends lazily on their first write (an import cost).
    write_volume(Volume(np.zeros((2, 2, 2), np.float32), (1.0, 1.0, 1.0)), out / "warm.zarr", "suv")
    base = _peak_mb()
    t = time.perf_counter()
    instances, _ = index_files(list_files(folder), folder, Pseudonymiser(b"bench"))
    plans, _, _ = group_series(instances)
    plan = next(p for p in plans if p.modality == "PT")
    t_convert = time.perf_counter()
    volume = load_plan(plan, folder)
    write_volume(volume, out / "s.zarr", VARIABLE_BY_QUANTITY[volume.attrs["quantity"]])
    end = time.perf_counter()
    shutil.rmtree(out)
    return {"seconds": end - t, "discover_s": t_convert - t, "read_s": end - t_convert, "slices": plan.shape[0],
            "peak_mb": _peak_mb() - base, "array_mb": volume.array.nbytes / 2**20}


def _measure(method: str, folder: Path, repeat: int) -> dict:
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--one", method, str(folder)], check=True,
                                      capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(repeat)]
    best = dict(runs[0])
    for key in ("seconds", "discover_s", "read_s"):
        best[key] = statistics.median(r[key] for r in runs)
    best["peak_mb"] = max(r["peak_mb"] for r in runs)
    return best


def _dicom_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def series_rows(name: str, folder: Path, repeat: int) -> list[dict]:
    """Both tools on one series."""
    mb = _dicom_mb(folder)
    rows = []
    for tool in ("simpleitk", "sonimage"):
        r = _measure(tool, folder, repeat)
        rows.append({"case": name, "tool": tool, "slices": r["slices"], "seconds": r["seconds"],
                     "discover_s": r["discover_s"], "read_s": r["read_s"],
                     "slices_per_s": r["slices"] / r["seconds"], "mb_per_s": mb / r["seconds"],
                     "peak_mb": r["peak_mb"], "array_mb": r.get("array_mb")})
    return rows


def _warm_up() -> None:
    """Import the conversion stack in a worker, as a long-running worker already has."""
    import sonimage.volumes.convert  # noqa: F401


def cohort_rows(root: Path, workers: int) -> list[dict]:
    """A whole cohort: sonimage on a LocalCluster of worker processes vs SimpleITK reading series one by one."""
    import SimpleITK as sitk
    from distributed import Client

    from sonimage.cluster import local_cluster

    from sonimage.dicom.pseudonym import Pseudonymiser
    from sonimage.volumes.convert import convert_tree

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
        convert_tree(root, out, Pseudonymiser(b"bench"), executor=client)
        son_s = time.perf_counter() - t
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
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
    head = (f"{'case':<28}{'tool':<22}{'slices':>7}{'total s':>9}{'index s':>9}{'read s':>8}{'slices/s':>10}"
            f"{'MB/s':>8}{'peak MB':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        peak = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        index = "" if r.get("discover_s") is None else f"{r['discover_s']:.2f}"
        read = "" if r.get("read_s") is None else f"{r['read_s']:.2f}"
        print(f"{r['case']:<28}{r['tool']:<22}{r['slices']:>7}{r['seconds']:>9.2f}{index:>9}{read:>8}"
              f"{r['slices_per_s']:>10.0f}{r['mb_per_s']:>8.1f}{peak:>9}")
    print("index s: header scan and series discovery; read s: SimpleITK's read, or sonimage's SUV conversion "
          "and Zarr write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", nargs=2, metavar=("TOOL", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.one:
        fn = one_simpleitk if args.one[0] == "simpleitk" else one_sonimage
        print(json.dumps(fn(Path(args.one[1]))))
        return
    rows: list[dict] = []
    real = SHARED / "sts-001-fdg-pet" / "dicom"
    if real.is_dir():
        rows += series_rows("real GE series (sts-001)", real, args.repeat)
    study = synthetic_study(args.patients)
    if study is not None:
        pet = next(p.parent for p in sorted(study.rglob("*.dcm")) if "PT" in p.parent.name.upper()
                   or "PET" in p.parent.name.upper())
        rows += series_rows("synthetic full-size PET", pet, args.repeat)
        rows += cohort_rows(study, args.workers)
    _print(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convert.json").write_text(json.dumps(rows, indent=2))
    print(f"\nwritten: {RESULTS / 'convert.json'}")


if __name__ == "__main__":
    main()
