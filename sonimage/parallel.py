"""Fan-out of independent pure tasks over an optional executor (``concurrent.futures`` or a Dask ``Client``).

Every stage that fans out (conversion, feature extraction, bootstraps, the synthetic generator) goes through
here, so running without an executor (in-process, in order) and with one give the same results in the same order.
An executor may also group items into tasks (:meth:`Executor.groups`, e.g. ``flows.tasks.PrefectExecutor``,
whose per-task cost is large): each group is one task, :func:`run_group`, and the results come back flattened, in
the items' order, as if every item had been a task of its own.

Each future is dropped as soon as its result is read: a Dask worker keeps a task's result for as long as the
client holds a future of it, so holding every future until the stage ended made each worker keep every result it
computed, and its memory grow with the study (~2 MB per tiny patient in the lesion stage; ``bench/scale.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, Protocol


class Executor(Protocol):
    """Anything with ``submit(fn, *args)`` returning a future with ``result()``: both stdlib and Dask qualify.

    Optionally ``groups(fn, n) -> list[range]``: contiguous groups of the ``n`` items of ``fn`` to run as one task
    each (absent: one task per item)."""

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Any: ...


def run_group(fn: Callable, arg_tuples: Iterable[tuple]) -> list:
    """``[fn(*args) for args in arg_tuples]``: several items of a stage as one task (``arg_tuples`` may produce
    them one at a time, e.g. ``flows.tasks.Items``); then the heap's free pages go
    back to the system (:func:`trim_heap`), so that what one group freed does not stay counted against the
    process while it waits for the next."""
    try:
        return [fn(*a) for a in arg_tuples]
    finally:
        trim_heap()


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    lib = ctypes.CDLL(name) if name else None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: the free pages of every malloc arena back to the system (nothing elsewhere).

    A Dask worker runs tasks in a thread with its own arena, which glibc trims only from the top: the pages freed
    by a group's series and volumes stayed resident (a worker at ~1 GB where the same work in one process stays at
    ~450 MB). Called once per group, not per free: Dask's ``MALLOC_TRIM_THRESHOLD_`` trims on every free and made
    conversion 1.7x slower (:mod:`sonimage.cluster`)."""
    if (lib := _libc()) is not None:
        lib.malloc_trim(0)


def peak_rss_mb(reset: bool = False) -> float:
    """This process's peak resident memory so far (``VmHWM``, MB; 0 where /proc is absent); ``reset`` starts a new
    peak from the current size (``/proc/self/clear_refs``), so that each stage's own peak can be read."""
    try:
        with open("/proc/self/status") as fh:
            peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
        if reset:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
    except (OSError, StopIteration):
        return 0.0
    return peak


def parallel_starmap(fn: Callable, arg_tuples: Iterable[tuple], executor: Executor | None = None) -> list:
    """``[fn(*args) for args in arg_tuples]``, on ``executor`` when given (results in order), in the groups the
    executor asks for (:meth:`Executor.groups`), else one task per item.

    On an executor the items are let go once submitted (the cluster holds them, pickled, until their task ran):
    a caller that passes an iterator (e.g. a generator over its plan) holds no second copy while the stage runs."""
    arg_tuples = list(arg_tuples)
    if executor is None:
        return [fn(*a) for a in arg_tuples]
    grouping = getattr(executor, "groups", None)
    if grouping is None:
        futures = [executor.submit(fn, *a) for a in arg_tuples]
        del arg_tuples
        return _read_once(futures)
    futures = [executor.submit(run_group, fn, arg_tuples[g.start:g.stop]) for g in grouping(fn, len(arg_tuples))
               if len(g)]
    del arg_tuples
    return [r for results in _read_once(futures) for r in results]


def _read_once(futures: list) -> list:
    """The futures' results in order, each future let go (``futures`` emptied) as soon as its result is read."""
    futures.reverse()
    results = []
    while futures:
        results.append(futures.pop().result())
    return results


def parallel_map(fn: Callable, items: Iterable, executor: Executor | None = None, *args: Any) -> list:
    """``[fn(item, *args) for item in items]``, on ``executor`` when given (results in order)."""
    return parallel_starmap(fn, [(item, *args) for item in items], executor)


def chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous pieces of near-equal length."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]


def groups(n: int, slots: int, min_size: int, per_slot: int = 4, tail: int = 4) -> list[range]:
    """``range(n)`` in contiguous groups, largest first, for ``slots`` workers (threads) taking them in order.

    The bulk size is the largest that gives every group ``min_size`` items or more, yet ``per_slot`` groups per
    slot (balance wins over size at small ``n``: one item per group when ``n <= per_slot * slots``). Towards the
    end the groups shrink by factoring (Hummel, Schonberg & Flynn, "Factoring: a method for scheduling parallel
    loops", Commun. ACM 35(8), 1992): each group takes at most 1 / (2 ``slots``) of the items left, but no fewer
    than 1 / ``tail`` of the bulk size, so that the slots run out of work together, within a small group of each
    other, instead of one slot idling for up to a whole bulk group while another finishes its last."""
    if not n:
        return []
    slots = max(slots, 1)
    bulk = n / max(n // max(min_size, 1), per_slot * slots)
    largest, smallest = math.ceil(bulk - 1e-9), max(1, math.ceil(bulk / tail - 1e-9))
    out, start = [], 0
    while start < n:
        size = min(largest, max(smallest, math.ceil((n - start) / (2 * slots))), n - start)
        out.append(range(start, start + size))
        start += size
    return out
