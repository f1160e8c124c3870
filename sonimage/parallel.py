"""Fan-out of independent pure tasks over an optional executor (``concurrent.futures`` or a Dask ``Client``).

Every stage that fans out (conversion, feature extraction, bootstraps, the synthetic generator) goes through
here, so running without an executor (in-process, in order) and with one give the same results in the same order.
An executor may also group items into tasks (:meth:`Executor.groups`, e.g. ``flows.tasks.PrefectExecutor``,
whose per-task cost is large): each group is one task, :func:`run_group`, and the results come back flattened, in
the items' order, as if every item had been a task of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol


class Executor(Protocol):
    """Anything with ``submit(fn, *args)`` returning a future with ``result()``: both stdlib and Dask qualify.

    Optionally ``groups(fn, n) -> list[range]``: contiguous groups of the ``n`` items of ``fn`` to run as one task
    each (absent: one task per item)."""

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Any: ...


def run_group(fn: Callable, arg_tuples: list[tuple]) -> list:
    """``[fn(*args) for args in arg_tuples]``: several items of a stage as one task."""
    return [fn(*a) for a in arg_tuples]


def parallel_starmap(fn: Callable, arg_tuples: Iterable[tuple], executor: Executor | None = None) -> list:
    """``[fn(*args) for args in arg_tuples]``, on ``executor`` when given (results in order), in the groups the
    executor asks for (:meth:`Executor.groups`), else one task per item."""
    arg_tuples = list(arg_tuples)
    if executor is None:
        return [fn(*a) for a in arg_tuples]
    grouping = getattr(executor, "groups", None)
    if grouping is None:
        return [f.result() for f in [executor.submit(fn, *a) for a in arg_tuples]]
    futures = [executor.submit(run_group, fn, arg_tuples[g.start:g.stop]) for g in grouping(fn, len(arg_tuples))
               if len(g)]
    return [r for f in futures for r in f.result()]


def parallel_map(fn: Callable, items: Iterable, executor: Executor | None = None, *args: Any) -> list:
    """``[fn(item, *args) for item in items]``, on ``executor`` when given (results in order)."""
    return parallel_starmap(fn, [(item, *args) for item in items], executor)


def chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous pieces of near-equal length."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]


def groups(n: int, slots: int, min_size: int, per_slot: int = 4) -> list[range]:
    """``range(n)`` in contiguous groups of near-equal size: as many as keep every group at ``min_size`` items or
    more, but at least ``per_slot`` groups per worker slot (``slots``) while there are items (balance wins over
    size at small ``n``: one item per group when ``n <= per_slot * slots``)."""
    parts = max(n // max(min_size, 1), per_slot * max(slots, 1))
    return chunks(n, parts) if n else []
