"""Convert a DICOM tree: index headers, group and validate series, write one Zarr store per PET or CT series.

Every file ends in exactly one place: a converted series (counted in its manifest row's ``n_files``), an indexed
object series (RTSTRUCT, SEG), or the quarantine with a reason. Functions here are pure and picklable; pass any
``concurrent.futures.Executor``-like object (a ``distributed.Client`` works) to fan out over a cluster.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonimage.dicom.index import Instance, Rejected, index_files, list_files
from sonimage.dicom.pseudonym import Pseudonymiser
from sonimage.dicom.reader import load_plan
from sonimage.dicom.rtstruct import rtstruct_labels
from sonimage.dicom.series import ObjectSeries, SeriesPlan, group_series
from sonimage.parallel import Executor, parallel_starmap
from sonimage.tables.manifest import write_manifest, write_quarantine
from sonimage.volume import Volume
from sonimage.volumes.store import VARIABLE_BY_QUANTITY, write_volume

MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.parquet"
INDEX_BATCH = 256


@dataclass(frozen=True)
class Job:
    """One series to convert; its plan was indexed with a key, so no original identifier travels with it."""

    cohort: str
    plan: SeriesPlan
    store: str

    @property
    def label(self) -> str:
        """What the job converts, for task names and logs (pseudonyms only)."""
        return f"{self.cohort}-{self.plan.patient_id}-{self.plan.modality}-series-{self.plan.series_uid[:12]}"


@dataclass(frozen=True)
class MaskJob:
    """An RTSTRUCT to rasterise onto the grid of the PET series it was drawn on."""

    cohort: str
    patient: str
    study: str
    series: str
    path: str
    shown: str
    pet: SeriesPlan
    store: str

    @property
    def label(self) -> str:
        """What the job rasterises, for task names and logs (pseudonyms only)."""
        return f"{self.cohort}-{self.patient}-RTSTRUCT-series-{self.series[:12]}"


@dataclass(frozen=True)
class Outcome:
    """A converted series' manifest row, or its quarantine row."""

    manifest: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None
    extra: list[dict[str, Any]] = field(default_factory=list)  # quarantine rows of a converted series' parts
    reused: bool = False  # the store of an earlier run had the same content digest: nothing was converted


def cohort_of(path: str, root: Path) -> str:
    """The cohort of a file: the first folder below the DICOM root, or the root's own name for files directly in it."""
    return path.split("/", 1)[0] if "/" in path else root.name


def quarantine_row(cohort: str, r: Rejected, series: str = "", stage: str = "index") -> dict[str, Any]:
    """A quarantine row for a rejected file or series."""
    return {"cohort": cohort, "path": r.path, "series": series, "n_files": r.n_files, "stage": stage, "reason": r.reason}


def shown_rejections(rejected: list[Rejected], instances: list[Instance]) -> list[Rejected]:
    """Rejected files with their folders shown as the readable files in them are: patient-named folders pseudonymised."""
    folders: dict[str, str] = {}
    for i in instances:
        real, shown_parts = i.path.split("/")[:-1], i.shown.split("/")[:-1]
        for k in range(1, len(real) + 1):
            folders["/".join(real[:k])] = "/".join(shown_parts[:k])

    def shown(path: str) -> str:
        parts = path.split("/")
        for k in range(len(parts) - 1, 0, -1):
            prefix = "/".join(parts[:k])
            if prefix in folders:
                return "/".join([folders[prefix], *parts[k:]])
        return path

    return [dataclasses.replace(r, path=shown(r.path)) for r in rejected]


def batches(paths: list[Path], size: int = INDEX_BATCH) -> list[list[Path]]:
    """``paths`` cut into batches for parallel indexing."""
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def _object_row(cohort: str, obj: ObjectSeries) -> dict[str, Any]:
    return {"cohort": cohort, "patient": obj.patient_id, "study": obj.study_uid, "series": obj.series_uid,
            "modality": obj.modality, "n_files": len(obj.files), "store": "", "status": "indexed"}


