"""Names cannot leak or escape: cohorts never come from folder names, output paths hold pseudonyms and hashes only,
an unsafe linking-table identifier is refused naming its row, and no task is shipped the key or the linking table.

Trees are cut from the real GE series STS_001 (12 slices per series), re-labelled as two patients with identifying
headers, filed as a PACS export would: in folders named after the patient.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from sonimage.cli import main
from sonimage.dicom.pseudonym import Linking, Pseudonymiser, read_linking
from sonimage.stages import convert as convert_stage
from tests.helpers import require

KEY = b"input-safety-site-key-0123456789"
PATIENTS = {  # folder under the DICOM root -> (PatientID, PatientName, PatientBirthDate)
    "DOE_JANE_19440607": ("MRN4471", "DOE^JANE", "19440607"),
    "SMITH_JOHN_19500101": ("MRN5582", "SMITH^JOHN", "19500101"),
}
IDENTIFYING = ["DOE", "JANE", "19440607", "SMITH", "JOHN", "19500101", "MRN4471", "MRN5582"]


def _write_patient(root: Path, folder: str, sources: list[pydicom.Dataset]) -> None:
    patient_id, name, birth = PATIENTS[folder]
    series = root / folder / "PET_WB"
    series.mkdir(parents=True)
    uid = generate_uid(entropy_srcs=[folder])
    for k, src in enumerate(sources):
        ds = copy.deepcopy(src)
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient_id, name, birth
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[folder, "study"])
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[folder, str(k)])
        ds.save_as(series / f"IM{k:04d}.dcm", enforce_file_format=True)
    (root / folder / "burned_cd_label.txt").write_text("export notes")  # not DICOM: quarantined


@pytest.fixture(scope="module")
def export(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PACS export: patient folders named after the patient, directly under the root."""
    files = sorted(require(shared_data / "sts-001-fdg-pet" / "dicom").glob("*.dcm"))
    sources = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))[100:112]
    root = tmp_path_factory.mktemp("export")
    for folder in PATIENTS:
        _write_patient(root, folder, sources)
    return root


