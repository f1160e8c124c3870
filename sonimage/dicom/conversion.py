"""Convert a DICOM tree: index headers, group and validate series, write one Zarr store per PET or CT series.

Every file ends in exactly one place: a converted series or RTSTRUCT (counted in its manifest row's ``n_files``),
an indexed object series (SEG), or the quarantine with a reason. Functions here are pure and picklable: the stage
(:mod:`sonimage.stages.convert`) runs them, on an executor where they read headers and convert; pseudonymisation and
planning stay in the calling process, which alone holds the site key and the linking table
(:mod:`sonimage.dicom.pseudonym`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from sonimage.dicom.index import Instance, Rejected, file_paths, pseudonymise, relative
from sonimage.dicom.petheader import header_from_datasets
from sonimage.dicom.pseudonym import Pseudonymiser, content_digest, contents_digest
from sonimage.dicom.reader import load_plan
from sonimage.dicom.rtstruct import rtstruct_labels
from sonimage.dicom.series import ObjectSeries, SeriesPlan, group_series
from sonimage.dicom.tracer import tracer_name
from sonimage.volumes.volume import Volume
from sonimage.volumes.store import VARIABLE_BY_QUANTITY, write_volume

INDEX_BATCH = 256
# A series whose files total at most this many bytes is read once for its digest and its pixels; a larger one (a
# 512 x 512 CT of 1,000 slices is 500 MB) is read twice rather than held whole in a worker's memory.
READ_ONCE_MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class Job:
    """One series to convert. Its plan was pseudonymised before it was made, and ``digest_key`` is derived for its
    one store (:meth:`Pseudonymiser.content_key`): neither an original identifier nor the site key travels with it."""

    cohort: str
    plan: SeriesPlan
    store: str
    digest_key: bytes = field(repr=False)


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
    digest_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Outcome:
    """A converted series' manifest row, or its quarantine row."""

    manifest: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None
    extra: list[dict[str, Any]] = field(default_factory=list)  # quarantine rows of a converted series' parts
    reused: bool = False  # the store of an earlier run had the same content digest: nothing was converted


@dataclass(frozen=True)
class ConversionPlan:
    """What a conversion will do: image series first, then the RTSTRUCTs on the PET series that converted; the
    rows of other object series and of everything already quarantined."""

    images: list[Job]
    masks: list[MaskJob]
    object_rows: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]


def quarantine_row(r: Rejected, stage: str = "index", cohort: str = "", patient: str = "", modality: str = "",
                   tracer: str = "") -> dict[str, Any]:
    """A quarantine row for a rejected file or series (pseudonyms only; '' where not known)."""
    return {"cohort": cohort, "patient": patient, "path": r.path, "series": r.series_uid, "modality": modality,
            "tracer": tracer, "n_files": r.n_files, "stage": stage, "reason": r.reason}


