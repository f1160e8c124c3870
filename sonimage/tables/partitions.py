"""Analyst copies of the study tables, partitioned by cohort (Hive layout) for DuckDB and pyarrow datasets.

``<folder>/cohort=<cohort>/part-0.parquet``: rewriting a table rewrites only the partitions of the cohorts it
holds, each atomically and byte-identically on a rerun; partitions of other cohorts are left as they are. Read with
``duckdb.sql("select * from read_parquet('<folder>/*/*.parquet', hive_partitioning=true)")``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from sonimage.io import write_parquet_atomic


def write_cohort_partitions(table: Path, folder: Path) -> list[Path]:
    """Split the Parquet file ``table`` by its ``cohort`` column into ``folder``; returns the partitions written."""
    data = pq.read_table(table)
    written = []
    for cohort in sorted(set(data.column("cohort").to_pylist())):
        part = data.filter(pc.equal(data["cohort"], cohort)).drop_columns(["cohort"])
        path = write_parquet_atomic(part, Path(folder) / f"cohort={cohort}" / "part-0.parquet")
        written.append(path)
    return written
