"""Volumes as chunked Zarr v3 stores holding an xarray Dataset, written atomically, opened lazily.

Layout of a store: one data variable (``suv`` for PET, ``hu`` for CT, ``label`` for lesion masks) with dims
(z, y, x); coordinates ``z``, ``y``, ``x`` in mm along the image axes (``z`` holds the true slice positions, so
bed-junction jitter is kept, not resampled away); geometry (spacing, origin, direction) and provenance in attrs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

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
    bytes; ``tests/test_store.py`` compares them file by file), but the data chunks are encoded here, one Blosc
    call each, and written as files at zarr's own chunk keys: zarr 3's asynchronous per-chunk pipeline cost as much
    CPU as the compression itself (bench/README.md, conversion)."""
    ds = to_dataset(volume, variable)
    data = np.asarray(volume.array)
    shape = data.shape
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))

    def write(tmp: Path) -> None:
        group = zarr.open_group(tmp, mode="w", zarr_format=3, attributes=ds.attrs)
        for name in ("x", "y", "z"):  # coordinates as xarray writes them: one float64 chunk, zstd
            values = ds[name].to_numpy()
            coord = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=values.shape,
                                       fill_value=np.nan, dimension_names=[name],
                                       attributes={"_FillValue": NAN_FILL})
            coord[...] = values
        floating = np.issubdtype(data.dtype, np.floating)
        array = group.create_array(variable, shape=shape, dtype=data.dtype, chunks=chunks,
                                   fill_value=np.nan if floating else 0, dimension_names=["z", "y", "x"],
                                   compressors=(BloscCodec(**BLOSC),),
                                   attributes={"_FillValue": NAN_FILL} if floating else {})
        _write_chunks(array, data, Path(tmp) / variable)

    return write_directory_atomic(Path(path), write)


def _write_chunks(array: zarr.Array, data: np.ndarray, folder: Path) -> None:
    """Every chunk of ``data`` encoded with ``array``'s Blosc settings and written at ``array``'s chunk key; chunks
    holding only the fill value are left out, as zarr leaves them out (``write_empty_chunks`` false)."""
    codec = numcodecs.Blosc.from_config({**BLOSC, "shuffle": numcodecs.Blosc.SHUFFLE, "blocksize": 0,
                                         "typesize": data.dtype.itemsize})
    little = data.astype(data.dtype.newbyteorder("<"), copy=False)  # the bytes codec: little endian
    fill = array.metadata.fill_value
    step = array.chunks
    for index in np.ndindex(*array.cdata_shape):
        box = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, step))
        block = little[box]
        if np.isnan(fill) and np.isnan(block).all() or not np.isnan(fill) and (block == fill).all():
            continue
        if block.shape != step:  # an edge chunk is stored at full size, padded with the fill value
            full = np.full(step, fill, little.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        target = folder / array.metadata.encode_chunk_key(index)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(codec.encode(np.ascontiguousarray(block)))


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
    """Load a store (its only data variable unless ``variable`` is given) into memory as a :class:`Volume`."""
    array, attrs = open_variable(path, variable)
    geometry = {k: tuple(attrs.pop(k)) for k in ("spacing", "origin", "direction")}
    z = zarr.open_array(Path(path) / "z", mode="r", zarr_format=3)[...]
    attrs["slice_positions_mm"] = [float(v) for v in z]
    return Volume(array=array[...], attrs=attrs, **geometry)
