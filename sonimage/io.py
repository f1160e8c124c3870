"""Atomic writes, once: every output appears whole or not at all, so a rerun after a crash resumes cleanly.

Each writer writes to a hidden sibling whose name is unique per process and call (pid + uuid), so parallel writers
of the same output never share a temporary file, then renames it into place (``os.replace``; a directory such as
a Zarr store replaces any earlier one).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def temporary_sibling(path: Path) -> Path:
    """A hidden name beside ``path``, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a directory); on success it replaces ``path``, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """JSON for NumPy scalars and arrays (``json.dumps(..., default=json_default)``)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # np.generic and np.ndarray
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def json_bytes(obj: Any, indent: int | None = 1, sort_keys: bool = False) -> bytes:
    """``obj`` as UTF-8 JSON, NumPy values included."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, default=json_default).encode("utf-8")


def write_json_atomic(obj: Any, path: Path, indent: int | None = 1, sort_keys: bool = False) -> Path:
    """``obj`` as JSON to ``path`` atomically."""
    return write_bytes_atomic(path, json_bytes(obj, indent, sort_keys))


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """An Arrow table to ``path`` (Parquet) atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def write_directory_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` fills a temporary directory (e.g. a Zarr store) that then replaces ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)
