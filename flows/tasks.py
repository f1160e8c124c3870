"""Prefect wiring of the library stages: an executor that runs the stages' items as named, retried Prefect tasks,
several patients to a task where Prefect's per-task cost would outweigh the work, and the analysis as one task.
Inputs and outputs are paths and small records, never arrays."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from distributed import Client
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext, get_run_context
from prefect.futures import PrefectFuture

from sonimage.parallel import groups, run_group
from sonimage.settings import Settings
from sonimage.stages.convert import convert_patient, index_batch
from sonimage.stages.extract import extract_patient

RETRIES = {"retries": 1, "retry_delay_seconds": 2}

# Task names of the stages' items. A task runs a group of consecutive items (sonimage.parallel.run_group) and its run
# is named "<task>-<cohort>-<first>…<last> (<k> patients)", or "<task>-<item.label>" for a single patient (cohort,
# patient pseudonym and, for conversion, what it converts); index batches by the group's number and size,
# "<task>-<i>/<groups> (<k> batches)". Index batches are
# records as read (original identifiers) and convert items carry per-store digest keys: no item's inputs or
# results are hashed for a cache or persisted, and names carry pseudonyms only.
TASK_NAMES: dict[Callable, str] = {index_batch: "index-dicom", convert_patient: "convert",
                                   extract_patient: "lesions"}

# How many items a task carries. Prefect on Dask costs ~0.35 CPU s per task run (flow process + worker ~0.26,
# server ~0.09; bench/prefect_scale.py, 3 December 2026), whatever the task does. A group carries at least
# WORK_PER_TASK times that (so task runs add <= 1/20 = 5 % CPU), counted with each item's CPU seconds at the
# smallest size measured (ITEM_CPU_S: tiny synthetic patients, bench/scale.py's task CPU, 3 December 2026; real
# scans cost more, so their groups are larger than needed, never smaller): 88 index batches, 28 patients to
# convert, 16 lesion stages. But a stage gets at least TASKS_PER_SLOT tasks per worker thread, and a study of few
# patients runs one patient per task. The last groups of a stage are smaller (factoring, sonimage.parallel.groups:
# down to a quarter of the bulk size), so that the workers finish the stage together.
TASK_RUN_CPU_S = 0.35
WORK_PER_TASK = 20
TASKS_PER_SLOT = 4
ITEM_CPU_S: dict[Callable, float] = {index_batch: 0.08, convert_patient: 0.25, extract_patient: 0.45}


def min_group(fn: Callable) -> int:
    """The fewest items of ``fn`` worth a Prefect task run (:data:`WORK_PER_TASK` × its cost); 1 when unknown."""
    return math.ceil(WORK_PER_TASK * TASK_RUN_CPU_S / ITEM_CPU_S[fn]) if fn in ITEM_CPU_S else 1


def worker_slots() -> int:
    """Threads of the flow's Dask workers (1 when the task runner has no Dask client or no worker is up yet)."""
    runner = getattr(get_run_context(), "task_runner", None)
    client = getattr(runner, "client", None)
    return max(1, sum(client.nthreads().values())) if client is not None else 1


def group_name(name: str) -> Callable[[dict[str, Any]], str]:
    """Run names of a group's task: the patients it holds (cohort, first and last pseudonym, how many); items
    without a patient (index batches) by their number (:attr:`Items.heads`)."""
    def run_name(parameters: dict[str, Any]) -> str:
        group = parameters["group"]
        first, last = group.heads
        if first is None:
            return f"{name}-{group.part} ({group.size} batch{'es' if group.size > 1 else ''})"
        if group.size == 1:
            return f"{name}-{first.label}"
        end = last.patient if last.cohort == first.cohort else f"{last.cohort}-{last.patient}"
        return f"{name}-{first.cohort}-{first.patient}…{end} ({group.size} patients)"
    return run_name


