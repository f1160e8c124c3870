"""No patient name, birth date or original PatientID in any output file, Zarr attribute or log line.

A tiny synthetic study (real DICOM with realistic identifying fields) goes through the whole `sonimage run`
(Prefect server, Dask worker processes); then every byte the run left behind is searched, the Prefect database
included, and so is everything it printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from sonimage.synth.generate import generate_study

pytestmark = pytest.mark.slow  # runs `sonimage run` (Prefect server, Dask workers)


def identifiers(dicom_root: Path) -> set[str]:
    """Every identifying value written into the study's DICOM headers."""
    found: set[str] = set()
    for path in dicom_root.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientName", "PatientBirthDate",
                                                                            "PatientID"])
        name = str(ds.get("PatientName", ""))
        found |= {name, *name.split("^"), str(ds.get("PatientBirthDate", "")), str(ds.get("PatientID", ""))}
    return {v for v in found if len(v) >= 4}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, set[str]]:
    base = tmp_path_factory.mktemp("privacy")
    generate_study(base / "study", cohorts=("sonia",), n_patients=2, size="tiny", seed=3)
    for patient_folder in (base / "study" / "dicom" / "sonia").iterdir():  # a site exports into MRN-named folders
        (patient_folder / "export-notes.txt").write_text("burned CD label scan")
    out = base / "out"
    env = {**os.environ, "SONIMAGE_HOME": str(base / "site-home")}
    env.pop("PREFECT_API_URL", None)
    run = subprocess.run([str(Path(sys.executable).parent / "sonimage"), "run", str(base / "study" / "dicom"), str(out),
                          "--linking", str(base / "study" / "site-private" / "linking.csv"), "--dashboard", ":0"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return base, out, run.stdout + run.stderr, identifiers(base / "study" / "dicom")


def test_the_study_carries_identifiers_to_find(study_run: tuple) -> None:
    *_, ids = study_run
    assert len(ids) >= 6  # names, birth dates and MRNs of two patients: the search below is not vacuous


def test_no_identifier_in_any_output_file(study_run: tuple) -> None:
    _, out, _, ids = study_run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.parquet" for p in files) and any(p.name == "zarr.json" for p in files)
    leaks = [(p.relative_to(out), v) for p in files for v in ids if v.encode() in p.read_bytes()]
    assert not leaks, leaks[:10]


def test_quarantine_shows_pseudonyms_for_patient_folders(study_run: tuple) -> None:
    _, out, _, _ = study_run
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert len(quarantine) == 2
    assert all(p.startswith("sonia/SONIA-") and p.endswith("/export-notes.txt") for p in quarantine.path)


def test_no_identifier_in_any_log_line(study_run: tuple) -> None:
    _, _, log, ids = study_run
    assert "Dask dashboard" in log
    assert not [v for v in ids if v in log]
