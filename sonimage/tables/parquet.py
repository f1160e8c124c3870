"""Parquet tables written atomically, with sonimage's version in the schema metadata."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from sonimage import __version__
from sonimage.io import write_parquet_atomic


def write_table(df: pd.DataFrame, path: Path, schema: pa.Schema | None = None,
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``df`` to ``path`` (Parquet) via a temporary sibling and an atomic rename."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"sonimage_version": __version__.encode()}
    meta.update({k.encode(): v.encode() for k, v in (metadata or {}).items()})
    table = table.replace_schema_metadata(meta)
    return write_parquet_atomic(table, Path(path))