def input_files(root: Path, unreadable: list[Rejected] | None = None) -> list[str]:
    """Every file below the DICOM root (path strings, :func:`sonimage.dicom.index.file_paths`); an error naming
    the root when it is missing, not a folder, or empty (nothing is written then, so earlier outputs stay as they
    are). A folder below it that cannot be read goes to ``unreadable`` (path relative to the root, ending in "/",
    so that every component is pseudonymised where it is shown), for the quarantine; without ``unreadable`` it
    is an error."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM root {root} does not exist or is not a folder: nothing converted, "
                                "no output changed")
    folders: list[tuple[str, str]] | None = None if unreadable is None else []
    files = file_paths(root, folders)
    if unreadable is not None:
        unreadable += [Rejected(relative(f, root) + "/", f"folder could not be read ({why}): its files were not "
                                "listed, so they are not counted", 0) for f, why in folders or ()]
    if not files:
        raise ValueError(f"DICOM root {root} holds no files: nothing converted, no output changed")
    return files


def shown_rejections(rejected: list[Rejected], instances: list[Instance], pseudo: Pseudonymiser
                     ) -> list[dict[str, Any]]:
    """Quarantine rows of unreadable files, each shown through the folder of the readable files beside it
    (pseudonymised folder names, that patient and cohort); folders holding no readable file show a keyed hash."""
    first_in: dict[str, Instance] = {}  # each folder's first readable file: its prefixes are those of its files
    for i in instances:
        first_in.setdefault(i.path.rpartition("/")[0], i)
    folders: dict[str, tuple[str, Instance]] = {}
    for i in first_in.values():
        real, shown_parts = i.path.split("/")[:-1], i.shown.split("/")[:-1]
        for k in range(1, len(real) + 1):
            folders.setdefault("/".join(real[:k]), ("/".join(shown_parts[:k]), i))

    def row(r: Rejected) -> dict[str, Any]:
        parts = r.path.split("/")
        for k in range(len(parts) - 1, 0, -1):
            if (hit := folders.get("/".join(parts[:k]))) is not None:
                shown, inst = hit
                hidden = [pseudo.hidden(p) for p in parts[k:-1]]
                return quarantine_row(dataclasses.replace(r, path="/".join([shown, *hidden, parts[-1]])),
                                      cohort=inst.cohort, patient=inst.patient_id)
        return quarantine_row(dataclasses.replace(r, path="/".join([*map(pseudo.hidden, parts[:-1]), parts[-1]])))

    return [row(r) for r in rejected]


def batches(paths: list[str], size: int = INDEX_BATCH) -> list[list[str]]:
    """``paths`` cut into batches for parallel indexing."""
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def _object_row(cohort: str, obj: ObjectSeries) -> dict[str, Any]:
    return {"cohort": cohort, "patient": obj.patient_id, "study": obj.study_uid, "series": obj.series_uid,
            "modality": obj.modality, "n_files": len(obj.files), "store": "", "status": "indexed"}


def _rtstruct_problem(obj: ObjectSeries, plans: dict[str, SeriesPlan], rejected: dict[str, str]) -> str:
    """Why an RTSTRUCT cannot be rasterised ('' when it can): it must be one file drawn on a PET series here."""
    ref = obj.referenced_series
    if len(obj.files) != 1:
        return f"RTSTRUCT series of {len(obj.files)} files (expected one file)"
    if not ref:
        return "RTSTRUCT names no referenced series (lesion contours must be drawn on the FDG PET)"
    if ref in rejected:
        return f"RTSTRUCT drawn on series {ref}, which was quarantined: {rejected[ref]}"
    if ref not in plans:
        return f"RTSTRUCT drawn on series {ref}, which is not in the DICOM tree"
    if plans[ref].modality != "PT":
        return f"RTSTRUCT drawn on a {plans[ref].modality} series (lesion contours must be drawn on the FDG PET)"
    return ""


def plan_jobs(instances: list[Instance], pseudo: Pseudonymiser) -> ConversionPlan:
    """Conversion jobs (image series, and RTSTRUCTs onto the PET they were drawn on), manifest rows of the other
    object series, and quarantine rows of rejected series, copies, RTSTRUCTs that cannot be used and patients
    without a cohort. ``instances`` are pseudonymised, so plans and rows hold pseudonyms only."""
    plans, objects, rejected = group_series(instances)
    first = {i.series_uid: i for i in instances}
    bad = [quarantine_row(r, "series", first[r.series_uid].cohort, first[r.series_uid].patient_id,
                          first[r.series_uid].modality) for r in rejected]
    no_cohort = "the patient is not in the linking table's cohort column and no --cohort was given"
    images = []
    for plan in plans:
        cohort = first[plan.series_uid].cohort
        if not cohort:
            bad.append(quarantine_row(Rejected(plan.slices[0].shown.rsplit("/", 1)[0], no_cohort, len(plan.files),
                                               plan.series_uid), "series", "", plan.patient_id, plan.modality))
            continue
        store = f"volumes/{cohort}/{plan.patient_id}/{plan.series_uid}.zarr"
        images.append(Job(cohort, plan, store, pseudo.content_key(store)))
    converting = {j.plan.series_uid: j.plan for j in images}
    why_rejected = {r.series_uid: r.reason for r in rejected} | {
        p.series_uid: no_cohort for p in plans if p.series_uid not in converting}
    masks, object_rows = [], []
    for o in objects:
        i = first[o.series_uid]
        if o.modality != "RTSTRUCT":
            object_rows.append(_object_row(i.cohort, o))
        elif problem := _rtstruct_problem(o, converting, why_rejected) or ("" if i.cohort else no_cohort):
            bad.append(quarantine_row(Rejected(i.shown, problem, len(o.files), o.series_uid), "series", i.cohort,
                                      o.patient_id, o.modality))
        else:
            store = f"volumes/{i.cohort}/{o.patient_id}/{o.series_uid}.zarr"
            masks.append(MaskJob(i.cohort, o.patient_id, o.study_uid, o.series_uid, o.files[0], i.shown,
                                 converting[o.referenced_series], store, pseudo.content_key(store)))
    return ConversionPlan(images, masks, object_rows, bad)


def masks_on_converted(masks: list[MaskJob], outcomes: list[Outcome]) -> tuple[list[MaskJob], list[dict[str, Any]]]:
    """The RTSTRUCT jobs whose PET converted, and quarantine rows for those whose PET was quarantined on the way."""
    failed = {o.quarantine["series"]: o.quarantine["reason"] for o in outcomes if o.quarantine}
    keep = [m for m in masks if m.pet.series_uid not in failed]
    bad = [quarantine_row(Rejected(m.shown, f"RTSTRUCT drawn on PET series {m.pet.series_uid}, which was "
                                            f"quarantined: {failed[m.pet.series_uid]}", 1, m.series),
                          "convert", m.cohort, m.patient, "RTSTRUCT") for m in masks if m.pet.series_uid in failed]
    return keep, bad


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


def _tracer(path: Path) -> str:
    """The tracer named in a PET file's header ('' when it cannot be read): for the quarantine row of a PET."""
    try:
        return tracer_name(header_from_datasets([pydicom.dcmread(path, stop_before_pixels=True)]).tracer)
    except Exception:  # the header is what failed: the row then names no tracer
        return ""


