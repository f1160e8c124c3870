"""The conversion's index records at study size (issues 14/15): records share their series' values, the flow
process pseudonymises and plans them without a second copy, and the plan is the one of the plain per-file path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sonimage.dicom.conversion import batches, input_files, plan_from_index, plan_jobs, shown_rejections
from sonimage.dicom.index import _shared, index_files, pseudonymise, read_instance
from sonimage.dicom.pseudonym import Pseudonymiser, read_linking
from sonimage.parallel import peak_rss_mb, trim_heap
from sonimage.synth.generate import generate_study


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pseudonymiser]:
    """A tiny synthetic study (patient folders named by PatientID), plus what a PACS export adds: a copy of one
    file in a folder named after the patient (identifying: shown as a keyed hash), a cut-off file, a text file."""
    site = tmp_path_factory.mktemp("index") / "site"
    generate_study(site, cohorts=("sonia",), n_patients=2, size="tiny", seed=5)
    root = site / "dicom"
    first = Path(input_files(root)[0])
    patient_folder = next(p for p in first.parents if p.parent.parent == root)
    extra = patient_folder / f"{patient_folder.name}_cd"
    extra.mkdir()
    shutil.copy(first, extra / "copy.dcm")
    (extra / "cut.dcm").write_bytes(first.read_bytes()[:600])
    (patient_folder / "notes.txt").write_text("export notes")
    return root, Pseudonymiser(b"index-test-key", read_linking(site / "site-private" / "linking.csv"))


def test_batch_records_equal_single_reads_and_share_series_values(export: tuple[Path, Pseudonymiser]) -> None:
    root, _ = export
    files = input_files(root)
    good, bad = index_files(files, root)
    assert good == [r for r in (read_instance(f, root) for f in files) if not hasattr(r, "reason")]
    assert len(bad) == 2 and len(good) == len(files) - 2
    for field in ("series_uid", "study_uid", "orientation", "pixel_spacing", "modality"):
        by_value: dict = {}
        for r in good:
            by_value.setdefault(getattr(r, field), set()).add(id(getattr(r, field)))
        assert all(len(ids) == 1 for ids in by_value.values()), field  # one object per distinct value


def test_shared_values_keep_the_sign_of_zero() -> None:
    shared = _shared({})
    assert shared((1.0, 0.0, 0.0)) == (1.0, 0.0, 0.0)
    assert repr(shared((1.0, -0.0, 0.0))) == "(1.0, -0.0, 0.0)"  # equal to the first, yet not replaced by it
    assert shared("1.2.3") is shared("".join(["1.2.", "3"]))


def test_plan_from_index_equals_the_per_file_plan_and_lets_the_batches_go(export: tuple[Path, Pseudonymiser]
                                                                          ) -> None:
    root, pseudo = export
    files = input_files(root)
    indexed = [index_files(b, root) for b in batches(files, 7)]  # series cut across batches
    good = [i for g, _ in indexed for i in g]
    bad = [r for _, b in indexed for r in b]
    plain = [pseudonymise(i, pseudo) for i in good]  # one record at a time, no shared caches
    expected = plan_jobs(plain, pseudo)
    expected_quarantine = shown_rejections(bad, plain, pseudo) + expected.quarantine
    plan = plan_from_index(indexed, pseudo)
    assert indexed == []
    assert plan.images == expected.images and plan.masks == expected.masks
    assert plan.object_rows == expected.object_rows and plan.quarantine == expected_quarantine
    shown = [r["path"] for r in plan.quarantine]
    assert any("/x-" in p and p.endswith("/copy.dcm") for p in shown)  # the identifying folder, hashed
    assert any(p.endswith("/cut.dcm") for p in shown) and any(p.endswith("/notes.txt") for p in shown)
    assert not any(pseudo.linking.subjects.keys() & set(p.split("/")) for p in shown)


def test_peak_memory_restarts_per_stage() -> None:
    block = bytearray(200 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    del block
    trim_heap()
    high = peak_rss_mb(reset=True)
    assert high >= 200 and peak_rss_mb() < high - 150
