"""Volumes as chunked Zarr v3 stores holding an xarray Dataset, written atomically, opened lazily.

Layout of a store: one data variable (``suv`` for PET, ``hu`` for CT, ``label`` for lesion masks) with dims
(z, y, x); coordinates ``z``, ``y``, ``x`` in mm along the image axes (``z`` holds the true slice positions, so
bed-junction jitter is kept, not resampled away); geometry (spacing, origin, direction) and provenance in attrs.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.codecs.bytes import Endian
from zarr.core.buffer import default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.group import GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata

from sonimage import __version__
from sonimage.io import write_directory_atomic
from sonimage.volumes.volume import Volume

VARIABLE_BY_QUANTITY = {"SUVbw": "suv", "CT": "hu", "label": "label"}
CHUNK = (32, 64, 64)


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes that survive JSON (zarr v3 attrs are JSON): numpy scalars to Python, None kept."""
    return json.loads(json.dumps(attrs, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def to_dataset(volume: Volume, variable: str) -> xr.Dataset:
    """The volume as an xarray Dataset with physical coordinates and geometry attributes."""
    nz, ny, nx = volume.array.shape
    sz, sy, sx = volume.spacing
    positions = volume.attrs.get("slice_positions_mm")
    z = np.asarray(positions, dtype=np.float64) if positions else np.arange(nz) * sz
    attrs = {k: v for k, v in volume.attrs.items() if k != "slice_positions_mm"}
    attrs.update(spacing=list(volume.spacing), origin=list(volume.origin), direction=list(volume.direction),
                 sonimage_version=__version__)
    axes = np.asarray(volume.direction).reshape(3, 3)
    start = np.asarray(volume.origin) @ axes  # origin projected on the column, row and slice axes
    da = xr.DataArray(volume.array, dims=("z", "y", "x"),
                      coords={"z": z, "y": start[1] + np.arange(ny) * sy, "x": start[0] + np.arange(nx) * sx})
    return xr.Dataset({variable: da}, attrs=_jsonable(attrs))


# zstd level 1 with byte shuffle: half the CPU of level 3 with bit shuffle and as small (bench/README.md)
BLOSC = {"cname": "zstd", "clevel": 1, "shuffle": "shuffle"}
NAN_FILL = "AAAAAAAA+H8="  # xarray's _FillValue attribute of a float NaN fill (base64 of the 8 bytes)


def write_volume(volume: Volume, path: Path, variable: str, chunks: tuple[int, int, int] = CHUNK) -> Path:
    """Write ``volume`` to a Zarr v3 store at ``path`` atomically (a temporary sibling renamed into place).

    The store is the one ``xarray.Dataset.to_zarr`` writes for :func:`to_dataset` (same metadata, same chunk
    bytes; ``tests/volumes/test_store.py`` compares them file by file), but written here as files: the metadata
    documents from zarr's own metadata classes (:func:`_array_metadata`) and every chunk encoded with one codec
    call at zarr's chunk key. zarr 3's asynchronous pipeline cost as much CPU as the compression for the chunks,
    and ~25 ms per store for the group, the three coordinates and the metadata (bench/README.md, conversion)."""
    ds = to_dataset(volume, variable)
    data = np.asarray(volume.array)
    shape = data.shape
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    floating = np.issubdtype(data.dtype, np.floating)

    def write(tmp: Path) -> None:
        tmp.mkdir()
        _write_json(tmp, GroupMetadata(attributes=ds.attrs, zarr_format=3))
        for name in ("x", "y", "z"):  # coordinates as xarray writes them: one float64 chunk, zstd
            values = ds[name].to_numpy().astype("<f8", copy=False)
            meta = _array_metadata(values.shape, values.shape, "<f8", (name,), True, False)
            _write_json(tmp / name, meta)
            _write_chunk(tmp / name, meta, (0,), COORD_CODEC.encode(np.ascontiguousarray(values)))
        meta = _array_metadata(shape, chunks, data.dtype.newbyteorder("<").str, ("z", "y", "x"), floating, True)
        _write_json(tmp / variable, meta)
        _write_chunks(meta, data, tmp / variable)

    return write_directory_atomic(Path(path), write)


COORD_CODEC = numcodecs.Zstd(level=0, checksum=False)  # zarr's default compressor for the coordinates


def _array_metadata(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, dims: tuple[str, ...],
                    floating: bool, blosc: bool) -> ArrayV3Metadata:
    """The metadata zarr's ``create_array`` records for an array of this kind (what xarray passes it), for any
    shape: made once per kind by zarr itself, in memory, then given the shape and chunk shape."""
    return dataclasses.replace(_metadata_template(dtype, dims, floating, blosc), shape=tuple(shape),
                               chunk_grid=RegularChunkGrid(chunk_shape=tuple(chunks)))


@lru_cache(maxsize=64)
def _metadata_template(dtype: str, dims: tuple[str, ...], floating: bool, blosc: bool) -> ArrayV3Metadata:
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    one = (1,) * len(dims)
    array = group.create_array("a", shape=one, dtype=np.dtype(dtype), chunks=one, fill_value=np.nan if floating else 0,
                               dimension_names=list(dims), attributes={"_FillValue": NAN_FILL} if floating else {},
                               **({"compressors": (BloscCodec(**BLOSC),)} if blosc else {}))
    return array.metadata


def _write_json(folder: Path, meta: ArrayV3Metadata | GroupMetadata) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "zarr.json").write_bytes(meta.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes())


def _write_chunk(folder: Path, meta: ArrayV3Metadata, index: tuple[int, ...], data: bytes) -> None:
    target = folder / meta.encode_chunk_key(index)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _write_chunks(meta: ArrayV3Metadata, data: np.ndarray, folder: Path) -> None:
    """Every chunk of ``data`` encoded with the Blosc settings of ``meta`` and written at its chunk key; chunks
    holding only the fill value are left out, as zarr leaves them out (``write_empty_chunks`` false)."""
    codec = numcodecs.Blosc.from_config({**BLOSC, "shuffle": numcodecs.Blosc.SHUFFLE, "blocksize": 0,
                                         "typesize": data.dtype.itemsize})
    little = data.astype(data.dtype.newbyteorder("<"), copy=False)  # the bytes codec: little endian
    fill = meta.fill_value
    step = meta.chunks
    for index in np.ndindex(*(-(-n // c) for n, c in zip(meta.shape, step))):
        box = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, step))
        block = little[box]
        if np.isnan(fill) and np.isnan(block).all() or not np.isnan(fill) and (block == fill).all():
            continue
        if block.shape != step:  # an edge chunk is stored at full size, padded with the fill value
            full = np.full(step, fill, little.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        _write_chunk(folder, meta, index, codec.encode(np.ascontiguousarray(block)))


def open_store(path: Path) -> xr.Dataset:
    """The store as a lazy (dask-backed) xarray Dataset."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"{path} is not a Zarr v3 store (no zarr.json)")
    return xr.open_zarr(path, consolidated=False, zarr_format=3)


def open_variable(path: Path, variable: str | None = None) -> tuple[zarr.Array, dict[str, Any]]:
    """The store's data variable (its only one unless ``variable`` is given) as a zarr array, and the store's
    attributes: for reading boxes without xarray's per-open cost (~12 ms: metadata, indexes, a dask graph; the
    values are the same, as the stores carry no scaling and a NaN fill value)."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"{path} is not a Zarr v3 store (no zarr.json)")
    group = zarr.open_group(path, mode="r", zarr_format=3)
    names = sorted(n for n in group.array_keys() if n not in ("z", "y", "x"))
    name = variable or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise ValueError(f"{path}: choose a variable among {names}")
    return group[name], dict(group.attrs)


def read_volume(path: Path, variable: str | None = None) -> Volume:
    """Load a store (its only data variable unless ``variable`` is given) into memory as a :class:`Volume`.

    The stores :func:`write_volume` writes are read as files, each chunk decoded with one codec call
    (:func:`_read_array`), the mirror of the write; any other layout through zarr."""
    path = Path(path)
    group = _read_json(path)
    if group is None or group.get("node_type") != "group":
        raise FileNotFoundError(f"{path} is not a Zarr v3 store (no zarr.json)")
    names = sorted(p.name for p in path.iterdir() if p.name not in ("z", "y", "x")
                   and (_read_json(p) or {}).get("node_type") == "array")
    name = variable or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise ValueError(f"{path}: choose a variable among {names}")
    attrs = dict(group.get("attributes", {}))
    geometry = {k: tuple(attrs.pop(k)) for k in ("spacing", "origin", "direction")}
    attrs["slice_positions_mm"] = [float(v) for v in _read_array(path / "z")]
    return Volume(array=_read_array(path / name), attrs=attrs, **geometry)


def _read_json(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "zarr.json").read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as exc:  # a truncated or garbled metadata file
        raise ValueError(f"{folder / 'zarr.json'}: unreadable Zarr metadata ({exc})") from exc


def _read_array(folder: Path) -> np.ndarray:
    """:func:`_decode_array`, an error naming the array's folder when its metadata or a chunk is damaged."""
    try:
        return _decode_array(folder)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise ValueError(f"{folder}: unreadable Zarr array ({type(exc).__name__}: {exc})") from exc


def _decode_array(folder: Path) -> np.ndarray:
    """A whole Zarr v3 array: with plain chunks (little-endian bytes, then Blosc or Zstd, as :func:`write_volume`
    writes them) each chunk file decoded here, the fill value where a chunk is absent; else read by zarr."""
    meta = ArrayV3Metadata.from_dict(json.loads((folder / "zarr.json").read_bytes()))
    codecs = meta.codecs
    plain = (isinstance(meta.chunk_grid, RegularChunkGrid) and not meta.storage_transformers and len(codecs) == 2
             and isinstance(codecs[0], BytesCodec) and codecs[0].endian in (None, Endian.little)
             and isinstance(codecs[1], BloscCodec | ZstdCodec))
    if not plain:
        return zarr.open_array(folder, mode="r", zarr_format=3)[...]
    dtype = np.dtype(meta.dtype.to_native_dtype()).newbyteorder("<")
    decode = (numcodecs.Blosc() if isinstance(codecs[1], BloscCodec) else numcodecs.Zstd()).decode
    step = meta.chunks
    out = np.full(meta.shape, meta.fill_value, dtype)
    for index in np.ndindex(*(-(-n // c) for n, c in zip(meta.shape, step))):
        try:
            raw = (folder / meta.encode_chunk_key(index)).read_bytes()
        except FileNotFoundError:  # a chunk of the fill value only: not written
            continue
        chunk = np.frombuffer(decode(raw), dtype).reshape(step)
        box = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, step, meta.shape))
        out[box] = chunk[tuple(slice(0, b.stop - b.start) for b in box)]
    return out.astype(out.dtype.newbyteorder("="), copy=False)