def convert_job(job: Job, dicom_root: Path, out_root: Path) -> Outcome:
    """Convert one series to its Zarr store; a store an earlier run made from the same file bytes is reused
    (recognised by the job's keyed digest)."""
    store = Path(out_root) / job.store
    paths = [Path(dicom_root) / f for f in job.plan.files]
    contents = None
    if sum(s.size for s in job.plan.slices) <= READ_ONCE_MAX_BYTES:  # read once: digest and pixels
        contents = {f: path.read_bytes() for f, path in zip(job.plan.files, paths)}
        digest = contents_digest(job.digest_key, contents.values())
    else:  # a large series (e.g. a thin-slice CT) is hashed file by file, then its pixels read slice by slice
        digest = content_digest(job.digest_key, paths)
    if (done := _stored(store, digest)) is not None:
        return done
    try:
        volume = load_plan(job.plan, Path(dicom_root), contents)
    except ValueError as exc:  # SeriesError, SuvError: the series goes to quarantine
        p = job.plan
        tracer = _tracer(Path(dicom_root) / p.files[0]) if p.modality == "PT" else ""
        return Outcome(quarantine=quarantine_row(
            Rejected(p.slices[0].shown.rsplit("/", 1)[0], str(exc), len(p.files), p.series_uid), "convert",
            job.cohort, p.patient_id, p.modality, tracer))
    row = _row(job, volume.attrs)
    volume.attrs.update(manifest_row=row, content_hmac_sha256=digest)
    write_volume(volume, store, VARIABLE_BY_QUANTITY[volume.attrs["quantity"]])
    return Outcome(manifest=row)


def _grid(plan: SeriesPlan) -> Volume:
    return Volume(np.zeros(plan.shape, np.uint8), plan.spacing, plan.origin, plan.direction,
                  {"slice_positions_mm": list(plan.slice_positions)})


def convert_mask(job: MaskJob, dicom_root: Path, out_root: Path) -> Outcome:
    """Rasterise every ROI of an RTSTRUCT onto its PET grid as a label store; ROIs that fail are quarantined."""
    store = Path(out_root) / job.store
    real = str(Path(dicom_root) / job.path)
    digest = content_digest(job.digest_key, [Path(real), *(Path(dicom_root) / f for f in job.pet.files)])
    if (done := _stored(store, digest)) is not None:
        return done
    try:
        result = rtstruct_labels(Path(real), _grid(job.pet))
    except ValueError as exc:
        reason = str(exc).replace(real, job.shown)
        return Outcome(quarantine=quarantine_row(Rejected(job.shown, reason, 1, job.series), "convert", job.cohort,
                                                 job.patient, "RTSTRUCT"))
    p = job.pet
    row = {"cohort": job.cohort, "patient": job.patient, "study": job.study, "series": job.series,
           "frame_of_reference": p.frame_of_reference_uid, "modality": "RTSTRUCT", "tracer": "",
           "referenced_series": p.series_uid, "n_rois": len(result.volume.attrs["rois"]),
           "shape_z": p.shape[0], "shape_y": p.shape[1], "shape_x": p.shape[2],
           "spacing_z": p.spacing[0], "spacing_y": p.spacing[1], "spacing_x": p.spacing[2],
           "n_files": 1, "store": job.store, "status": "converted"}
    bad = [quarantine_row(Rejected(job.shown, f"ROI {name!r}: {why.replace(real, job.shown)}", 0, job.series),
                          "mask", job.cohort, job.patient, "RTSTRUCT") for name, why in sorted(result.failed.items())]
    result.volume.attrs.update(manifest_row=row, quarantine_rows=bad, content_hmac_sha256=digest)
    write_volume(result.volume, store, "label")
    return Outcome(manifest=row, extra=bad)


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


def plan_from_index(indexed: list[tuple[list[Instance], list[Rejected]]], pseudo: Pseudonymiser) -> ConversionPlan:
    """Pseudonymise the index batches (records as read, from tasks given no key) here, in the process that holds
    the key, and plan the conversion; unreadable files join the quarantine.

    ``indexed`` is emptied on the way: each batch's records as read are let go once pseudonymised, so that the
    process never holds two copies of the study's records. The cyclic garbage collector is paused meanwhile: the
    records hold no cycles, and its full passes over the ~10 objects per file, triggered by their sheer number,
    cost more than the planning itself."""
    shared = lru_cache(maxsize=4096)(pseudo.uid)  # series, study, frame of reference: one HMAC per series
    folders: dict[tuple[str, str, tuple[int, ...]], str] = {}  # shown folders: one pass per folder
    instances: list[Instance] = []
    unreadable: list[Rejected] = []
    with paused_gc():
        indexed.reverse()
        while indexed:
            good, bad = indexed.pop()
            instances.extend(pseudonymise(i, pseudo, shared, folders) for i in good)
            unreadable.extend(bad)
            del good, bad
        plan = plan_jobs(instances, pseudo)
        rows = shown_rejections(unreadable, instances, pseudo)
    return dataclasses.replace(plan, quarantine=rows + plan.quarantine)


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off for the block (as it was before, after it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
