"""Bad input goes to quarantine with a precise reason, the batch goes on, and every input file is accounted for."""

from __future__ import annotations

import copy
import os
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pydicom
import pytest
import xarray as xr
from pydicom.uid import generate_uid

from sonimage.dicom import conversion
from sonimage.dicom.pseudonym import Pseudonymiser
from sonimage.stages import convert as convert_stage
from tests.helpers import require

N = 12  # slices per test series, cut from the real GE series


def _sources(shared_data: Path) -> list[pydicom.Dataset]:
    files = sorted(require(shared_data / "sts-001-fdg-pet" / "dicom").glob("*.dcm"))
    dss = [pydicom.dcmread(f) for f in files]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return dss[100:100 + N]


def _write_series(root: Path, name: str, sources: list[pydicom.Dataset],
                  edit: Callable[[int, pydicom.Dataset], None] = lambda k, ds: None) -> list[Path]:
    folder = root / "site" / name
    folder.mkdir(parents=True)
    uid = generate_uid(entropy_srcs=[name])
    paths = []
    for k, src in enumerate(sources):
        ds = copy.deepcopy(src)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[name, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        edit(k, ds)
        path = folder / f"IM{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _set(keyword: str, value: object, only: int | None = None) -> Callable[[int, pydicom.Dataset], None]:
    def edit(k: int, ds: pydicom.Dataset) -> None:
        if only is None or k == only:
            setattr(ds, keyword, value)
    return edit


def _drop(keyword: str) -> Callable[[int, pydicom.Dataset], None]:
    return lambda k, ds: delattr(ds, keyword) if keyword in ds else None


@pytest.fixture(scope="module")
def bad_tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dicom")
    src = _sources(shared_data)
    _write_series(root, "good", src)
    _write_series(root, "no_weight", src, _drop("PatientWeight"))
    _write_series(root, "units", src, _set("Units", "PROPCNTS"))
    _write_series(root, "gap", src[:5] + src[6:])
    _write_series(root, "orientation", src, _set("ImageOrientationPatient", [1, 0, 0, 0, 0.8, -0.6], only=3))
    _write_series(root, "mixed", src, _set("StudyInstanceUID", generate_uid(entropy_srcs=["other"]), only=2))
    truncated = _write_series(root, "truncated", src)
    truncated[4].write_bytes(truncated[4].read_bytes()[:-3000])
    copies = _write_series(root, "copies", src)
    shutil.copy(copies[0], copies[0].with_name("IM0000_copy.dcm"))
    same = _write_series(root, "same_position", src, _set("ImagePositionPatient", src[0].ImagePositionPatient, only=1))
    assert same
    (root / "site" / "notes.txt").write_text("not an image")
    (root / "site" / "empty.dcm").write_bytes(b"")
    (root / "site" / "cut300.dcm").write_bytes(same[0].read_bytes()[:300])  # a copy cut off after 300 bytes
    _write_series(root, "negative_dose", src, _negative_dose)
    between = copy.deepcopy(src[6])  # an extra slice half-way between two others, filed as the 7th
    between.ImagePositionPatient = [*src[6].ImagePositionPatient[:2],
                                    (float(src[5].ImagePositionPatient[2]) + float(src[6].ImagePositionPatient[2])) / 2]
    _write_series(root, "extra_slice", src[:6] + [between] + src[6:])
    orphan = root / "site" / "orphan_rtstruct"  # drawn on the original STS series, which is not in this tree
    orphan.mkdir()
    shutil.copy(next((shared_data / "sts-001-fdg-pet" / "rtstruct").glob("*.dcm")), orphan / "RS.dcm")
    return root


def _negative_dose(k: int, ds: pydicom.Dataset) -> None:
    ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = -3.7e8


@pytest.fixture(scope="module")
def converted(bad_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("out")
    summary = convert_stage.run(bad_tree, out, Pseudonymiser(b"test-key", cohort_name="site"))
    return out, pd.read_parquet(summary.manifest), pd.read_parquet(summary.quarantine)


def test_every_input_file_is_accounted_for(bad_tree: Path, converted: tuple) -> None:
    _, manifest, quarantine = converted
    n_inputs = sum(1 for p in bad_tree.rglob("*") if p.is_file())
    assert n_inputs == manifest.n_files.sum() + quarantine.n_files.sum()
    assert set(manifest.status) == {"converted"}
    assert len(manifest) == 2  # the good series and the one whose extra copy was set aside
    assert "indexed" not in set(manifest.status)  # the RTSTRUCT on a missing series is quarantined, not kept


@pytest.mark.parametrize("make_root", ["missing", "empty"])
def test_missing_or_empty_root_is_an_error_and_changes_no_output(converted: tuple, tmp_path: Path,
                                                                 make_root: str) -> None:
    out, _, _ = converted
    before = {p: _digest(p) for p in out.rglob("*") if p.is_file()}
    root = tmp_path / "typo"
    if make_root == "empty":
        root.mkdir()
    from sonimage.cli import main

    assert main(["convert", str(root), str(out), "--cohort", "site", "--key-file", str(_key(tmp_path))]) == 2
    with pytest.raises((FileNotFoundError, ValueError), match=str(root)):
        convert_stage.run(root, out, Pseudonymiser(b"test-key", cohort_name="site"))
    assert {p: _digest(p) for p in out.rglob("*") if p.is_file()} == before


def _key(folder: Path) -> Path:
    key = folder / "site.key"
    key.write_text("test-key")
    return key


@pytest.mark.parametrize("path, reason", [
    ("site/no_weight", "PatientWeight is missing"),
    ("site/units", "Units PROPCNTS cannot be converted"),
    ("site/gap", "gap in slice positions"),
    ("site/orientation", "inconsistent ImageOrientationPatient"),
    ("site/mixed", "mixed instances: 2 different studies"),
    ("site/truncated", "pixel data of site/truncated/IM0004.dcm cannot be decoded"),
    ("site/copies/IM0000_copy.dcm", "duplicate copy of site/copies/IM0000.dcm"),
    ("site/same_position", "two instances at one slice position"),
    ("site/notes.txt", "not a DICOM file"),
    ("site/empty.dcm", "not a DICOM file"),
    ("site/cut300.dcm", "not a DICOM file / truncated"),
    ("site/negative_dose", "RadionuclideTotalDose is negative"),
    ("site/extra_slice", "extra slice site/extra_slice/IM0006.dcm"),
    ("site/orphan_rtstruct/RS.dcm", "RTSTRUCT drawn on series"),
])
def test_quarantine_names_file_and_reason(converted: tuple, path: str, reason: str) -> None:
    _, _, quarantine = converted
    rows = quarantine[quarantine.path == path]
    assert len(rows) == 1, quarantine.to_string()
    assert reason in rows.reason.iloc[0]
    assert "DICOMDIR" not in rows.reason.iloc[0]


def test_reasons_name_the_real_cause(converted: tuple) -> None:
    _, _, quarantine = converted
    reason = quarantine.set_index("path").reason
    assert "which is not in the DICOM tree" in reason["site/orphan_rtstruct/RS.dcm"]  # not left 'indexed'
    assert "missing or zero" not in reason["site/negative_dose"]
    orphan = quarantine[quarantine.path == "site/orphan_rtstruct/RS.dcm"].iloc[0]
    assert (orphan.modality, orphan.cohort) == ("RTSTRUCT", "site") and orphan.patient.startswith("P-")


def test_stores_open_lazily_with_geometry(converted: tuple) -> None:
    out, manifest, _ = converted
    row = manifest.iloc[0]
    ds = xr.open_zarr(out / row.store, consolidated=False)
    assert ds["suv"].chunks is not None  # dask-backed, nothing loaded yet
    assert ds["suv"].shape == (row.shape_z, row.shape_y, row.shape_x)
    assert ds.attrs["suv_factor"] == pytest.approx(2.42903e-4, abs=1e-8)
    assert ds.attrs["tracer"] == "FDG"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rerun_after_a_crash_resumes_to_the_same_result(bad_tree: Path, converted: tuple) -> None:
    out, manifest, _ = converted
    before = {name: _digest(out / name) for name in ("manifest.parquet", "quarantine.parquet")}
    victim = out / manifest.store.iloc[0]
    shutil.rmtree(victim)  # a store lost mid-run
    (out / "volumes" / ".half-written.zarr.tmp").mkdir()  # debris of a crashed writer
    convert_stage.run(bad_tree, out, Pseudonymiser(b"test-key", cohort_name="site"))
    assert victim.joinpath("zarr.json").is_file()
    assert {name: _digest(out / name) for name in before} == before


def test_a_series_too_large_to_hold_is_read_twice_to_the_same_store(bad_tree: Path, converted: tuple,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the read-once size a series is hashed file by file and its pixels read again: same digest, same
    store, so a later run with the other path still reuses it."""
    out, manifest, _ = converted
    monkeypatch.setattr(conversion, "READ_ONCE_MAX_BYTES", 0)
    summary = convert_stage.run(bad_tree, tmp_path, Pseudonymiser(b"test-key", cohort_name="site"))
    again = pd.read_parquet(summary.manifest)
    assert summary.n_converted == len(manifest) == len(again)
    for store in manifest.store:
        old, new = xr.open_zarr(out / store), xr.open_zarr(tmp_path / store)
        assert old.attrs["content_hmac_sha256"] == new.attrs["content_hmac_sha256"]
        assert old.equals(new)


def test_an_unreadable_folder_is_quarantined_unnamed_and_the_rest_converts(bad_tree: Path, converted: tuple,
                                                                            tmp_path: Path) -> None:
    """A folder the listing cannot open (here: its path is longer than the system allows, which no privilege
    overcomes) is a quarantine row with the reason, its folder names pseudonymised; every other file converts."""
    out, manifest, quarantine = converted
    name = "DOE^JANE_19600101_" + "x" * 200
    fd = os.open(bad_tree, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 levels of 218 characters: beyond PATH_MAX (4,096)
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    try:
        summary = convert_stage.run(bad_tree, tmp_path, Pseudonymiser(b"test-key", cohort_name="site"))
    finally:
        shutil.rmtree(bad_tree / name)
    rows = pd.read_parquet(summary.quarantine)
    folder = rows[rows.reason.str.startswith("folder could not be read")]
    assert len(folder) == 1 and folder.n_files.iloc[0] == 0 and "too long" in folder.reason.iloc[0]
    assert "DOE" not in folder.path.iloc[0] and "1960" not in rows.to_csv()
    assert len(pd.read_parquet(summary.manifest)) == len(manifest) and len(rows) == len(quarantine) + 1