def plan_jobs(instances: list[Instance], root: Path
              ) -> tuple[list[Job | MaskJob], list[dict[str, Any]], list[dict[str, Any]]]:
    """Conversion jobs (image series, and RTSTRUCTs onto the PET they were drawn on), manifest rows of the other
    object series, and quarantine rows of rejected series or copies.

    ``instances`` come from an index made with a key, so plans and rows hold pseudonyms only.
    """
    plans, objects, rejected = group_series(instances)
    first_file = {i.series_uid: i.shown for i in instances}
    jobs = []
    for plan in plans:
        cohort = cohort_of(plan.slices[0].shown, root)
        jobs.append(Job(cohort, plan, f"volumes/{cohort}/{plan.patient_id}/{plan.series_uid}.zarr"))
    pets = {p.series_uid: p for p in plans if p.modality == "PT"}
    shown = {i.path: i.shown for i in instances}
    object_rows = []
    for o in objects:
        cohort = cohort_of(first_file[o.series_uid], root)
        pet = pets.get(o.referenced_series)
        if o.modality == "RTSTRUCT" and len(o.files) == 1 and pet is not None:
            jobs.append(MaskJob(cohort, o.patient_id, o.study_uid, o.series_uid, o.files[0], shown[o.files[0]], pet,
                                f"volumes/{cohort}/{o.patient_id}/{o.series_uid}.zarr"))
        else:
            object_rows.append(_object_row(cohort, o))
    bad = [quarantine_row(cohort_of(first_file.get(r.series_uid, r.path), root), r, r.series_uid, "series")
           for r in rejected]
    return jobs, object_rows, bad


def _row(job: Job, attrs: dict[str, Any]) -> dict[str, Any]:
    p = job.plan
    uptake = attrs.get("uptake_time_s")
    return {
        "cohort": job.cohort, "patient": p.patient_id, "study": p.study_uid, "series": p.series_uid,
        "frame_of_reference": p.frame_of_reference_uid, "modality": p.modality,
        "tracer": attrs.get("tracer", ""), "vendor": attrs.get("manufacturer", ""), "model": attrs.get("model", ""),
        "units": attrs.get("units", ""), "original_units": attrs.get("original_units", ""),
        "decay_correction": attrs.get("decay_correction", ""), "suv_factor": attrs.get("suv_factor"),
        "suv_bw_factor_g_per_bq": attrs.get("suv_bw_factor_g_per_bq"), "suv_method": attrs.get("suv_method", ""),
        "uptake_min": None if uptake is None else uptake / 60.0, "sul_ratio": attrs.get("ratio_sul_janma"),
        "shape_z": p.shape[0], "shape_y": p.shape[1], "shape_x": p.shape[2],
        "spacing_z": p.spacing[0], "spacing_y": p.spacing[1], "spacing_x": p.spacing[2],
        "n_files": len(p.files), "store": job.store, "status": "converted",
    }


def _stored(store: Path, digest: str) -> Outcome | None:
    """The outcome recorded in a store an earlier run finished from the same input bytes, else None.

    Stores appear atomically, so a store in place is complete; one converted from other bytes (a re-sent series
    with the same SeriesInstanceUID) or by a version that recorded no digest is converted again.
    """
    marker = store / "zarr.json"
    if not marker.is_file():
        return None
    attrs = json.loads(marker.read_text())["attributes"]
    if attrs.get("content_hmac_sha256") != digest:
        return None
    return Outcome(manifest=attrs["manifest_row"], extra=attrs.get("quarantine_rows", []), reused=True)


def convert_job(job: Job, dicom_root: Path, out_root: Path, pseudo: Pseudonymiser) -> Outcome:
    """Convert one series to its Zarr store; a store an earlier run made from the same file bytes is reused
    (recognised by the keyed digest of ``pseudo``)."""
    store = Path(out_root) / job.store
    digest = pseudo.content_digest(Path(dicom_root) / f for f in job.plan.files)
    if (done := _stored(store, digest)) is not None:
        return done
    try:
        volume = load_plan(job.plan, Path(dicom_root))
    except ValueError as exc:  # SeriesError, SuvError: the series goes to quarantine
        folder = job.plan.slices[0].shown.rsplit("/", 1)[0]
        return Outcome(quarantine=quarantine_row(job.cohort, Rejected(folder, str(exc), len(job.plan.files)),
                                                 job.plan.series_uid, "convert"))
    row = _row(job, volume.attrs)
    volume.attrs.update(manifest_row=row, content_hmac_sha256=digest)
    write_volume(volume, store, VARIABLE_BY_QUANTITY[volume.attrs["quantity"]])
    return Outcome(manifest=row)


def _grid(plan: SeriesPlan) -> Volume:
    return Volume(np.zeros(plan.shape, np.uint8), plan.spacing, plan.origin, plan.direction,
                  {"slice_positions_mm": list(plan.slice_positions)})


