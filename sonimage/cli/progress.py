"""Progress a person sees: one bar per kind of task the library fans out, the Dask dashboard link at start.

Every stage fans out through :func:`sonimage.parallel.parallel_starmap` with ``executor.submit``, so wrapping the
executor (a Dask client, or None for in-process) is enough to follow synthesis, conversion and feature extraction
without the library knowing about bars.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sonimage.parallel import Executor

LABELS = {"index_batch": "index DICOM headers", "convert_patient": "convert (per patient)", "generate_patient":
          "synthesise patients", "extract_patient": "lesion stage (per patient)"}


class ProgressExecutor:
    """An executor that shows a bar per task function; runs tasks on ``inner`` or, without one, in process."""

    def __init__(self, inner: Executor | None, progress: Progress) -> None:
        self.inner, self.progress = inner, progress
        self.bars: dict[str, Any] = {}

    def _bar(self, fn: Callable) -> Any:
        name = getattr(fn, "__name__", "tasks")
        if name not in self.bars:
            self.bars[name] = self.progress.add_task(LABELS.get(name, name.replace("_", " ")), total=0)
        return self.bars[name]

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Submit ``fn(*args)``; its bar grows now and advances when it is done."""
        bar = self._bar(fn)
        self.progress.update(bar, total=self.progress.tasks[bar].total + 1)
        if self.inner is None:
            future: Any = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as exc:  # delivered by result(), as an executor would
                future.set_exception(exc)
        else:
            future = self.inner.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda _: self.progress.advance(bar))
        return future


@contextmanager
def watched(workers: int) -> Iterator[ProgressExecutor]:
    """A :func:`sonimage.cluster.local_executor` of ``workers`` (dashboard link printed) wrapped with bars."""
    from sonimage.cluster import local_executor

    with local_executor(workers) as client:
        if client is not None:
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
        columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress:
            yield ProgressExecutor(client, progress)
