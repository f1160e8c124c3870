"""Zarr stores written by :func:`sonimage.volumes.store.write_volume` (chunks encoded by sonimage, not by zarr's
pipeline) are the stores xarray's ``to_zarr`` writes: the same files, byte for byte, and the same dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from zarr.codecs import BloscCodec, BytesCodec

from sonimage.volumes.volume import Volume
from sonimage.volumes.store import BLOSC, CHUNK, read_volume, to_dataset, write_volume


def _xarray_store(volume: Volume, path, variable: str) -> None:
    """The store as xarray writes it (the writer before sonimage encoded the chunks itself)."""
    chunks = tuple(min(c, s) for c, s in zip(CHUNK, volume.array.shape))
    to_dataset(volume, variable).to_zarr(path, mode="w", zarr_format=3, consolidated=False,
                                         encoding={variable: {"chunks": chunks, "compressors": (BloscCodec(**BLOSC),)}})


def _volumes() -> dict[str, tuple[Volume, str]]:
    rng = np.random.default_rng(1)
    pet = rng.gamma(2, 1, (75, 70, 66)).astype(np.float32)
    pet[:, :3] = np.nan  # a NaN edge
    pet[:33] = 0
    pet[32:64, 64:] = np.nan  # two (edge) chunks of the fill value: not written, read back as NaN
    ct = rng.integers(-1000, 1000, (75, 140, 130)).astype(np.int16)
    ct[:32, :64, :64] = 0  # a chunk of the fill value: not written
    label = np.zeros((75, 70, 66), np.uint8)
    label[50:55, 10:20, 60:65] = 3  # in an edge chunk
    attrs = {"slice_positions_mm": list(np.arange(75) * 2.0 + 0.1), "n": np.int64(3), "none": None}
    geometry = {"spacing": (2.0, 3.0, 4.0), "origin": (1.0, -2.0, 3.0)}
    return {"pet": (Volume(pet, attrs={**attrs, "quantity": "SUVbw"}, **geometry), "suv"),
            "ct": (Volume(ct, attrs={**attrs, "quantity": "CT"}, **geometry), "hu"),
            "label": (Volume(label, attrs={**attrs, "quantity": "label"}, **geometry), "label")}


@pytest.mark.parametrize("kind", ["pet", "ct", "label"])
def test_written_store_is_xarrays_byte_for_byte(kind, tmp_path):
    volume, variable = _volumes()[kind]
    # a second shape after the first: the metadata templates made once per kind must take each store's shape
    cropped = Volume(volume.array[:-7, 5:], volume.spacing, volume.origin, volume.direction,
                     {**volume.attrs, "slice_positions_mm": volume.attrs["slice_positions_mm"][:-7]})
    for k, vol in enumerate((volume, cropped)):
        ours, theirs = tmp_path / f"ours{k}.zarr", tmp_path / f"xarray{k}.zarr"
        write_volume(vol, ours, variable)
        _xarray_store(vol, theirs, variable)
        files = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
        assert [f for f in files if (ours / f).read_bytes() != (theirs / f).read_bytes()] == []
        assert xr.open_zarr(ours, consolidated=False).identical(xr.open_zarr(theirs, consolidated=False))
        back = read_volume(ours)  # chunk files decoded by sonimage: the values and attributes zarr reads
        np.testing.assert_array_equal(back.array, vol.array)
        assert back.array.dtype == vol.array.dtype and back.spacing == vol.spacing
        ds = xr.open_zarr(theirs, consolidated=False)
        np.testing.assert_array_equal(back.array, ds[variable].to_numpy())
        assert back.attrs == {**{k: v for k, v in ds.attrs.items() if k not in ("spacing", "origin", "direction")},
                              "slice_positions_mm": ds.z.to_numpy().tolist()}


def test_a_store_zarr_wrote_its_own_way_reads_the_same(tmp_path):
    """A store sonimage did not write (big-endian bytes, no compressor, other chunks): read through zarr."""
    volume, variable = _volumes()["ct"]
    ours, other = tmp_path / "ours.zarr", tmp_path / "other.zarr"
    write_volume(volume, ours, variable)
    to_dataset(volume, variable).to_zarr(other, mode="w", zarr_format=3, consolidated=False, encoding={
        variable: {"chunks": (16, 50, 40), "compressors": None, "serializer": BytesCodec(endian="big")}})
    back = read_volume(other)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.attrs == read_volume(ours).attrs


@pytest.mark.parametrize("damage", ["chunk", "metadata"])
def test_a_damaged_store_is_an_error_naming_its_file(damage, tmp_path):
    volume, variable = _volumes()["pet"]
    store = tmp_path / "pet.zarr"
    write_volume(volume, store, variable)
    array = store / variable
    victim = next(p for p in sorted(array.rglob("*")) if p.is_file() and p.name != "zarr.json") \
        if damage == "chunk" else array / "zarr.json"
    victim.write_bytes(victim.read_bytes()[:20])
    with pytest.raises(ValueError, match=str(array)):
        read_volume(store)