def convert_mask(job: MaskJob, dicom_root: Path, out_root: Path, pseudo: Pseudonymiser) -> Outcome:
    """Rasterise every ROI of an RTSTRUCT onto its PET grid as a label store; ROIs that fail are quarantined."""
    store = Path(out_root) / job.store
    real = str(Path(dicom_root) / job.path)
    digest = pseudo.content_digest([Path(real), *(Path(dicom_root) / f for f in job.pet.files)])  # contours and grid
    if (done := _stored(store, digest)) is not None:
        return done
    try:
        result = rtstruct_labels(Path(real), _grid(job.pet))
    except ValueError as exc:
        reason = str(exc).replace(real, job.shown)
        return Outcome(quarantine=quarantine_row(job.cohort, Rejected(job.shown, reason), job.series, "convert"))
    p = job.pet
    row = {"cohort": job.cohort, "patient": job.patient, "study": job.study, "series": job.series,
           "frame_of_reference": p.frame_of_reference_uid, "modality": "RTSTRUCT", "tracer": "",
           "referenced_series": p.series_uid, "n_rois": len(result.volume.attrs["rois"]),
           "shape_z": p.shape[0], "shape_y": p.shape[1], "shape_x": p.shape[2],
           "spacing_z": p.spacing[0], "spacing_y": p.spacing[1], "spacing_x": p.spacing[2],
           "n_files": 1, "store": job.store, "status": "converted"}
    bad = [quarantine_row(job.cohort, Rejected(job.shown, f"ROI {name!r}: {why.replace(real, job.shown)}", 0),
                          job.series, "mask") for name, why in sorted(result.failed.items())]
    result.volume.attrs.update(manifest_row=row, quarantine_rows=bad, content_hmac_sha256=digest)
    write_volume(result.volume, store, "label")
    return Outcome(manifest=row, extra=bad)


def convert_any(job: Job | MaskJob, dicom_root: Path, out_root: Path, pseudo: Pseudonymiser) -> Outcome:
    """Convert an image series or rasterise an RTSTRUCT, whichever ``job`` is."""
    return (convert_mask if isinstance(job, MaskJob) else convert_job)(job, dicom_root, out_root, pseudo)


def link_ct_tracers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each CT (and object series) the tracer of the PET in its study, so analysts can join by tracer."""
    tracer = {r["study"]: r["tracer"] for r in rows if r.get("modality") == "PT"}
    return [{**r, "tracer": r.get("tracer") or tracer.get(r["study"], "")} for r in rows]


@dataclass(frozen=True)
class ConvertSummary:
    """What a conversion did: counts and where the tables are."""

    n_files: int
    n_converted: int  # stores written by this run
    n_skipped: int  # stores an earlier run made from the same bytes
    n_quarantined_series: int
    n_quarantined_files: int
    manifest: Path
    quarantine: Path

    def describe(self) -> str:
        """One line for logs and the console."""
        return (f"{self.n_files} files: {self.n_converted} series converted, {self.n_skipped} skipped (converted "
                f"before from the same bytes), {self.n_quarantined_series} series and {self.n_quarantined_files} "
                f"files quarantined")


def finish(out_root: Path, outcomes: list[Outcome], object_rows: list[dict], quarantine: list[dict],
           n_files: int) -> ConvertSummary:
    """Write the manifest and quarantine tables and check that every input file is accounted for."""
    rows = link_ct_tracers([o.manifest for o in outcomes if o.manifest] + object_rows)
    bad = quarantine + [o.quarantine for o in outcomes if o.quarantine] + [r for o in outcomes for r in o.extra]
    accounted = sum(r["n_files"] for r in rows) + sum(r["n_files"] for r in bad)
    if accounted != n_files:
        raise RuntimeError(f"{n_files} input files but {accounted} accounted for: a bug, please report it")
    out_root = Path(out_root)
    return ConvertSummary(n_files, sum(1 for o in outcomes if o.manifest and not o.reused),
                          sum(1 for o in outcomes if o.reused), sum(1 for r in bad if r["stage"] != "index"),
                          sum(r["n_files"] for r in bad),
                          write_manifest(rows, out_root / MANIFEST), write_quarantine(bad, out_root / QUARANTINE))


def plan_from_index(indexed: list[tuple[list[Instance], list[Rejected]]], root: Path
                    ) -> tuple[list[Job | MaskJob], list[dict[str, Any]], list[dict[str, Any]]]:
    """Jobs, object-series rows and every quarantine row (unreadable files included) from the index batches."""
    instances = [i for good, _ in indexed for i in good]
    rejected = shown_rejections([r for _, bad in indexed for r in bad], instances)
    jobs, object_rows, bad_series = plan_jobs(instances, root)
    return jobs, object_rows, [quarantine_row(cohort_of(r.path, root), r) for r in rejected] + bad_series


def convert_tree(dicom_root: Path, out_root: Path, pseudo: Pseudonymiser,
                 executor: Executor | None = None) -> ConvertSummary:
    """Convert every series below ``dicom_root`` into ``out_root``: stores, manifest, quarantine."""
    root = Path(dicom_root)
    files = list_files(root)
    indexed = parallel_starmap(index_files, [(b, root, pseudo) for b in batches(files)], executor)
    jobs, object_rows, quarantine = plan_from_index(indexed, root)
    outcomes = parallel_starmap(convert_any, [(j, root, Path(out_root), pseudo) for j in jobs], executor)
    return finish(out_root, outcomes, object_rows, quarantine, len(files))
