"""The fan-out: items grouped into tasks give the results of one task per item, in order, each future let go once
read; the grouping rule and its tail; a cluster that has lost every worker fails its tasks instead of waiting."""

from __future__ import annotations

import heapq
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest
from distributed import Client
from distributed.scheduler import NoWorkerError

from sonimage.cluster import local_cluster
from sonimage.parallel import groups, parallel_map, parallel_starmap, run_group


class GroupingPool(ThreadPoolExecutor):
    """A stdlib pool that asks for groups of 3 items and records what it was sent."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.sent: list[tuple] = []

    def groups(self, fn, n: int) -> list[range]:
        return groups(n, 1, 3, per_slot=1)

    def submit(self, fn, *args):
        self.sent.append((fn, *args))
        return super().submit(fn, *args)


def test_groups_give_the_results_of_one_task_per_item_in_order() -> None:
    args = [(i, 10 - i) for i in range(10)]
    with GroupingPool() as pool:
        grouped = parallel_starmap(divmod, args, pool)
    assert grouped == parallel_starmap(divmod, args) == [divmod(a, b) for a, b in args]
    assert [len(s[2]) for s in pool.sent] == [4, 3, 2, 1] and all(s[0] is run_group for s in pool.sent)
    with GroupingPool() as pool:
        assert parallel_starmap(divmod, [], pool) == [] and pool.sent == []


def test_group_sizes_follow_the_work_and_the_workers() -> None:
    def sizes(n: int, slots: int, min_size: int) -> tuple[int, int, int]:
        """How many groups, the smallest and the largest."""
        parts = groups(n, slots, min_size)
        assert [i for g in parts for i in g] == list(range(n))  # contiguous, in order, every item once
        return len(parts), min(map(len, parts)), max(map(len, parts))

    assert sizes(5, 2, 16) == (5, 1, 1)  # a small study: one item per task
    assert sizes(20, 2, 16) == (10, 1, 3)  # at least 4 tasks per worker thread, the last ones smaller
    assert sizes(1000, 2, 16) == (63, 5, 17)  # the bulk at least min_size items, the tail down to a quarter
    assert sizes(1000, 128, 16) == (628, 1, 2)  # many workers: balance wins over size
    assert groups(0, 2, 16) == []


def _finish_times(sizes: list[int], slots: int) -> list[int]:
    """When each slot finishes, the groups taken in order by the first free slot, an item costing 1."""
    free = [0] * slots
    for size in sizes:
        heapq.heappush(free, heapq.heappop(free) + size)
    return sorted(free)


@pytest.mark.parametrize("n, slots, min_size", [(440, 2, 28), (200, 2, 16), (1000, 8, 16), (97, 3, 5)])
def test_the_last_groups_are_smaller_so_that_the_workers_finish_together(n: int, slots: int, min_size: int) -> None:
    sizes = [len(g) for g in groups(n, slots, min_size)]
    assert sizes == sorted(sizes, reverse=True)  # largest first
    finish = _finish_times(sizes, slots)
    assert finish[-1] - finish[0] <= sizes[-slots - 1]  # idle tail: at most one of the last (small) groups
    assert finish[-1] - finish[0] < sizes[0] / 2  # where equal groups could leave a whole group's idle time


class WatchedPool(ThreadPoolExecutor):
    """A stdlib pool whose futures say, when read, how many earlier futures the caller still holds."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.refs: list[weakref.ref] = []
        self.held_when_read: list[int] = []

    def submit(self, fn, *args):
        watched = Watched(super().submit(fn, *args), self, len(self.refs))
        self.refs.append(weakref.ref(watched))
        return watched


class Watched:
    def __init__(self, future, pool: WatchedPool, index: int) -> None:
        self.future, self.pool, self.index = future, pool, index

    def result(self):
        self.pool.held_when_read.append(sum(r() is not None for r in self.pool.refs[:self.index]))
        return self.future.result()


def test_each_future_is_let_go_once_read() -> None:
    """A Dask worker keeps a result while a future of it lives: the fan-out must not hold read futures."""
    with WatchedPool() as pool:
        assert parallel_map(abs, range(-6, 0), pool) == [6, 5, 4, 3, 2, 1]
    assert pool.held_when_read == [0] * 6


@pytest.mark.slow
def test_a_cluster_without_workers_fails_its_tasks_instead_of_waiting() -> None:
    with local_cluster(1, dashboard_address=None, no_workers_timeout="1s") as cluster, Client(cluster) as client:
        assert parallel_map(abs, [-1, -2], client) == [1, 2]
        cluster.scale(0)  # every worker gone, none coming back
        deadline = time.monotonic() + 60
        while client.scheduler_info()["workers"]:
            assert time.monotonic() < deadline, "the worker did not leave within 60 s"
            time.sleep(0.1)
        with pytest.raises(NoWorkerError, match="waiting without any running workers"):
            parallel_map(abs, [-3], client)
