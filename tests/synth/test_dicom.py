"""The synthetic DICOM reads like a scanner's: valid files, geometry, vendor SUV headers, identifiers, UIDs."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import UID

from sonimage.cli import main
from sonimage.dicom.petheader import header_from_datasets
from sonimage.dicom.suv import suv_conversion
from sonimage.synth import scanners
from sonimage.synth.anatomy import Grid
from sonimage.synth.dicom_writer import Patient, SeriesHeader, write_pet_series
from sonimage.synth.scanners import SITE_PROFILES, plan_scan
from sonimage.synth.generate import generate_study

COHORT = "transcan"
SEED = 1  # Philips (activity factor only, twice) and GE with dose in MBq; liver lesions


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_study(out, cohorts=(COHORT,), n_patients=3, size="tiny", seed=SEED)
    return out


def _headers(study: Path) -> list[tuple[Path, pydicom.Dataset]]:
    return [(p, pydicom.dcmread(p, stop_before_pixels=True)) for p in sorted((study / "dicom").rglob("*.dcm"))]


def _profile_series(tmp: Path, site: str, midnight: bool, monkeypatch: pytest.MonkeyPatch
                    ) -> tuple[scanners.Acquisition, np.ndarray, list[pydicom.Dataset]]:
    """A 60-slice PET series (several bed positions) of ``site``'s profile with known SUV: its plan, SUV, files."""
    monkeypatch.setattr(scanners, "MIDNIGHT_PROBABILITY", 1.0 if midnight else 0.0)
    zs = np.round(20.0 - 4.0 * np.arange(60), 4)
    grid = Grid.centred(6, 4.0, zs)
    suv = np.random.default_rng(0).uniform(0.0, 12.0, grid.shape).astype(np.float32)
    acq = plan_scan(SITE_PROFILES[site], "FES", date(2021, 3, 1), 71.5, zs, np.random.default_rng(2))
    patient = Patient("Jansen^Maria", "7302214", date(1961, 5, 2), "F", 59, "71.5", "1.66")
    header = SeriesHeader("1.2.3.1", "1.2.3.2", "1.2.3.3", "A123", acq.scan_start, "PET-CT", 3, "PET WB FES AC",
                          (site, midnight))
    write_pet_series(tmp, suv, grid, acq, patient, header)
    dss = sorted((pydicom.dcmread(p) for p in tmp.glob("*.dcm")), key=lambda d: int(d.InstanceNumber))
    return acq, suv, dss


