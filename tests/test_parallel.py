"""The fan-out: items grouped into tasks give the results of one task per item, in order; the grouping rule."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sonimage.parallel import groups, parallel_starmap, run_group


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
    assert [len(s[2]) for s in pool.sent] == [3, 4, 3] and all(s[0] is run_group for s in pool.sent)
    with GroupingPool() as pool:
        assert parallel_starmap(divmod, [], pool) == [] and pool.sent == []


def test_group_sizes_follow_the_work_and_the_workers() -> None:
    def sizes(n: int, slots: int, min_size: int) -> tuple[int, int, int]:
        """How many groups, the smallest and the largest."""
        parts = groups(n, slots, min_size)
        assert [i for g in parts for i in g] == list(range(n))  # contiguous, in order, every item once
        return len(parts), min(map(len, parts)), max(map(len, parts))

    assert sizes(5, 2, 16) == (5, 1, 1)  # a small study: one item per task
    assert sizes(20, 2, 16) == (8, 2, 3)  # at least 4 tasks per worker thread
    assert sizes(1000, 2, 16) == (62, 16, 17)  # each task at least min_size items
    assert sizes(1000, 128, 16) == (512, 1, 2)  # many workers: balance wins over size
    assert groups(0, 2, 16) == []
