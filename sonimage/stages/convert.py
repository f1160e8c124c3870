"""The conversion stage: a DICOM tree → one Zarr store per PET or CT series and per usable RTSTRUCT, the manifest
and the quarantine (:mod:`sonimage.dicom.conversion` holds the steps).

plan → one item per patient → gather:

- **plan** (this process): list the files, index their headers in batches (:func:`index_batch`, an item each),
  pseudonymise the records and plan the jobs here, where alone the site key and the linking table are
  (:func:`sonimage.dicom.conversion.plan_from_index`), and group the jobs by patient (:func:`patient_items`);
- **item** (:func:`convert_patient`): one patient's image series, then the RTSTRUCTs drawn on its PET series that
  converted. One item per patient, as for the lesion stage: per series, Prefect's cost per task run (~0.3 CPU s)
  exceeded the work (~0.1 s per tiny series; ``bench/prefect_scale.py``), and the flow's executor groups
  consecutive patients into one task on top (``flows.tasks.PrefectExecutor``);
- **gather** (:func:`finish`): the manifest and quarantine tables, every input file
  accounted for.

Items get file paths, pseudonymised plans and per-store digest keys: never the site key or the linking table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sonimage.dicom.index import Instance, Rejected, index_files
from sonimage.dicom.pseudonym import Pseudonymiser
from sonimage.parallel import Executor, parallel_starmap
from sonimage.tables.manifest import write_manifest, write_quarantine
from sonimage.dicom.conversion import (ConversionPlan, ConvertSummary, Job, MaskJob, Outcome, batches, convert_job,
                                      convert_mask, input_files, link_ct_tracers, masks_on_converted,
                                      plan_from_index)

MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.parquet"


@dataclass(frozen=True)
class PatientConversion:
    """One patient's conversion: its image series, and the RTSTRUCTs drawn on them (pseudonyms only)."""

    cohort: str
    patient: str
    images: tuple[Job, ...]
    masks: tuple[MaskJob, ...] = ()

    @property
    def label(self) -> str:
        """Cohort, patient pseudonym and what is converted (e.g. ``sonia-S001-2CT+2PT+RTSTRUCT``): for task names."""
        counts = Counter([j.plan.modality for j in self.images] + ["RTSTRUCT"] * len(self.masks))
        what = "+".join(f"{n if n > 1 else ''}{m}" for m, n in sorted(counts.items()))
        return f"{self.cohort}-{self.patient}-{what}"


def index_batch(paths: list[str], dicom_root: Path) -> tuple[list[Instance], list[Rejected]]:
    """Header records (as read, for the planning process to pseudonymise) of one batch of files; no pseudonymiser
    parameter, so the key cannot travel with the item."""
    return index_files(paths, dicom_root)


def patient_items(plan: ConversionPlan) -> list[PatientConversion]:
    """The plan's jobs grouped by patient, patients in order of cohort and pseudonym (so that a group of
    consecutive patients is named by its first and last); each RTSTRUCT goes with the PET it was drawn on."""
    images: dict[tuple[str, str], list[Job]] = {}
    owner = {}
    for job in plan.images:
        key = (job.cohort, job.plan.patient_id)
        images.setdefault(key, []).append(job)
        owner[job.plan.series_uid] = key
    masks: dict[tuple[str, str], list[MaskJob]] = {}
    for m in plan.masks:
        masks.setdefault(owner[m.pet.series_uid], []).append(m)
    return [PatientConversion(c, p, tuple(jobs), tuple(masks.get((c, p), ())))
            for (c, p), jobs in sorted(images.items())]


def convert_patient(item: PatientConversion, dicom_root: Path, out: Path) -> list[Outcome]:
    """Convert one patient's image series, then rasterise the RTSTRUCTs whose PET converted (the others are
    quarantined, naming why)."""
    outcomes = [convert_job(job, Path(dicom_root), Path(out)) for job in item.images]
    masks, lost = masks_on_converted(list(item.masks), outcomes)
    outcomes += [convert_mask(m, Path(dicom_root), Path(out)) for m in masks]
    return outcomes + [Outcome(quarantine=row) for row in lost]


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


def run(dicom_root: Path, out_root: Path, pseudo: Pseudonymiser, executor: Executor | None = None) -> ConvertSummary:
    """Convert every series below ``dicom_root`` into ``out_root``: stores, manifest, quarantine (see the module
    docstring); ``executor`` runs the index batches and the patients. The plan's records live only until its
    items are submitted (:func:`sonimage.parallel.parallel_starmap` lets them go): the flow process holds no
    study-sized plan while the stage runs."""
    root, out = Path(dicom_root), Path(out_root)
    pseudo.check_cohorts()
    unreadable: list[Rejected] = []
    files = input_files(root, unreadable)
    n_files = len(files)
    indexed = parallel_starmap(index_batch, ((b, root) for b in batches(files)), executor)
    del files
    indexed.append(([], unreadable))
    plan = plan_from_index(indexed, pseudo)
    object_rows, quarantine, items = plan.object_rows, plan.quarantine, _convert_args(plan, root, out)
    del plan
    done = parallel_starmap(convert_patient, items, executor)
    return finish(out, [o for outcomes in done for o in outcomes], object_rows, quarantine, n_files)


def _convert_args(plan: ConversionPlan, root: Path, out: Path) -> Iterator[tuple[PatientConversion, Path, Path]]:
    """The argument tuples of :func:`convert_patient`, one per patient, holding the plan only until drawn."""
    items = patient_items(plan)
    del plan
    items.reverse()
    while items:
        yield items.pop(), root, out