class PrefectExecutor:
    """:class:`sonimage.parallel.Executor` for the flows: the stages' recipes (:mod:`sonimage.stages`) run unchanged,
    their items grouped (:meth:`groups`) into Prefect tasks on the flow's task runner, named by :data:`TASK_NAMES`
    and retried once (a rerun reuses what the first attempt finished: stores and lesion results are keyed by
    their inputs' digests)."""

    def __init__(self, names: Mapping[Callable, str] = TASK_NAMES, slots: int | None = None,
                 min_size: Callable[[Callable], int] = min_group, per_slot: int = TASKS_PER_SLOT) -> None:
        self.names, self.slots, self.min_size, self.per_slot = dict(names), slots, min_size, per_slot
        self._tasks: dict[Callable, Task] = {}
        self._parts: dict[Callable, list[int]] = {}  # per item function: groups submitted, groups planned

    def groups(self, fn: Callable, n: int) -> list[range]:
        """``n`` items of ``fn`` in groups (:func:`sonimage.parallel.groups`) of at least ``min_size(fn)`` items
        (:func:`min_group`), yet ``per_slot`` groups per worker thread (``slots``: the flow's Dask workers'), the
        last ones smaller; their number is kept to number the tasks."""
        parts = groups(n, self.slots or worker_slots(), self.min_size(fn), self.per_slot)
        self._parts[fn] = [0, len(parts)]
        return parts

    def submit(self, fn: Callable, *args: Any) -> PrefectFuture:
        """``fn(*args)`` as a Prefect task; a group (``run_group, item_fn, arg_tuples``) named by its items."""
        inner, arg_tuples = (args[0], args[1]) if fn is run_group else (fn, [args])
        if inner not in self._tasks:
            name = self.names.get(inner, inner.__name__.replace("_", "-"))
            self._tasks[inner] = task(_as_group(inner), name=name, task_run_name=group_name(name),
                                      persist_result=False, cache_policy=NO_CACHE, **RETRIES)
        count = self._parts.setdefault(inner, [0, 0])
        count[0] += 1
        future = self._tasks[inner].submit(Items(arg_tuples, f"{count[0]}/{max(count)}"))
        return future if fn is run_group else _First(future)


class ItemHead(NamedTuple):
    """What a run name shows of an item: its cohort, patient pseudonym and label."""

    cohort: str
    patient: str
    label: str


class Items:
    """A group's items as one opaque parameter, each item pickled on its own and unpickled only when its turn
    comes (:meth:`__iter__`).

    Opaque: the items hold no futures, and Prefect would otherwise walk every object of every patient's plan
    (~120,000 for 25 patients' conversion, 0.5 CPU s), in the flow process and again on the worker, looking for some
    (``prefect.utilities.annotations.quote`` does not survive prefect-dask's transport). One item at a time: a
    conversion group of 30 patients unpickled at once put ~20,000 header records in the worker's small-object
    arenas together, and the few objects that outlived the group kept those arenas, so a worker's memory grew with
    the group size, and so with the study. ``part``: the group's number among its stage's groups ("3/13");
    ``heads``: the first and last item's names (None for items without a patient, e.g. index batches)."""

    __slots__ = ("packed", "part", "heads")

    def __init__(self, arg_tuples: list[tuple], part: str = "1/1") -> None:
        self.packed = [pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL) for a in arg_tuples]
        self.part = part
        ends = (arg_tuples[0][0], arg_tuples[-1][0])
        self.heads = tuple(ItemHead(i.cohort, i.patient, i.label) if hasattr(i, "patient") else None for i in ends)

    @property
    def size(self) -> int:
        return len(self.packed)

    def __iter__(self) -> Iterator[tuple]:
        for packed in self.packed:
            yield pickle.loads(packed)


def _as_group(fn: Callable) -> Callable[[Items], list]:
    """``run_group`` bound to ``fn``, named after it (Prefect's task key, and so the UI, tell the stages apart)."""
    def group(group: Items) -> list:
        return run_group(fn, group)
    group.__name__ = group.__qualname__ = fn.__name__
    return group


class _First:
    """The one result of a single item's group."""

    def __init__(self, future: PrefectFuture) -> None:
        self.future = future

    def result(self) -> Any:
        return self.future.result()[0]


@task(name="study-analysis")
def analyse(out: str, clinical: str, scheduler: str, settings: Settings) -> dict[str, str]:
    """Objectives 1–5 and the HTML report (:func:`sonimage.stages.analyse.run`); bootstraps fan out over the
    cluster at ``scheduler``."""
    from sonimage.stages import analyse as analyse_stage  # here: the image stages' workers need none of the
    # survival and report stack (lifelines, scikit-survival, matplotlib: ~43 MB resident per worker)

    with Client(scheduler) as client:
        return analyse_stage.run(Path(out), Path(clinical), client, settings)
