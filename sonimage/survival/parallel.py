"""Fan-out of independent pure tasks over an optional executor (``concurrent.futures`` or a Dask ``Client``)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol


class Executor(Protocol):
    """Anything with ``submit(fn, *args)`` returning a future with ``result()``: both stdlib and Dask qualify."""

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Any: ...


def parallel_map(fn: Callable, items: Iterable, executor: Executor | None = None, *args: Any) -> list:
    """``[fn(item, *args) for item in items]``, on ``executor`` when given (results in order)."""
    items = list(items)
    if executor is None:
        return [fn(item, *args) for item in items]
    futures = [executor.submit(fn, item, *args) for item in items]
    return [f.result() for f in futures]


def chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous pieces of near-equal length."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]
