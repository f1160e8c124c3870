"""The weekly refit (a scheduled deployment): the survival models refitted on the current feature tables and
validated externally; it reads tables only (the nightly ingest, :mod:`flows.ingest`, makes them)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.context import get_run_context

from flows.runners import default_runner
from flows.tasks import analyse
from sonimage.settings import Settings


@flow(name="sonimage-refit", log_prints=True, task_runner=default_runner())
def refit_flow(out: str, clinical: str, settings: str | None = None) -> dict[str, str]:
    """Refit the survival models on the current feature tables of ``out`` (local) and validate them externally
    (``settings``: JSON as for ingest; its study part names the development cohort)."""
    scheduler = get_run_context().task_runner.client.scheduler.address
    return analyse(str(Path(out).resolve()), str(Path(clinical).resolve()), scheduler, Settings.from_json(settings))
