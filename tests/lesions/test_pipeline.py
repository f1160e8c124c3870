"""Lesion features over converted synthetic scans follow the generator's ground truth."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sonimage.dicom.pseudonym import Pseudonymiser, read_linking
from sonimage.lesions.jobs import patient_lesions
from sonimage.lesions.registration import Rigid
from sonimage.lesions.reuse import input_key, load_readings, read_reuse_summary
from sonimage.settings import METADATA_KEY, Settings
from sonimage.stages import convert as convert_stage, extract as extract_stage
from sonimage.stages.extract import extract_patient, lesion_from_stores, plan_patients, prepare_patient, read_patient
from sonimage.synth.generate import generate_study
from sonimage.tables.patients import CALLS, patient_metrics

pytestmark = pytest.mark.slow  # renders, converts and reads a synthetic study (~75 s)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], pd.DataFrame]:
    base = tmp_path_factory.mktemp("lesions")
    generate_study(base / "study", cohorts=("sonia",), n_patients=2, size="small", seed=5)
    pseudo = Pseudonymiser(b"k", read_linking(base / "study" / "site-private" / "linking.csv"))
    convert_stage.run(base / "study" / "dicom", base / "out", pseudo)
    scans, notes = plan_patients(base / "out")
    assert not notes and len(scans) == 2
    paths = extract_stage.run(base / "out")
    for path in paths.values():  # every table records the run's settings
        assert Settings.from_json(pq.read_schema(path).metadata[METADATA_KEY.encode()].decode()) == Settings()
    records = pd.read_parquet(paths["registration"]).to_dict("records")
    return base, records, pd.read_parquet(paths["lesions"])


def _lesion_centres(base: Path, records: list[dict]) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Per patient: its registration record, and the true FDG-day and FES-day lesion centres (mm)."""
    truth = pd.read_parquet(base / "study" / "truth" / "sonia" / "lesions.parquet")
    out = []
    for rec in records:
        les = truth[truth.subject_id == rec["patient"]]
        out.append((rec, les[[f"fdg_centre_{a}_mm" for a in "xyz"]].to_numpy(float),
                    les[[f"fes_centre_{a}_mm" for a in "xyz"]].to_numpy(float)))
    return out


def test_rigid_registration_maps_lesions_onto_their_fes_position(pipeline: tuple) -> None:
    """The FES day rotates and mildly deforms the patient (truth: series 'motion'); the rigid CT registration
    carries every true FDG-day lesion centre to within a few mm of its true FES-day centre."""
    base, records, _ = pipeline
    for rec, fdg, fes in _lesion_centres(base, records):
        transform = Rigid.from_record(rec).transform()
        mapped = np.array([transform.TransformPoint(tuple(p)) for p in fdg])
        error = np.linalg.norm(mapped - fes, axis=1)
        assert np.median(error) < 2.0 and error.max() < 4.0, (rec["patient"], error.round(2).tolist())


def test_translation_only_registration_misplaces_lesions_after_rotation(pipeline: tuple) -> None:
    """A translation alone (the rigid transform's displacement of the body centre) leaves lesions far from the
    centre several mm off their true FES position: the rotation matters."""
    base, records, _ = pipeline
    worst = []
    for rec, fdg, fes in _lesion_centres(base, records):
        rigid = Rigid.from_record(rec)
        shift = np.subtract(rigid.transform().TransformPoint(rigid.centre), rigid.centre)
        worst.append(np.linalg.norm(fdg + shift - fes, axis=1).max())
    assert max(worst) > 4.0, worst


def test_every_drawn_lesion_has_fdg_and_fes_values_near_truth(pipeline: tuple) -> None:
    """Lesions are matched by ROI name (the reader may miss lesions, so the k-th ROI is not lesion k); the MTV is
    the reader's contour, not the true lesion."""
    base, _, summary = pipeline
    truth = pd.read_parquet(base / "study" / "truth" / "sonia" / "lesions.parquet")
    drawn = truth[truth.reader_drawn]
    both = summary.merge(drawn, left_on=["patient", "roi"], right_on=["subject_id", "roi_name"])
    assert len(both) == len(drawn) == len(summary)
    assert (both.organ_x == both.organ_y).all()
    assert np.allclose(both.fdg_mtv_ml, both.reader_volume_ml, rtol=1e-6)  # the contour gives back the reader's voxels
    assert not np.allclose(both.fdg_mtv_ml, both.volume_ml_y, rtol=0.05)  # ... which differ from the truth
    big = both[(both.diameter_mm >= 20) & (both.reader_dice > 0.7)]
    # against the noise-free image's max in the true mask (at `small` partial volume is physical: a 20 mm lesion's
    # SUVmax recovers ~0.8 of its true uptake, less with a gradient); the rest is noise and the reader's contour
    assert len(big) and np.allclose(big.fdg_suvmax, big.fdg_expected_suvmax, rtol=0.35)


def test_patient_patterns_from_images(pipeline: tuple) -> None:
    _, _, summary = pipeline
    metrics = patient_metrics(summary)
    assert set(metrics.fes_pattern) <= {"all positive", "mixed", "all negative", "not evaluable"}
    assert (metrics.n_lesions == summary.groupby("patient").size().values).all()
    assert set(summary.fes_call) <= set(CALLS)  # every lesion's FES call, with what it rests on
    read = summary[summary.fes_call != "not evaluable"]
    assert read.fes_rc.between(0.0, 1.0).all() and (read.fes_diameter_mm > 0).all()
    assert (read.fes_background_p95 >= read.fes_background_median).all()


