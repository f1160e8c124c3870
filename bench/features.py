"""Benchmark: sonimage lesion features against PyRadiomics and Pictologics on the 51 real IBSI STS PET lesions.

One command: ``python bench/features.py`` prints a table and writes ``bench/results/features.json``.

Part 1, per lesion, same run, same files: the 51 IBSI NIfTI image + mask pairs of ../shared/data/ibsi-sts-pet-nifti
(SUVbw, label 1). Each tool runs in its own fresh process over all 51 pairs, timing read (image + mask file) and
features per lesion in the process's CPU seconds (one untimed warm-up lesion first); its import (and for Pictologics
the Numba JIT it triggers) and the warm-up lesion are timed apart and reported separately.
- PyRadiomics (``pyradiomics-bhklab==3.1.4``; 3.1.0 does not build on Python 3.11) in ``bench/.venv-pyradiomics``.
- Pictologics (``pictologics==0.9.0``, Numba; Python >= 3.12) in ``bench/.venv-pictologics`` (created with the
  pyenv Python 3.12 when absent; its first import JIT-compiles for minutes to fill Numba's cache). One thread
  (``PICTOLOGICS_NUM_THREADS=1``), as the other tools.
sonimage's compiled loops (Numba) are timed once with an empty cache (cold: compiled and written; its import and
first lesion reported apart) and then read from that cache (warm) in every round.
Matched settings: 3D, no resampling, fixed bin width 0.5 SUV with bins aligned to 0, distance 1; the same
families: shape/morphology (with Moran's I and Geary's C: Pictologics' ``spatial_intensity``, not in PyRadiomics),
intensity statistics, intensity histogram, GLCM, GLRLM, GLSZM, NGLDM/GLDM, NGTDM. sonimage is timed also with
all 12 of its families (local intensity, IVH, GLDZM, PET added).

Part 2: all lesions of a synthetic cohort (``sonimage synth``, generated once into ``bench/results/data``), one
Dask task per scan (:func:`sonimage.stages.scan.scan_lesions`) on a LocalCluster of 1 and of 2 worker
processes; cluster start-up and imports are outside the timing.

The machine may be shared: every measurement is repeated (``--repeat``, tools interleaved) and the fastest
round counts, per lesion for part 1 and per cluster size for part 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, load, load_line, peak_mb

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))
PYRAD_VENV = REPO / "bench" / ".venv-pyradiomics"
PYRAD_PACKAGE = "pyradiomics-bhklab==3.1.4"
PICTO_VENV = REPO / "bench" / ".venv-pictologics"
PICTO_PACKAGE = "pictologics==0.9.0"
PICTO_PYTHON = Path("/root/.pyenv/versions/3.12.1/bin/python")
PICTO_FAMILIES = ("morphology", "spatial_intensity", "intensity", "histogram", "glcm", "glrlm", "glszm", "ngldm",
                  "ngtdm")
BIN_WIDTH = 0.5
MATCHED = ("morphology", "statistics", "histogram", "glcm", "glrlm", "glszm", "ngldm", "ngtdm")
PYRAD_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


# ---- workers: run in a fresh process of the tool's own environment (stdlib imports only at module level) ----
# A runner is (read, features): read(image path, mask path) loads one lesion, features(loaded) computes every
# feature of it and returns (feature count, {mean, max, volume_mm3} for the sanity check).

def _sonimage_runner(families: tuple[str, ...], spatial: bool = True):
    from sonimage.features.base import FeatureSettings, Roi
    from sonimage.features.families import extract_features
    from sonimage.stages.inputs import read_image, read_mask

    settings = FeatureSettings(bin_width=BIN_WIDTH, bin_lower_bound=0.0, spatial_autocorrelation=spatial)

    def read(image: str, mask: str) -> Roi:
        volume = read_image(Path(image))
        return Roi(volume.array, read_mask(Path(mask), volume), volume.spacing)

    def features(roi) -> tuple[int, dict[str, float]]:
        out = extract_features(roi, settings, families)
        values = {f.code: f.value for f in out if f.code in ("Q4LE", "YEKZ", "84IY")}
        return len(out), {"mean": values["Q4LE"], "max": values["84IY"], "volume_mm3": values["YEKZ"]}
    return read, features


def _pictologics_runner(spatial: bool = True):
    from pictologics import RadiomicsPipeline, load_image

    families = [f for f in PICTO_FAMILIES if spatial or f != "spatial_intensity"]
    pipeline = RadiomicsPipeline()
    pipeline.add_config("bench", [
        {"step": "discretise", "params": {"method": "FBS", "bin_width": BIN_WIDTH, "min_val": 0.0}},
        {"step": "extract_features", "params": {"families": families}},
    ])

    def read(image: str, mask: str) -> tuple:
        return load_image(image), load_image(mask, stored_type=True)

    def features(loaded: tuple) -> tuple[int, dict[str, float]]:
        out = pipeline.run(*loaded, config_names=["bench"])["bench"]
        value = {code: float(out[[k for k in out.index if k.endswith(code)][0]]) for code in ("Q4LE", "84IY", "YEKZ")}
        return len(out), {"mean": value["Q4LE"], "max": value["84IY"], "volume_mm3": value["YEKZ"]}
    return read, features


def _pyradiomics_runner():
    import logging

    import SimpleITK as sitk
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(
        binWidth=BIN_WIDTH, label=1, force2D=False, resampledPixelSpacing=None, correctMask=False,
        additionalInfo=False, distances=[1])
    extractor.disableAllFeatures()
    for name in PYRAD_CLASSES:
        extractor.enableFeatureClassByName(name)

    def read(image: str, mask: str) -> tuple:
        return sitk.ReadImage(image), sitk.ReadImage(mask)

    def features(loaded: tuple) -> tuple[int, dict[str, float]]:
        out = extractor.execute(*loaded)  # PyRadiomics takes SimpleITK images as well as paths
        return len(out), {"mean": float(out["original_firstorder_Mean"]), "max": float(out["original_firstorder_Maximum"]),
                          "volume_mm3": float(out["original_shape_VoxelVolume"])}
    return read, features


def worker(tool: str, pairs_file: Path) -> dict:
    """Time every lesion of ``pairs_file`` with ``tool``: the read (image + mask files) and the features, each in
    wall and CPU seconds of this process; the import and set-up, and the first lesion once more beforehand
    (warm-up), timed apart."""
    pairs = json.loads(Path(pairs_file).read_text())
    wall, cpu = time.perf_counter(), time.process_time()
    spatial = not tool.endswith("-nospatial")
    if tool == "pyradiomics":
        read, features = _pyradiomics_runner()
    elif tool.startswith("pictologics"):
        read, features = _pictologics_runner(spatial)
    else:
        families = tuple(json.loads(os.environ["FAMILIES"])) if tool == "sonimage-all" else MATCHED
        read, features = _sonimage_runner(families, spatial)
    setup = {"import_s": time.perf_counter() - wall, "import_cpu_s": time.process_time() - cpu}
    wall, cpu = time.perf_counter(), time.process_time()
    features(read(pairs[0]["image"], pairs[0]["mask"]))
    setup.update(warmup_s=time.perf_counter() - wall, warmup_cpu_s=time.process_time() - cpu)
    out: dict[str, list] = {"read_s": [], "read_cpu_s": [], "seconds": [], "cpu_s": [], "checks": []}
    for p in pairs:
        wall, cpu = time.perf_counter(), time.process_time()
        loaded = read(p["image"], p["mask"])
        mid_wall, mid_cpu = time.perf_counter(), time.process_time()
        count, check = features(loaded)
        out["read_s"].append(mid_wall - wall)
        out["read_cpu_s"].append(mid_cpu - cpu)
        out["seconds"].append(time.perf_counter() - mid_wall)
        out["cpu_s"].append(time.process_time() - mid_cpu)
        out["checks"].append(check)
    return {**out, **setup, "features": count, "peak_mb": peak_mb()}


# ---- orchestration (the project's environment) ----

def ensure_venv(venv: Path, package: str, python: Path = Path(sys.executable)) -> Path:
    """The interpreter of a benchmark's own virtual environment, created with ``package`` on first use."""
    interpreter = venv / "bin" / "python"
    if not interpreter.exists():
        print(f"creating {venv} with {package} ...", flush=True)
        subprocess.run([str(python), "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(interpreter), "-m", "pip", "install", "--quiet", package], check=True)
    return interpreter


def prepare_lesions() -> list[dict]:
    """The 51 IBSI STS lesions as NIfTI image + mask pairs (../shared/data/ibsi-sts-pet-nifti), with voxel counts."""
    from sonimage.nifti import read_nifti

    folder = SHARED / "ibsi-sts-pet-nifti"
    if not any(folder.glob("STS_*")):
        raise SystemExit(f"no STS_* lesions in {folder}: point SONIMAGE_SHARED_DATA at the shared data folder")
    pairs = []
    for case in sorted(folder.glob("STS_*")):
        image, mask = case / "PET_image.nii.gz", case / "PET_mask.nii.gz"
        pairs.append({"case": case.name, "voxels": int((read_nifti(mask).array == 1).sum()), "image": str(image),
                      "mask": str(mask)})
    return pairs


def run_tool(python: Path, tool: str, pairs_file: Path, families: tuple[str, ...] = (), source: Path | None = None,
             numba_cache: Path | None = None) -> dict:
    """One worker process of ``tool``; ``source``: the root of another checkout whose sonimage it imports;
    ``numba_cache``: sonimage's Numba cache directory (``NUMBA_CACHE_DIR``)."""
    env = {**os.environ, "FAMILIES": json.dumps(list(families)), "OMP_NUM_THREADS": "1",
           "PICTOLOGICS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    if source is not None:  # PYTHONPATH comes before the editable install
        env["PYTHONPATH"] = str(source)
    done = subprocess.run([str(python), __file__, "--worker", tool, str(pairs_file)], check=True,
                          capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


TIMINGS = ("read_s", "read_cpu_s", "seconds", "cpu_s")
SETUP = ("import_s", "import_cpu_s", "warmup_s", "warmup_cpu_s")


def best_of(results: list[dict]) -> dict:
    """Per lesion the fastest of the repeated runs (the machine's other load only ever adds time)."""
    return {**results[0], **{key: [min(t) for t in zip(*(r[key] for r in results))] for key in TIMINGS},
            **{key: statistics.median(r[key] for r in results) for key in SETUP},
            "peak_mb": max(r["peak_mb"] for r in results)}


def summarise(name: str, result: dict) -> dict:
    """Medians over lesions: features alone (image and mask in memory) and read + features, wall and CPU."""
    wall, cpu = result["seconds"], result["cpu_s"]
    with_read = [w + r for w, r in zip(wall, result["read_s"])]
    with_read_cpu = [c + r for c, r in zip(cpu, result["read_cpu_s"])]
    return {"tool": name, "lesions": len(wall), "features": result["features"],
            "median_s": statistics.median(wall), "median_cpu_s": statistics.median(cpu),
            "mean_cpu_s": statistics.fmean(cpu), "max_cpu_s": max(cpu), "total_cpu_s": sum(cpu),
            "median_with_read_s": statistics.median(with_read), "median_with_read_cpu_s": statistics.median(with_read_cpu),
            "median_read_cpu_s": statistics.median(result["read_cpu_s"]),
            **{key: result[key] for key in SETUP}, "peak_mb": result["peak_mb"], "checks": result["checks"]}


def synthetic_scans(patients: int) -> list[tuple[Path, Path]]:
    """(PET folder, RTSTRUCT) of every scan with lesions in a synthetic SONIA cohort generated once."""
    target = RESULTS / "data" / f"features-sonia-{patients}"
    if not (target / "dicom").is_dir():
        subprocess.run([str(Path(sys.executable).parent / "sonimage"), "synth", str(target), "--cohorts", "sonia",
                        "--patients", str(patients), "--size", "small", "--seed", "11"], check=True)
    scans = []
    for rs in sorted((target / "dicom").rglob("RS-*.dcm")):
        pet = [d for d in rs.parent.parent.iterdir() if "_PET_" in d.name]
        if len(pet) == 1:
            scans.append((pet[0], rs))
    return scans


def dask_rows(scans: list[tuple[Path, Path]], worker_counts: tuple[int, ...], repeat: int) -> list[dict]:
    """Wall time (best of ``repeat``) for every lesion of ``scans`` on LocalClusters of ``worker_counts`` processes."""
    from dask.distributed import Client

    from sonimage.cluster import local_cluster

    from sonimage.features.base import FeatureSettings
    from sonimage.features.families import ALL_FAMILIES
    from sonimage.stages.scan import scan_lesions

    settings = FeatureSettings(bin_width=BIN_WIDTH, bin_lower_bound=0.0)
    rows = []
    for n in worker_counts:
        with local_cluster(n) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("sonimage.features.families") and None)
            walls = []
            for _ in range(repeat):
                t = time.perf_counter()
                futures = client.map(scan_lesions, [s[0] for s in scans], [s[1] for s in scans], settings=settings,
                                     families=ALL_FAMILIES, pure=False)
                results = client.gather(futures)
                walls.append(time.perf_counter() - t)
            wall = min(walls)
            peak = max(client.run(peak_mb).values())
        lesions = [lesion for scan in results for lesion in scan]
        rows.append({"workers": n, "scans": len(scans), "lesions": len(lesions),
                     "errors": sum(bool(lesion.error) for lesion in lesions), "wall_s": wall,
                     "lesions_per_s": len(lesions) / wall, "peak_worker_mb": peak})
    return rows


def profile(pairs: list[dict], rounds: int = 3) -> list[dict]:
    """Where sonimage's time goes: CPU seconds over all lesions per step (read, validation + crop, each family),
    the fastest of ``rounds``."""
    from sonimage.features.base import FeatureSettings
    from sonimage.features.families import ALL_FAMILIES, check_roi, crop, family_module
    from sonimage.features.local_intensity import peak_margin

    read, _ = _sonimage_runner(MATCHED)
    settings = FeatureSettings(bin_width=BIN_WIDTH, bin_lower_bound=0.0)
    best: dict[str, float] = {}
    for _ in range(rounds):
        spent = dict.fromkeys(("read image + mask", "validate + crop", *ALL_FAMILIES), 0.0)
        for p in pairs:
            cpu = time.process_time()
            roi = read(p["image"], p["mask"])
            spent["read image + mask"] += time.process_time() - cpu
            cpu = time.process_time()
            check_roi(roi)
            roi = crop(roi, peak_margin(roi.spacing, settings.peak_volume_ml))
            spent["validate + crop"] += time.process_time() - cpu
            for name in ALL_FAMILIES:
                cpu = time.process_time()
                family_module(name).compute(roi, settings)
                spent[name] += time.process_time() - cpu
        best = {k: min(v, best.get(k, v)) for k, v in spent.items()}
    matched = sum(best[k] for k in ("read image + mask", "validate + crop", *MATCHED))
    return [{"step": k, "cpu_s": v, "matched": k in MATCHED or "+" in k, "share_of_matched": v / matched}
            for k, v in best.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "PAIRS"), help=argparse.SUPPRESS)
    parser.add_argument("--cohort-patients", type=int, default=12, help="synthetic SONIA patients for the Dask part")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; per lesion the fastest round counts")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--profile", action="store_true", help="only sonimage's CPU seconds per step and family")
    parser.add_argument("--baseline", type=Path, help="root of another checkout whose sonimage (matched families) "
                        "is timed too, for a before/after in one run")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return
    from sonimage.features.families import ALL_FAMILIES

    if args.profile:
        rows = profile(prepare_lesions())
        print(f"{'step':<22}{'CPU s (51 lesions)':>20}{'share of matched':>18}")
        for r in rows:
            share = f"{100 * r['share_of_matched']:.0f} %" if r["matched"] else "(not matched)"
            print(f"{r['step']:<22}{r['cpu_s']:>20.3f}{share:>18}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "features-profile.json").write_text(json.dumps({"machine": describe(), "steps": rows}, indent=2))
        return
    pyrad = ensure_venv(PYRAD_VENV, PYRAD_PACKAGE)
    picto = ensure_venv(PICTO_VENV, PICTO_PACKAGE, PICTO_PYTHON)
    before = load()
    pairs = prepare_lesions()
    with tempfile.TemporaryDirectory() as tmp:
        pairs_file = Path(tmp) / "pairs.json"
        pairs_file.write_text(json.dumps(pairs))
        print(f"{len(pairs)} lesions ({min(p['voxels'] for p in pairs)}–{max(p['voxels'] for p in pairs)} voxels), "
              f"bin width {BIN_WIDTH} SUV, 3D", flush=True)
        runs = [(f"PyRadiomics 3.1.4 ({len(PYRAD_CLASSES)} classes)", pyrad, "pyradiomics", (), None),
                ("Pictologics 0.9.0 (matched)", picto, "pictologics", (), None),
                ("Pictologics 0.9.0 (no Moran/Geary)", picto, "pictologics-nospatial", (), None),
                (f"sonimage (matched {len(MATCHED)} families)", Path(sys.executable), "sonimage", (), None),
                ("sonimage (matched, no Moran/Geary)", Path(sys.executable), "sonimage-nospatial", (), None),
                (f"sonimage (all {len(ALL_FAMILIES)} families)", Path(sys.executable), "sonimage-all", ALL_FAMILIES,
                 None)]
        if args.baseline:
            runs.append((f"baseline (matched {len(MATCHED)} families)", Path(sys.executable), "sonimage", (),
                         args.baseline.resolve()))
        # sonimage's compiled loops (Numba) once with an empty cache (cold: compiled and written), then from it (warm)
        cache = Path(tmp) / "numba-cache"
        cold = run_tool(Path(sys.executable), "sonimage", pairs_file, numba_cache=cache)
        rounds = []
        for i in range(args.repeat):  # tools interleaved within each round
            rounds.append([run_tool(python, tool, pairs_file, fams, source, cache if tool.startswith("sonimage") else None)
                           for _, python, tool, fams, source in runs])
            print(f"round {i + 1}/{args.repeat} done, load {load()['load_1min']:.1f}", flush=True)
        tools = [summarise(name, best_of([r[i] for r in rounds])) for i, (name, *_) in enumerate(runs)]
    warm = next(t for t in tools if t["tool"].startswith("sonimage (matched"))
    jit = {"cold": {key: cold[key] for key in SETUP}, "warm": {key: warm[key] for key in SETUP}}
    base = tools[0]
    for row in tools[1:]:
        row["max_rel_diff_vs_pyradiomics"] = {
            key: max(abs(a[key] - b[key]) / abs(b[key]) for a, b in zip(row["checks"], base["checks"]))
            for key in ("mean", "max", "volume_mm3")}
    for row in tools:
        row.pop("checks", None)
        for key in ("median_cpu_s", "median_with_read_cpu_s"):
            row[f"speedup_{key}_vs_pyradiomics"] = base[key] / row[key]
            twin = tools[2] if "no Moran" in row["tool"] else tools[1]  # Pictologics with the same features
            row[f"speedup_{key}_vs_pictologics"] = twin[key] / row[key]
    head = (f"{'tool':<36}{'features':>9}{'CPU':>8}{'read':>8}{'+read':>8}{'mean CPU':>9}{'import s':>9}"
            f"{'warm-up s':>10}{'peak MB':>8}{'vs PyRad':>10}{'vs Picto':>10}{'+read vs Picto':>16}")
    print(head + "\n" + "-" * len(head))
    for r in tools:
        print(f"{r['tool']:<36}{r['features']:>9}{r['median_cpu_s']:>8.4f}{r['median_read_cpu_s']:>8.4f}"
              f"{r['median_with_read_cpu_s']:>8.4f}{r['mean_cpu_s']:>9.4f}{r['import_cpu_s']:>9.2f}"
              f"{r['warmup_cpu_s']:>10.2f}{r['peak_mb']:>8.0f}{r['speedup_median_cpu_s_vs_pyradiomics']:>9.2f}x"
              f"{r['speedup_median_cpu_s_vs_pictologics']:>9.2f}x"
              f"{r['speedup_median_with_read_cpu_s_vs_pictologics']:>15.2f}x")
    print("per lesion, medians over the lesions of the fastest of the rounds, CPU seconds of the tool's own process; "
          "CPU: features with image and mask in memory; read: the NIfTI image and mask; +read: both; import s and "
          "warm-up s: once per process (import incl. Pictologics' Numba JIT from its cache; warm-up: the first "
          "lesion), CPU, median of the rounds; speed-ups: median feature CPU, against Pictologics with the same "
          "features (with or without Moran's I / Geary's C)")
    print("same lesions, same voxels: largest relative difference to PyRadiomics in mean / max / voxel volume: "
          + "; ".join(f"{r['tool'].split(' (')[0]} " + ", ".join(f"{v:.1e}" for v in r["max_rel_diff_vs_pyradiomics"].values())
                      for r in tools[1:]))
    once = {k: v["import_cpu_s"] + v["warmup_cpu_s"] for k, v in jit.items()}
    print(f"sonimage's Numba loops, once per process (CPU s): cold cache (compiled and written) import "
          f"{jit['cold']['import_cpu_s']:.2f} + first lesion {jit['cold']['warmup_cpu_s']:.2f}; warm cache import "
          f"{jit['warm']['import_cpu_s']:.2f} + first lesion {jit['warm']['warmup_cpu_s']:.2f}; over a worker's "
          f"{len(pairs)} lesions that adds {once['cold'] / len(pairs):.4f} (cold) / {once['warm'] / len(pairs):.4f} "
          "(warm) s per lesion, before the first lesion's own features")
    print(load_line(before, load()))
    report = {"per_lesion": tools, "sonimage_numba_once": jit, "bin_width": BIN_WIDTH, "cases": [p["case"] for p in pairs],
              "machine_start": describe() | before, "machine_end": load(), "repeat": args.repeat}
    if not args.skip_dask:
        scans = synthetic_scans(args.cohort_patients)
        report["dask"] = dask_rows(scans, (1, 2), args.repeat)
        report["dask_cohort"] = f"synthetic SONIA, {args.cohort_patients} patients, FDG scans with RTSTRUCT lesions"
        print(f"\nDask, {report['dask_cohort']}, all {len(ALL_FAMILIES)} families, one task per scan")
        print(f"{'workers':>8}{'scans':>7}{'lesions':>9}{'errors':>8}{'wall s':>9}{'lesions/s':>11}{'peak MB':>9}")
        for r in report["dask"]:
            print(f"{r['workers']:>8}{r['scans']:>7}{r['lesions']:>9}{r['errors']:>8}{r['wall_s']:>9.1f}"
                  f"{r['lesions_per_s']:>11.2f}{r['peak_worker_mb']:>9.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "features.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {RESULTS / 'features.json'}")


if __name__ == "__main__":
    main()
