"""Thin Prefect tasks over the library. Inputs and outputs are paths and small records, never arrays."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from sonimage.dicom.index import Instance, Rejected, index_files
from sonimage.dicom.pseudonym import Pseudonymiser
from sonimage.volumes.convert import ConvertSummary, Job, MaskJob, Outcome, convert_any, finish

RETRIES = {"retries": 1, "retry_delay_seconds": 2}


@task(name="index-dicom", **RETRIES)
def index_batch(paths: list[str], dicom_root: str, pseudo: Pseudonymiser) -> tuple[list[Instance], list[Rejected]]:
    """Header records (pseudonymised) of one batch of files."""
    return index_files([Path(p) for p in paths], Path(dicom_root), pseudo)


@task(name="convert-series", task_run_name="convert-{job.store}", **RETRIES)
def convert_series(job: Job | MaskJob, dicom_root: str, out: str) -> Outcome:
    """One series (or RTSTRUCT) to its Zarr store; returns its manifest or quarantine row."""
    return convert_any(job, Path(dicom_root), Path(out))


@task(name="write-tables")
def write_tables(out: str, outcomes: list[Outcome], object_rows: list[dict], quarantine: list[dict],
                 n_files: int) -> ConvertSummary:
    """Manifest and quarantine tables, with the count of every input file checked."""
    return finish(Path(out), outcomes, object_rows, quarantine, n_files)