def test_patient_task_reads_the_same_boxes_as_the_stores(pipeline: tuple) -> None:
    """The per-patient lesion stage (scans read once, boxes sliced in memory) gives every lesion the features and
    delineations that reading its box from the Zarr stores gives, FDG lesions first."""
    base, _, _ = pipeline
    scans, _ = plan_patients(base / "out")
    settings = Settings()
    readings, record, _ = patient_lesions(scans[0], read_patient(scans[0], base / "out"), settings.features,
                                          settings.delineation, settings.fes_reading, settings.fes)
    jobs, planned = prepare_patient(scans[0], base / "out")
    from_stores = [lesion_from_stores(job, base / "out") for job in jobs]
    assert [r.ids for r in readings] == [r.ids for r in from_stores]
    assert {r.ids["tracer"] for r in readings} == {"FDG", "FES"}
    assert repr([r.features for r in readings]) == repr([r.features for r in from_stores])  # NaN-safe, exact
    assert repr([r.delineations for r in readings]) == repr([r.delineations for r in from_stores])
    assert record["ncc"] == planned["ncc"] and len(record["lesions"]) == len(planned["lesions"])


def test_patient_stage_hands_back_a_path_not_its_readings(pipeline: tuple, tmp_path: Path) -> None:
    """A patient's lesion stage writes its readings where it runs and returns their path with its record, a
    small fraction of the readings' size; the file holds exactly what the stage computed, and a rerun with the
    same inputs returns the same path and record without computing or reading the readings."""
    base, _, _ = pipeline
    out = tmp_path / "out"
    shutil.copytree(base / "out", out)
    shutil.rmtree(out / "features" / "reuse")
    scans, _ = plan_patients(out)
    settings = Settings()
    done = extract_patient(scans[0], out, settings)
    readings, record, _ = patient_lesions(scans[0], read_patient(scans[0], out), settings.features,
                                          settings.delineation, settings.fes_reading, settings.fes)
    assert done.results == f"features/reuse/sonia/{scans[0].patient}.pickle" and not done.reused
    assert repr(load_readings(out, done.results)) == repr(readings) and done.record == record
    assert len(pickle.dumps(done)) * 10 < len(pickle.dumps(readings))
    again = extract_patient(scans[0], out, settings)
    assert again.reused and again.results == done.results and again.record == record
    # a file of the earlier layout (one pickled dict, readings inside), though its key matches: computed again
    key = input_key(scans[0], out, settings)
    (out / done.results).write_bytes(pickle.dumps({"key": key, "readings": readings, "record": record}))
    redone = extract_patient(scans[0], out, settings)
    assert not redone.reused and repr(load_readings(out, redone.results)) == repr(readings)


def test_warm_up_compiles_every_kernel_the_lesion_stage_calls(pipeline: tuple, tmp_path: Path) -> None:
    """``python -m sonimage.lesions.warmup`` (run by ``make install``) fills an empty Numba cache; a later process
    running a real patient's lesion stage on that cache compiles nothing more (its cache files are the same)."""
    base, _, _ = pipeline
    out = tmp_path / "out"
    shutil.copytree(base / "out", out)
    shutil.rmtree(out / "features" / "reuse")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    subprocess.run([sys.executable, "-m", "sonimage.lesions.warmup"], env=env, check=True, capture_output=True)
    warmed = sorted(p.name for p in (tmp_path / "numba").rglob("*") if p.is_file())
    assert sum(name.endswith(".nbc") for name in warmed) >= 20  # compiled machine code, one file per signature
    stage = ("import sys; from pathlib import Path; from sonimage.stages.extract import extract_patient, "
             "plan_patients; out = Path(sys.argv[1]); scans, _ = plan_patients(out); "
             "assert all(extract_patient(s, out).results for s in scans)")
    subprocess.run([sys.executable, "-c", stage, str(out)], env=env, check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "numba").rglob("*") if p.is_file()) == warmed


def _tables(paths: dict[str, str]) -> dict[str, bytes]:
    return {name: Path(p).read_bytes() for name, p in paths.items()}


def test_feature_stage_reuses_patients_whose_inputs_and_settings_are_unchanged(
        pipeline: tuple[Path, list[dict], pd.DataFrame], tmp_path: Path) -> None:
    base, _, _ = pipeline
    out = tmp_path / "out"
    shutil.copytree(base / "out", out)
    first = extract_stage.run(out)
    assert read_reuse_summary(out) == {"computed": 0, "reused": 2}  # the fixture's run left its results
    caches = sorted((out / "features" / "reuse" / "sonia").glob("*.pickle"))
    caches[0].unlink()  # as for a patient delivered since: computed, the other reused, the same tables
    again = extract_stage.run(out)
    assert read_reuse_summary(out) == {"computed": 1, "reused": 1} and _tables(again) == _tables(first)
    store = next(p for p in (out / "volumes").rglob("zarr.json") if caches[1].stem in str(p))
    meta = json.loads(store.read_text())
    meta["attributes"]["content_hmac_sha256"] = "0" * 64  # that patient's series converted again from other bytes
    store.write_text(json.dumps(meta))
    extract_stage.run(out)
    assert read_reuse_summary(out) == {"computed": 1, "reused": 1}
    other = Settings.from_json(json.dumps({"fes": {"threshold": 1.8}}))
    extract_stage.run(out, settings=other)
    assert read_reuse_summary(out) == {"computed": 2, "reused": 0}
