"""Prefect wiring of the library stages: an executor whose every item is a named, retried Prefect task, and the
analysis as one task. Inputs and outputs are paths and small records, never arrays."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from distributed import Client
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from sonimage.settings import Settings
from sonimage.stages import analyse as analyse_stage
from sonimage.stages.convert import convert_patient, index_batch
from sonimage.stages.extract import extract_patient

RETRIES = {"retries": 1, "retry_delay_seconds": 2}

# Task names of the stages' items; a task run is named "<task>-<item.label>" (cohort, patient pseudonym and what it
# converts), else Prefect's default. Index batches are records as read (original identifiers) and convert items
# carry per-store digest keys: no item's inputs or results are hashed for a cache or persisted.
TASK_NAMES: dict[Callable, str] = {index_batch: "index-dicom", convert_patient: "convert",
                                   extract_patient: "lesions"}


def _labelled(name: str) -> Callable[..., str]:
    def run_name(parameters: dict[str, Any]) -> str:
        return f"{name}-{next(iter(parameters.values())).label}"
    return run_name


class PrefectExecutor:
    """:class:`sonimage.parallel.Executor` for the flows: ``submit(fn, *args)`` runs ``fn`` as a Prefect task on the
    flow's task runner (named by :data:`TASK_NAMES`, retried once), so the stages' recipes
    (:mod:`sonimage.stages`) run unchanged with Prefect's tracking."""

    def __init__(self, names: Mapping[Callable, str] = TASK_NAMES) -> None:
        self.names = dict(names)
        self._tasks: dict[tuple[Callable, bool], Task] = {}

    def submit(self, fn: Callable, *args: Any) -> PrefectFuture:
        labelled = bool(args) and hasattr(args[0], "label")
        if (fn, labelled) not in self._tasks:
            name = self.names.get(fn, fn.__name__.replace("_", "-"))
            self._tasks[fn, labelled] = task(fn, name=name, task_run_name=_labelled(name) if labelled else None,
                                             persist_result=False, cache_policy=NO_CACHE, **RETRIES)
        return self._tasks[fn, labelled].submit(*args)


@task(name="study-analysis")
def analyse(out: str, clinical: str, scheduler: str, settings: Settings) -> dict[str, str]:
    """Objectives 1–5 and the HTML report (:func:`sonimage.stages.analyse.run`); bootstraps fan out over the
    cluster at ``scheduler``."""
    with Client(scheduler) as client:
        return analyse_stage.run(Path(out), Path(clinical), client, settings)
