"""Parquet tables written atomically, with sonimage's version in the schema metadata."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sonimage import __version__


def write_table(df: pd.DataFrame, path: Path, schema: pa.Schema | None = None,
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``df`` to ``path`` (Parquet) via a temporary sibling and an atomic rename."""
    path = Path(path)
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"sonimage_version": __version__.encode()}
    meta.update({k.encode(): v.encode() for k, v in (metadata or {}).items()})
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError as exc:  # disk full, read-only: say which table; the previous version stays in place
        raise OSError(exc.errno, f"cannot write table {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
