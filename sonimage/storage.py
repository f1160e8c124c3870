"""Inputs and outputs by fsspec URL: a local path, ``file://`` or ``s3://`` (any S3-compatible store).

DICOM and Zarr are read and written on a local working copy (fast random access, atomic renames); a remote drop
folder is mirrored into it before a run and the outputs are mirrored back after it. Mirroring copies only files that
are missing or differ (size, then MD5 against the object's ETag), so a nightly ingest moves only what is new.
Credentials and the endpoint come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``FSSPEC_S3_ENDPOINT_URL`` for a non-AWS store) or from ``storage_options``; never from the repository.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from sonimage.io import atomic_path


@dataclass(frozen=True)
class Location:
    """A filesystem and a root path on it."""

    fs: fsspec.AbstractFileSystem
    root: str

    @property
    def is_local(self) -> bool:
        """True for a path on this machine's filesystem."""
        return isinstance(self.fs, LocalFileSystem)


def location(url: str | Path, storage_options: dict[str, Any] | None = None) -> Location:
    """The filesystem and root of ``url`` (a plain path is local)."""
    fs, root = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return Location(fs, root.rstrip("/"))


def _md5(loc: Location, path: str) -> str:
    if loc.is_local:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return str(loc.fs.info(path).get("ETag", "")).strip('"')  # multipart uploads carry "-N": never equal


def _files(loc: Location) -> dict[str, int]:
    if not loc.fs.exists(loc.root):
        return {}
    found = loc.fs.find(loc.root, detail=True)
    return {os.path.relpath(p, loc.root): int(info["size"]) for p, info in found.items() if info["type"] == "file"}


def mirror(src: str | Path, dst: str | Path, storage_options: dict[str, Any] | None = None,
           exclude: tuple[str, ...] = ()) -> list[str]:
    """Copy every file below ``src`` that is missing or different below ``dst``; returns the copied relative paths.

    Files whose relative path starts with one of ``exclude`` are left out. Nothing is deleted at ``dst``.
    """
    a, b = location(src, storage_options), location(dst, storage_options)
    there = _files(b)
    copied = []
    for rel, size in sorted(_files(a).items()):
        if rel.startswith(exclude) or any(part.endswith(".tmp") for part in rel.split("/")):
            continue
        source, target = f"{a.root}/{rel}", f"{b.root}/{rel}"
        if there.get(rel) == size and _md5(a, source) == _md5(b, target):
            continue
        if b.is_local:
            with atomic_path(Path(target)) as tmp:
                a.fs.get_file(source, str(tmp))
        elif a.is_local:
            b.fs.put_file(source, target)
        else:
            with a.fs.open(source, "rb") as fh:
                b.fs.pipe_file(target, fh.read())
        copied.append(rel)
    return copied
