"""Synthetic images: deterministic, resumable, lesions where the truth says, FES physiology, patient shift."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from sonimage.synth.anatomy import Grid, Tissue, label_map, make_body, place_lesions, tissue_at
from sonimage.synth.render import sphere_mask
from sonimage.synth.generate import generate_study
from sonimage.synth.tables import simulate_cohort_tables

COHORT = "sonia"
SEED = 3  # three sites (Siemens START, GE, Siemens ADMIN), liver and lung lesions


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_study(out, cohorts=(COHORT,), n_patients=3, size="tiny", seed=SEED)
    return out


def _series_dirs(study: Path) -> dict[str, Path]:
    """SeriesInstanceUID → folder, from the headers."""
    out = {}
    for folder in sorted({p.parent for p in (study / "dicom").rglob("*.dcm")}):
        ds = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        out[str(ds.SeriesInstanceUID)] = folder
    return out


def _read_pet(folder: Path, factors: list[float]) -> tuple[np.ndarray, Grid]:
    """SUV volume in InstanceNumber order (head first) and its grid, decoded with the truth factors."""
    dss = sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")), key=lambda d: int(d.InstanceNumber))
    suv = np.array([d.pixel_array * float(d.RescaleSlope) * f for d, f in zip(dss, factors)])
    x0, y0 = float(dss[0].ImagePositionPatient[0]), float(dss[0].ImagePositionPatient[1])
    dy, dx = (float(v) for v in dss[0].PixelSpacing)
    grid = Grid(x0 + dx * np.arange(dss[0].Columns), y0 + dy * np.arange(dss[0].Rows),
                np.array([float(d.ImagePositionPatient[2]) for d in dss]))
    return suv, grid


def test_same_seed_gives_identical_files_in_worker_processes_and_another_seed_does_not(study: Path,
                                                                                       tmp_path: Path) -> None:
    again = tmp_path / "again"
    with ProcessPoolExecutor(2) as pool:  # patients fan out to other processes: pickled jobs, same bytes
        generate_study(again, cohorts=(COHORT,), n_patients=3, size="tiny", seed=SEED, workers=pool)
    first, second = _tree(study), _tree(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = tmp_path / "other"
    generate_study(other, cohorts=(COHORT,), n_patients=1, size="tiny", seed=SEED + 1)
    a = pd.read_parquet(study / "truth" / COHORT / "series.parquet")
    b = pd.read_parquet(other / "truth" / COHORT / "series.parquet")
    assert not set(a.series_uid) & set(b.series_uid)


@pytest.mark.slow  # renders a study twice around a killed run (~17 s)
def test_rerun_after_crash_resumes_byte_identically(tmp_path: Path) -> None:
    out = tmp_path / "study"
    generate_study(out, cohorts=(COHORT,), n_patients=2, size="tiny", seed=5)
    before = _tree(out)
    # Simulate a crash while writing the second patient: marker gone, a file half written, a temp file left.
    (out / "truth" / COHORT / "done" / "SONIA-0002.json").unlink()
    linking = pd.read_csv(out / "site-private" / "linking.csv", dtype=str).set_index("subject_id")
    victim = out / "dicom" / COHORT / linking.loc["SONIA-0002", "PatientID"]
    some = sorted(victim.rglob("*.dcm"))[3]
    some.write_bytes(some.read_bytes()[:100])
    (some.parent / ".IM-temp.dcm.tmp").write_bytes(b"partial")
    summary = generate_study(out, cohorts=(COHORT,), n_patients=2, size="tiny", seed=5)
    assert summary.n_generated == 1
    assert _tree(out) == before
    # Another cohort size draws other patients: stale folders and markers go, the tree is as if made afresh.
    generate_study(out, cohorts=(COHORT,), n_patients=1, size="tiny", seed=5)
    fresh = tmp_path / "fresh"
    generate_study(fresh, cohorts=(COHORT,), n_patients=1, size="tiny", seed=5)
    assert _tree(out) == _tree(fresh)


def test_rtstruct_contours_rasterise_to_the_readers_mask_not_the_truth(study: Path) -> None:
    from matplotlib.path import Path as Polygon

    lesions = pd.read_parquet(study / "truth" / COHORT / "lesions.parquet")
    series = pd.read_parquet(study / "truth" / COHORT / "series.parquet").set_index("series_uid")
    dirs = _series_dirs(study)
    checked = 0
    for rt_uid, group in lesions.groupby("rtstruct_series_uid"):
        rt = pydicom.dcmread(next(dirs[rt_uid].glob("*.dcm")))
        pet_uid = str(rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
                      .RTReferencedSeriesSequence[0].SeriesInstanceUID)
        assert pet_uid == group.fdg_series_uid.iloc[0]
        _, grid = _read_pet(dirs[pet_uid], series.loc[pet_uid, "suv_factors"])
        pet_sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): k for k, p in
                    enumerate(sorted(dirs[pet_uid].glob("*.dcm")))}
        names = {int(r.ROINumber): str(r.ROIName) for r in rt.StructureSetROISequence}
        yy, xx = np.meshgrid(grid.ys, grid.xs, indexing="ij")
        centres = np.column_stack([xx.ravel(), yy.ravel()])
        for roi in rt.ROIContourSequence:
            mask = np.zeros(grid.shape, dtype=bool)
            for contour in roi.ContourSequence:
                assert contour.ContourGeometricType == "CLOSED_PLANAR"
                assert str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID) in pet_sops
                pts = np.array(contour.ContourData, dtype=float).reshape(-1, 3)
                k = int(np.argmin(np.abs(grid.zs - pts[0, 2])))
                inside = Polygon(pts[:, :2]).contains_points(centres).reshape(mask.shape[1:])
                mask[k] ^= inside
            number = int(roi.ReferencedROINumber)
            row = group[group.roi_name == names[number]].iloc[0]
            assert number == row.lesion_id  # ROI number = the lesion number of the record form
            centre = row[["fdg_centre_x_mm", "fdg_centre_y_mm", "fdg_centre_z_mm"]].to_numpy(float)
            offset = row[["reader_offset_x_mm", "reader_offset_y_mm", "reader_offset_z_mm"]].to_numpy(float)
            expected = sphere_mask(grid, centre + offset, float(row.reader_diameter_mm)).full(grid.shape)
            assert np.array_equal(mask, expected), row.roi_name
            assert mask.sum() == row.reader_n_voxels
            assert row.reader_volume_ml == pytest.approx(mask.sum() * np.prod(grid.spacing) / 1000.0)
            checked += 1
    drawn = lesions[lesions.reader_drawn]
    assert checked == len(drawn) > 0 and lesions.roi_name.isna().equals(~lesions.reader_drawn)
    assert (drawn.reader_diameter_mm != drawn.diameter_mm).any()  # delineation error is recorded


def test_fes_liver_is_hot_and_liver_lesions_are_not_evaluable(study: Path) -> None:
    patients = pd.read_parquet(study / "truth" / COHORT / "patients.parquet").set_index("subject_id")
    series = pd.read_parquet(study / "truth" / COHORT / "series.parquet")
    lesions = pd.read_parquet(study / "truth" / COHORT / "lesions.parquet")
    cohort = simulate_cohort_tables(COHORT, seed=SEED).lesions
    for table in (lesions, cohort):
        assert (table.organ == "liver").any(), "expected liver lesions"
        assert not table.loc[table.organ == "liver", "fes_evaluable"].any()
    dirs = _series_dirs(study)
    for row in series[series.modality == "PT"].itertuples():
        suv, grid = _read_pet(dirs[row.series_uid], row.suv_factors)
        p = patients.loc[row.subject_id]
        labels = label_map(make_body(p.height_cm, p.weight_kg), grid.shifted(np.array(
            [row.shift_x_mm, row.shift_y_mm, row.shift_z_mm])))
        liver = np.median(suv[labels == Tissue.LIVER])
        muscle = np.median(suv[labels == Tissue.SOFT])
        if row.tracer == "FES":
            assert 6.0 < liver < 16.0 and muscle < 1.5
        else:
            assert 1.5 < liver < 4.0 and np.median(suv[labels == Tissue.BRAIN]) > 4.0


def test_patient_moves_rotates_and_deforms_between_fdg_and_fes(study: Path) -> None:
    """The recorded motion maps every FDG lesion centre (after the table shift) onto its FES centre; a single
    translation cannot (rotation), so a translation-only registration misplaces lesions."""
    from sonimage.synth.render import Motion

    lesions = pd.read_parquet(study / "truth" / COHORT / "lesions.parquet")
    series = pd.read_parquet(study / "truth" / COHORT / "series.parquet")
    dirs = _series_dirs(study)
    worst = []
    for subject, group in lesions.groupby("subject_id"):
        ct = series[(series.subject_id == subject) & (series.modality == "CT")].set_index("tracer")
        shift = ct.loc["FES", ["shift_x_mm", "shift_y_mm", "shift_z_mm"]].to_numpy(float) - \
            ct.loc["FDG", ["shift_x_mm", "shift_y_mm", "shift_z_mm"]].to_numpy(float)
        doc = json.loads(ct.loc["FES", "motion"])
        motion = Motion(tuple(doc["centre_mm"]), tuple(doc["angles_deg_xyz"]),
                        tuple(map(tuple, doc["displacement_amplitudes_mm"])),
                        tuple(map(tuple, doc["displacement_frequencies_per_mm"])), tuple(doc["displacement_phases"]))
        fdg = group[["fdg_centre_x_mm", "fdg_centre_y_mm", "fdg_centre_z_mm"]].to_numpy()
        fes = group[["fes_centre_x_mm", "fes_centre_y_mm", "fes_centre_z_mm"]].to_numpy()
        np.testing.assert_allclose(motion.forward(fdg + shift), fes, atol=1e-6)
        np.testing.assert_allclose(motion.inverse(fes), fdg + shift, atol=1e-3)
        assert 1.0 <= np.abs(doc["angles_deg_xyz"][2]) <= 3.0 and ct.loc["FDG", "motion"] == ""
        move = fes - fdg
        worst.append(np.linalg.norm(move - move.mean(axis=0), axis=1).max())
        # The body outline on the CTs moved in-plane as the motion moves the body's centroid (8 mm pixels; the
        # deformation, up to 2.5 mm, and the field of view's crop make the centroid approximate).
        centroids = []
        for tracer in ("FDG", "FES"):
            dss = [pydicom.dcmread(p) for p in sorted(dirs[ct.loc[tracer, "series_uid"]].glob("*.dcm"))]
            body = np.array([d.pixel_array.astype(float) - 1024 > -500 for d in dss])
            dy, dx = (float(v) for v in dss[0].PixelSpacing)
            x0, y0 = (float(v) for v in dss[0].ImagePositionPatient[:2])
            kk, jj, ii = np.nonzero(body)
            zs = np.array([float(d.ImagePositionPatient[2]) for d in dss])
            centroids.append(np.array([x0 + ii.mean() * dx, y0 + jj.mean() * dy, zs[kk].mean()]))
        expected = motion.forward((centroids[0] + shift)[None, :])[0] - centroids[0]
        assert np.allclose(centroids[1][:2] - centroids[0][:2], expected[:2], atol=4.0)
    assert max(worst) > 3.0  # the best single translation leaves a lesion more than 3 mm off


def test_lesions_sit_inside_their_organs_without_overlap() -> None:
    body = make_body(172.0, 58.0)
    organs = ["liver", "liver", "lung", "lung", "bone", "bone", "bone", "lymph_node", "lymph_node"]
    diameters = [30.0, 15.0, 12.0, 20.0, 25.0, 10.0, 18.0, 15.0, 9.0]
    centres = place_lesions(body, organs, diameters, np.random.default_rng(3))
    want = {"liver": Tissue.LIVER, "lung": Tissue.LUNG, "bone": Tissue.BONE}
    tissues = tissue_at(body, centres)
    for organ, tissue in zip(organs, tissues):
        assert tissue == want.get(organ, Tissue.SOFT) or (organ == "lymph_node" and tissue == Tissue.FAT)
    gaps = [np.linalg.norm(centres[i] - centres[j]) - (diameters[i] + diameters[j]) / 2
            for i in range(len(organs)) for j in range(i)]
    assert min(gaps) > 0
    assert np.all(centres[:, 2] - np.array(diameters) / 2 >= -body.length_mm)
    with pytest.raises(ValueError, match="unknown lesion organ"):
        place_lesions(body, ["brain"], [10.0], np.random.default_rng(0))


def test_lesion_uptake_is_heterogeneous(study: Path) -> None:
    """Necrotic core and gradient: SUVmax > SUVmean, the analytic mean of the profile matches the voxels, and the
    truth keeps the rendered statistics (on FDG never above the profile's SUVmax; the FES day is resampled through
    the motion, so its sphere may take in neighbouring uptake)."""
    from sonimage.synth.render import lesion_profile

    grid = Grid.centred(80, 1.0, np.arange(40.0, -40.0, -1.0))
    mask = sphere_mask(grid, np.zeros(3), 30.0)
    p = lesion_profile(grid, mask, np.zeros(3), 30.0, 0.5, 0.2, 0.4, np.array([1.0, 0.0, 0.0]))
    assert 0.97 < p.max() <= 1.0 and p.min() < 0.2
    assert p.mean() == pytest.approx((0.2 * 0.125 + 0.875) / 1.4, rel=0.02)
    lesions = pd.read_parquet(study / "truth" / COHORT / "lesions.parquet")
    assert (lesions["fdg_true_suvmax"] <= lesions["fdg_suv"] + 1e-3).all()
    for t in ("fdg", "fes"):
        assert (lesions[f"{t}_true_suvmean"] <= lesions[f"{t}_true_suvmax"] + 1e-6).all()
    # partial volume: the noise-free scanner image's maximum in the mask is below the true uptake of hot lesions
    hot = lesions[lesions.fdg_true_suvmax > 3.0]
    assert len(hot) and (hot.fdg_expected_suvmax < hot.fdg_true_suvmax).all()


def test_truth_scores_a_reading_against_the_er_class(study: Path) -> None:
    """Per lesion the ER class, the uptake set and the noise-free measurement truth; per patient the truth over
    the reader's lesions and over all, with the patient table's missing-value rules; recovery and the
    heterogeneity-outcome estimands in truth.json."""
    truth = study / "truth" / COHORT
    lesions = pd.read_parquet(truth / "lesions.parquet")
    for col in ("er_positive", "fes_true_suv", "fes_expected_suvmax", "fdg_expected_suvmax", "reader_drawn"):
        assert lesions[col].notna().all(), col
    assert (lesions.fes_positive == (lesions.fes_evaluable & lesions.er_positive)).all()
    patients = pd.read_parquet(truth / "patients.parquet").set_index("subject_id")
    for subject, group in lesions.groupby("subject_id"):
        drawn = group[group.reader_drawn & group.fes_evaluable]
        p = patients.loc[subject]
        assert p.drawn_n_lesions == group.reader_drawn.sum() and p.drawn_n_fes_evaluable == len(drawn)
        assert p.drawn_n_fes_positive == drawn.er_positive.sum()
        assert p.undrawn_n_lesions == (~group.reader_drawn).sum()
        if len(drawn):
            assert p.drawn_any_fes_negative == (not drawn.er_positive.all())
        else:
            assert pd.isna(p.drawn_any_fes_negative) and np.isnan(p.drawn_fes_positive_fraction)
    features = pd.read_parquet(truth / "features" / "lesions.parquet")
    assert {"er_positive", "fes_true_suv", "fes_expected_suvmax", "reader_drawn"} <= set(features.columns)
    doc = json.loads((truth / "truth.json").read_text())
    rec = doc["recovery"]
    assert rec["size"] == "tiny" and rec["earl1_compliant"] is False and len(rec["rc_max"]) == 6
    assert set(doc["heterogeneity_outcome"]) >= {"any_fes_negative", "cdk46i:any_fes_negative"}