def test_every_file_parses_and_simpleitk_reads_a_pet_volume_with_its_geometry(study: Path) -> None:
    headers = _headers(study)
    series = pd.read_parquet(study / "truth" / COHORT / "series.parquet")
    assert len(headers) == int(series.n_files.sum())
    for path, ds in headers:
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID, path
    pet = series[(series.modality == "PT")].iloc[0]
    folder = next(p.parent for p, ds in headers if ds.SeriesInstanceUID == pet.series_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    nz, ny, nx = pet.shape_zyx
    assert image.GetSize() == (nx, ny, nz)
    assert np.allclose(image.GetSpacing(), pet.spacing_zyx_mm[::-1], atol=1e-3)
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    lowest = min((ds for p, ds in headers if ds.SeriesInstanceUID == pet.series_uid),
                 key=lambda d: float(d.ImagePositionPatient[2]))
    assert np.allclose(image.GetOrigin(), [float(v) for v in lowest.ImagePositionPatient], atol=1e-3)


def test_files_are_byte_identical_to_what_pydicom_writes_for_the_same_dataset(study: Path) -> None:
    files = sorted((study / "dicom").rglob("*.dcm"))
    for path in files:
        buf = io.BytesIO()
        pydicom.dcmread(path).save_as(buf, enforce_file_format=True)
        assert buf.getvalue() == path.read_bytes(), path


def test_uids_are_valid_unique_and_link_pet_ct_and_studies(study: Path) -> None:
    headers = [ds for _, ds in _headers(study)]
    sops = [str(ds.SOPInstanceUID) for ds in headers]
    assert len(set(sops)) == len(sops) and all(UID(u).is_valid for u in sops)
    by_study: dict[str, set[tuple[str, str]]] = {}
    for ds in headers:
        by_study.setdefault(str(ds.StudyInstanceUID), set()).add((str(ds.Modality), str(ds.FrameOfReferenceUID)
                                                                 if "FrameOfReferenceUID" in ds else ""))
    series = pd.read_parquet(study / "truth" / COHORT / "series.parquet")
    assert len(by_study) == 2 * series.subject_id.nunique()  # one FDG and one FES session per patient
    for members in by_study.values():
        frames = {f for m, f in members if m in ("PT", "CT")}
        assert {m for m, _ in members} >= {"PT", "CT"} and len(frames) == 1


@pytest.mark.parametrize("site", sorted(SITE_PROFILES))
def test_vendor_profiles_write_their_tags(site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = SITE_PROFILES[site]
    acq, _, dss = _profile_series(tmp_path, site, False, monkeypatch)
    first = dss[0]
    rp = first.RadiopharmaceuticalInformationSequence[0]
    assert first.Units == profile.units and first.DecayCorrection == profile.decay_correction
    assert rp.Radiopharmaceutical == "Fluoroestradiol" and float(rp.RadionuclideHalfLife) == 6586.2
    assert rp.RadionuclideCodeSequence[0].CodeMeaning == "^18^Fluorine"
    assert len({d.RescaleSlope for d in dss}) > 1  # per-slice scaling
    assert len({d.AcquisitionTime for d in dss}) > 1  # one acquisition time per bed position
    assert (float(rp.RadionuclideTotalDose) < 1e5) == profile.dose_in_mbq
    assert ("RadiopharmaceuticalStartDateTime" in rp) == (profile.injection_fields != "time")
    assert first.PixelRepresentation == (0 if profile.unsigned else 1)
    if profile.ge_private_scan_time:
        assert first[0x0009, 0x0010].value == "GEMS_PETD_01"
        assert first[0x0009, 0x100D].value == acq.scan_start.strftime("%Y%m%d%H%M%S")
        assert first.SeriesTime > max(d.AcquisitionTime for d in dss)  # series time cannot be the reference
    else:
        assert (0x0009, 0x0010) not in first
    if profile.units == "CNTS":
        assert first[0x7053, 0x0010].value == "Philips PET Private Group"
        assert float(first[0x7053, 0x1009].value) > 0
        assert ((0x7053, 0x1000) in first) == profile.philips_suv_scale
    if profile.vendor == "Siemens":
        assert "." in first.AcquisitionTime and first.SeriesTime <= min(d.AcquisitionTime for d in dss)


@pytest.mark.parametrize("site", sorted(SITE_PROFILES))
@pytest.mark.parametrize("midnight", [False, True])
def test_standard_suv_conversion_gives_back_the_rendered_suv(site: str, midnight: bool, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    acq, suv, dss = _profile_series(tmp_path, site, midnight, monkeypatch)
    rp = dss[0].RadiopharmaceuticalInformationSequence[0]
    if midnight:  # injected before midnight, scanned after; only the injection time is written
        assert "RadiopharmaceuticalStartDateTime" not in rp
        assert rp.RadiopharmaceuticalStartTime > dss[0].AcquisitionTime
    conv = suv_conversion(header_from_datasets(dss))
    assert np.allclose(conv.slice_factors, acq.factors, rtol=1e-9, atol=0)
    decoded = np.array([d.pixel_array * float(d.RescaleSlope) * f for d, f in zip(dss, acq.factors)])
    step = np.array([float(d.RescaleSlope) * f for d, f in zip(dss, acq.factors)])[:, None, None]
    assert np.all(np.abs(decoded - suv) <= 0.5 * step + 1e-6)


def test_identifying_fields_are_filled_in_and_linked_only_in_the_site_file(study: Path) -> None:
    with open(study / "site-private" / "linking.csv", newline="") as fh:
        linking = {r["PatientID"]: r["subject_id"] for r in csv.DictReader(fh)}
    seen = set()
    for path, ds in _headers(study):
        assert "^" in str(ds.PatientName) and str(ds.PatientID) in linking, path
        assert ds.AccessionNumber and len(ds.PatientBirthDate) == 8
        study_year, birth_year = int(ds.StudyDate[:4]), int(ds.PatientBirthDate[:4])
        assert study_year - birth_year - int(ds.PatientAge[:3]) in (0, 1)
        seen.add((str(ds.PatientID), str(ds.PatientName), str(ds.PatientBirthDate)))
    assert len(seen) == len(linking) == 3
    truth = b"".join(p.read_bytes() for p in (study / "truth").rglob("*") if p.is_file())
    for patient_id, name, birth in seen:
        for text in (patient_id, name, name.split("^")[0], birth):
            assert text.encode() not in truth


def test_cli_prints_counts_and_no_identifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--cohorts", "impact", "--patients", "1", "--size", "tiny", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "1 patients (1 generated" in printed and "DICOM files" in printed
    patient_id = (out / "site-private" / "linking.csv").read_text().splitlines()[1].split(",")[1]
    assert patient_id not in printed
    assert main(["synth", str(out), "--cohorts", "impact", "--patients", "1", "--size", "tiny", "--seed", "2"]) == 0
    assert "0 generated, 1 already complete" in capsys.readouterr().out
