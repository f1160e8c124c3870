"""Nothing is dropped silently: every patient of the manifest or the quarantine is in ``patients.parquet`` or in
``excluded_patients.parquet`` with the real cause, and a quarantined FES PET is named as such.

A tiny synthetic SONIA cohort of 5 patients, four of them broken as a site's export can be: one without its
RTSTRUCT, one whose FDG PET cannot be converted (negative dose), one whose FES PET cannot (units that have no SUV),
and one whose converted FDG CT store is damaged before the lesion stage reads it (that patient's lesion stage
fails; the batch goes on).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from sonimage.cli import main
from sonimage.dicom.pseudonym import Pseudonymiser, read_linking
from sonimage.stages import extract as extract_stage
from sonimage.synth.generate import generate_study
from sonimage.tables.manifest import write_manifest, write_quarantine
from sonimage.stages import convert as convert_stage


def _edit(folder: Path, keyword: str, value: float | str) -> None:
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        if keyword == "RadionuclideTotalDose":
            ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = value
        else:
            setattr(ds, keyword, value)
        ds.save_as(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, pd.DataFrame]]:
    base = tmp_path_factory.mktemp("excluded")
    generate_study(base / "study", cohorts=("sonia",), n_patients=5, size="tiny", seed=3)
    links = pd.read_csv(base / "study" / "site-private" / "linking.csv", dtype=str)
    folders = {row.subject_id: base / "study" / "dicom" / "sonia" / row.PatientID for row in links.itertuples()}
    intact, no_rtstruct, bad_fdg, bad_fes, bad_store = sorted(folders)
    shutil.rmtree(next(folders[no_rtstruct].glob("*_FDG/*_RTSTRUCT_*")))
    _edit(next(folders[bad_fdg].glob("*_FDG/*_PET_*")), "RadionuclideTotalDose", -3.0e8)
    _edit(next(folders[bad_fes].glob("*_FES/*_PET_*")), "Units", "PROPCNTS")
    pseudo = Pseudonymiser(b"k", read_linking(base / "study" / "site-private" / "linking.csv"))
    summary = convert_stage.run(base / "study" / "dicom", base / "out", pseudo)
    manifest = pd.read_parquet(summary.manifest)
    ct = manifest[(manifest.patient == bad_store) & (manifest.modality == "CT") & (manifest.tracer == "FDG")]
    (base / "out" / ct.store.iloc[0] / "zarr.json").unlink()  # a damaged store: the lesion stage cannot read it
    paths = extract_stage.run(base / "out")
    tables = {name: pd.read_parquet(p) for name, p in
              {"manifest": summary.manifest, "quarantine": summary.quarantine, **paths}.items()}
    return {"intact": intact, "no_rtstruct": no_rtstruct, "bad_fdg": bad_fdg, "bad_fes": bad_fes,
            "bad_store": bad_store}, tables


def test_patients_in_equal_patients_out_plus_excluded(run: tuple) -> None:
    _, t = run
    patients_in = set(t["manifest"].patient) | set(t["quarantine"].patient) - {""}
    out, excluded = set(t["patients"].patient), set(t["excluded_patients"].patient)
    assert len(patients_in) == 5
    assert patients_in == out | excluded and not out & excluded
    assert len(t["excluded_patients"]) == len(excluded)  # one row, one reason per patient


def test_exclusion_reasons_name_the_real_cause(run: tuple) -> None:
    who, t = run
    reason = t["excluded_patients"].set_index("patient").reason
    assert set(reason.index) == {who["no_rtstruct"], who["bad_fdg"], who["bad_store"]}
    assert reason[who["bad_store"]].startswith("lesion stage failed on ")  # the stores named, then the error
    assert f"volumes/sonia/{who['bad_store']}/" in reason[who["bad_store"]]
    assert reason[who["no_rtstruct"]].startswith("no RTSTRUCT")
    assert reason[who["bad_fdg"]].startswith("RTSTRUCT quarantined: RTSTRUCT drawn on PET series")
    assert reason[who["bad_fdg"]].endswith("which was quarantined: RadionuclideTotalDose is negative (-3e+08)")
    rtstruct = t["quarantine"][(t["quarantine"].patient == who["bad_fdg"]) & (t["quarantine"].modality == "RTSTRUCT")]
    assert len(rtstruct) == 1  # the RTSTRUCT is not left 'indexed': it has its quarantine row


def test_quarantined_fes_pet_is_not_called_missing(run: tuple) -> None:
    who, t = run
    reasons = t["patients"].set_index("patient").fes_missing_reason
    assert reasons[who["bad_fes"]].startswith("FES PET quarantined: Units PROPCNTS cannot be converted to SUV")
    fes = t["quarantine"][t["quarantine"].patient == who["bad_fes"]]
    assert list(zip(fes.modality, fes.tracer)) == [("PT", "FES")]


def test_extract_explains_an_empty_or_missing_tree(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", str(tmp_path)]) == 2
    assert "sonimage convert" in capsys.readouterr().err  # no manifest: says what to run first
    write_manifest([], tmp_path / "manifest.parquet")
    write_quarantine([], tmp_path / "quarantine.parquet")
    assert main(["extract", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no lesions to extract" in err and "KeyError" not in err