def _linking(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("cohort,PatientID,subject_id\n" + "".join(f"{c},{p},{s}\n" for c, p, s in rows))
    return path


def _all_bytes(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()]


def test_folder_names_never_become_cohorts_or_paths(export: Path, tmp_path: Path) -> None:
    summary = convert_stage.run(export, tmp_path / "out", Pseudonymiser(KEY, cohort_name="trial"))
    manifest = pd.read_parquet(summary.manifest)
    quarantine = pd.read_parquet(summary.quarantine)
    assert set(manifest.cohort) == {"trial"}  # two patient folders under the root: one cohort, the one given
    assert len(manifest) == 2 and manifest.patient.str.startswith("P-").all()
    assert all(s.startswith("volumes/trial/P-") for s in manifest.store)
    assert len(quarantine) == 2 and all(p.startswith("x-") and p.endswith("/burned_cd_label.txt")
                                        for p in quarantine.path)  # the patient's folder shown as a keyed hash
    paths = [str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")]
    leaks = [(str(p), v) for p, data in _all_bytes(tmp_path / "out") for v in IDENTIFYING
             if v.encode() in data.upper()] + [(p, v) for p in paths for v in IDENTIFYING if v in p.upper()]
    assert not leaks, leaks


def test_cohorts_come_from_the_linking_table(export: Path, tmp_path: Path) -> None:
    linking = _linking(tmp_path / "linking.csv", [("sonia", "MRN4471", "SONIA-0001"),
                                                  ("impact", "MRN5582", "IMPACT-0001")])
    summary = convert_stage.run(export, tmp_path / "out", Pseudonymiser(KEY, read_linking(linking)))
    manifest = pd.read_parquet(summary.manifest).set_index("patient")
    assert manifest.cohort.to_dict() == {"SONIA-0001": "sonia", "IMPACT-0001": "impact"}
    assert set(manifest.store) == {f"volumes/{c}/{p}/{s}.zarr" for p, c, s in
                                   zip(manifest.index, manifest.cohort, manifest.series)}
    quarantine = pd.read_parquet(summary.quarantine)  # files beside a patient's images: that patient and cohort
    assert dict(zip(quarantine.patient, quarantine.cohort)) == {"SONIA-0001": "sonia", "IMPACT-0001": "impact"}


def test_a_patient_without_cohort_is_quarantined_and_no_cohort_at_all_is_an_error(export: Path,
                                                                                   tmp_path: Path) -> None:
    linking = _linking(tmp_path / "linking.csv", [("sonia", "MRN4471", "SONIA-0001")])
    summary = convert_stage.run(export, tmp_path / "out", Pseudonymiser(KEY, read_linking(linking)))
    quarantine = pd.read_parquet(summary.quarantine)
    assert list(pd.read_parquet(summary.manifest).patient) == ["SONIA-0001"]
    assert quarantine.reason.str.contains("no --cohort was given").sum() == 1
    with pytest.raises(ValueError, match="--cohort NAME"):
        convert_stage.run(export, tmp_path / "other", Pseudonymiser(KEY))
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("column, value", [("subject_id", "../../../x"), ("cohort", ".."), ("subject_id", ""),
                                           ("cohort", "a/b")])
def test_unsafe_identifier_is_refused_naming_the_row(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     column: str, value: str) -> None:
    rows = [["sonia", "MRN4471", "SONIA-0001"], ["sonia", "MRN5582", "SONIA-0002"]]
    rows[1][{"cohort": 0, "subject_id": 2}[column]] = value
    (tmp_path / "site").mkdir()
    linking = _linking(tmp_path / "site" / "linking.csv", [(c, p, s) for c, p, s in rows])
    key = tmp_path / "site" / "site.key"
    key.write_bytes(KEY)
    out = tmp_path / "work" / "out"
    code = main(["convert", str(export), str(out), "--linking", str(linking), "--key-file", str(key)])
    err = capsys.readouterr().err
    assert code == 2 and f"linking.csv row 3, column {column}" in err, err
    assert "MRN5582" not in err  # the error names the row, not the patient
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["linking.csv", "site", "site.key"]  # nothing written
    with pytest.raises(ValueError, match=column):
        Pseudonymiser(KEY, Linking(**{"subjects" if column == "subject_id" else "cohorts": {"MRN5582": value}}))


class RecordingExecutor:
    """Runs each task in process and keeps what a cluster would be sent for it: the pickled function and arguments."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures import Future

        self.sent.append((fn.__name__, cloudpickle.dumps((fn, args))))
        future: Future = Future()
        future.set_result(fn(*args))
        return future


def test_tasks_get_neither_the_key_nor_the_linking_table(export: Path, tmp_path: Path) -> None:
    linking = _linking(tmp_path / "linking.csv", [("sonia", "MRN4471", "SONIA-0001"),
                                                  ("sonia", "MRN5582", "SONIA-0002")])
    recorder = RecordingExecutor()
    convert_stage.run(export, tmp_path / "out", Pseudonymiser(KEY, read_linking(linking)), recorder)
    kinds = [name for name, _ in recorder.sent]
    assert kinds.count("index_batch") == 1 and kinds.count("convert_patient") == 2  # one item per patient
    assert not [name for name, blob in recorder.sent if KEY in blob or KEY.hex().encode() in blob]
    for name, blob in recorder.sent:
        if name == "convert_patient":  # one patient's series: no other patient's original ID or pseudonym
            own = 0 if b"SONIA-0001" in blob else 1
            other = ("MRN5582", "SONIA-0002", "SMITH") if own == 0 else ("MRN4471", "SONIA-0001", "DOE_JANE")
            assert not [v for v in other if v.encode() in blob], name
            assert b"Pseudonymiser" not in blob and b"Linking" not in blob


def test_flow_tasks_take_no_pseudonymiser() -> None:
    """The items that index and convert (the flow's Prefect tasks) have no parameter through which the key could
    travel."""
    import inspect

    pytest.importorskip("prefect")
    from flows.tasks import TASK_NAMES
    from sonimage.stages.convert import convert_patient, index_batch

    assert {index_batch, convert_patient} <= set(TASK_NAMES)
    assert list(inspect.signature(index_batch).parameters) == ["paths", "dicom_root"]
    assert list(inspect.signature(convert_patient).parameters) == ["item", "dicom_root", "out"]
