"""Fan-out of independent pure tasks over an optional executor (``concurrent.futures`` or a Dask ``Client``).

Every stage that fans out (conversion, feature extraction, bootstraps, the synthetic generator) goes through
here, so running without an executor (in-process, in order) and with one give the same results in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol


class Executor(Protocol):
    """Anything with ``submit(fn, *args)`` returning a future with ``result()``: both stdlib and Dask qualify."""

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Any: ...


def parallel_starmap(fn: Callable, arg_tuples: Iterable[tuple], executor: Executor | None = None) -> list:
    """``[fn(*args) for args in arg_tuples]``, on ``executor`` when given (results in order)."""
    arg_tuples = list(arg_tuples)
    if executor is None:
        return [fn(*a) for a in arg_tuples]
    futures = [executor.submit(fn, *a) for a in arg_tuples]
    return [f.result() for f in futures]


def parallel_map(fn: Callable, items: Iterable, executor: Executor | None = None, *args: Any) -> list:
    """``[fn(item, *args) for item in items]``, on ``executor`` when given (results in order)."""
    return parallel_starmap(fn, [(item, *args) for item in items], executor)


def chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous pieces of near-equal length."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]
