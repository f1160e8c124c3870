"""Atomic writes, once: every output appears whole or not at all, so a rerun after a crash resumes cleanly.

Each writer writes to a hidden sibling whose name is unique per host, process and call (host + pid + uuid), so
parallel writers of the same output never share a temporary file, then renames it into place (``os.replace``; a
directory such as a Zarr store replaces any earlier one).

A writer killed mid-write (a worker lost, a flow process killed) leaves its temporary behind; the next write
into the same folder (by a rerun, or by a process that saw that writer alive) removes the temporaries of writers
that are dead: those named for this host whose pid no longer runs. A live writer's temporary (its pid runs) and
another host's (its liveness cannot be seen from here) are left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _host() -> str:
    """This host's name as it may appear in a file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"


def temporary_sibling(path: Path) -> Path:
    """A hidden name beside ``path``, unique to this host, process and call."""
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.tmp")
_CLEAN: set[str] = set()  # folders this process swept that held no temporary of another writer


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries left in ``path``'s folder by dead writers of this host (see the module docstring);
    returns what was removed.

    A folder is listed once per process while it holds no other writer's temporary, so writing many files into
    one folder stays linear; a folder that held a live writer's (or another host's) temporary is listed again on
    every write, so the temporary of a writer that dies meanwhile goes at the next write.
    """
    folder = path.parent
    if str(folder) in _CLEAN:
        return []
    stale, others, host = [], 0, _host()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                m = _TEMPORARY.fullmatch(entry.name) if entry.name.endswith(".tmp") else None
                if m and m["host"] == host and not _alive(int(m["pid"])):
                    stale.append(folder / entry.name)
                elif m:
                    others += 1
    except FileNotFoundError:
        return []
    for tmp in stale:
        _remove(tmp)
    if not others:
        _CLEAN.add(str(folder))
    return stale


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a directory); on success it replaces ``path``, else it is removed.

    A write that fails for lack of room or rights (disk full, read-only, file-size limit) raises an ``OSError``
    naming ``path`` itself, not the temporary; the previous ``path``, if any, stays as it was.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        _remove(tmp)


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


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (0700), created when missing: secrets and site-private files."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private_atomic(path: Path, data: bytes) -> Path:
    """``data`` to ``path`` atomically, readable by its owner only (0600, in a 0700 folder): keys, linking tables,
    certificates. The temporary is created 0600 too, so the secret is never readable by others, not even briefly."""
    private_dir(Path(path).parent)
    with atomic_path(path) as tmp:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
            fh.write(data)
    return Path(path)
