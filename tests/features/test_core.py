"""extract_features, PET metrics, Moran/Geary against brute force, robustness, and the feature table."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from sonimage.features import local_intensity, morphology, pet
from sonimage.features.base import Feature, FeatureSettings, Roi, record_templates
from sonimage.features.families import ALL_FAMILIES, FeatureInputError, extract_features
from sonimage.features.table import LesionFeatures, column_name, feature_table, read_dictionary, write_table

SETTINGS = FeatureSettings(bin_width=0.5)


def ellipsoid(shape: tuple[int, int, int], radii: tuple[float, float, float]) -> np.ndarray:
    zz, yy, xx = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    return (zz / radii[0]) ** 2 + (yy / radii[1]) ** 2 + (xx / radii[2]) ** 2 <= 1.0


def brute_force_moran_geary(image: np.ndarray, mask: np.ndarray, spacing) -> tuple[float, float]:
    pos = np.argwhere(mask) * np.asarray(spacing)
    x = image[mask].astype(float)
    d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
    w = np.where(d > 0, 1 / np.where(d > 0, d, 1), 0.0)
    dev = x - x.mean()
    n = x.size
    moran = n / w.sum() * (w * np.outer(dev, dev)).sum() / (dev**2).sum()
    geary = (n - 1) / (2 * w.sum()) * (w * (x[:, None] - x[None]) ** 2).sum() / (dev**2).sum()
    return moran, geary


def test_moran_geary_exact_against_all_pairs():
    """The FFT pair sums equal the O(n²) IBSI definition on an irregular ROI with anisotropic voxels."""
    rng = np.random.default_rng(3)
    image = rng.normal(5, 2, (7, 9, 8))
    mask = rng.random((7, 9, 8)) < 0.4
    spacing = (3.0, 1.5, 2.0)
    moran, geary, reason = morphology.spatial_autocorrelation(image, mask, spacing)
    ref_moran, ref_geary = brute_force_moran_geary(image, mask, spacing)
    assert reason == ""
    assert moran == pytest.approx(ref_moran, rel=1e-5, abs=1e-7)
    assert geary == pytest.approx(ref_geary, rel=1e-5)


def test_mesh_volume_area_and_hull_equal_the_marching_cubes_mesh():
    """Volume and area from the per-configuration tables, and the convex hull of the line-end points, equal those
    of scikit-image's marching-cubes mesh on random masks (ambiguous cubes, holes, anisotropic voxels)."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist
    from skimage.measure import marching_cubes

    rng = np.random.default_rng(5)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(2, 9, 3))
        mask = rng.random(shape) < rng.uniform(0.2, 0.9)
        if mask.sum() < 4:
            continue
        spacing = tuple(float(s) for s in rng.uniform(0.5, 3.0, 3))
        verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, spacing=spacing)
        a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
        volume, area = morphology.mesh_volume_area(mask, spacing)
        assert volume == pytest.approx(abs(np.einsum("ij,ij->", a, np.cross(b, c))) / 6, rel=1e-12)
        assert area == pytest.approx(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum(), rel=1e-12)
        hull = ConvexHull(verts)
        volume, area, diameter = morphology.convex_hull_measures(mask, spacing)
        assert volume == pytest.approx(hull.volume, rel=1e-12)
        assert area == pytest.approx(hull.area, rel=1e-12)
        assert diameter == pytest.approx(pdist(verts).max(), rel=1e-12)


@pytest.mark.parametrize("kind", ["scattered", "lattice", "crowded"])
def test_exact_quickhull_equals_qhull(kind):
    """The exact-arithmetic Quickhull gives Qhull's volume and area, keeps every point inside or on its faces,
    has every extreme point among its vertices and finds the widest pair, on integer points with many coplanar and
    collinear ones; coplanar points give no hull."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    from sonimage.features.kernels import hull_measures, lattice_hull

    rng = np.random.default_rng(8)
    for _ in range(40):
        if kind == "scattered":
            points = rng.integers(-20, 20, size=(int(rng.integers(4, 300)), 3))
        elif kind == "lattice":
            points = np.argwhere(rng.random((6, 7, 5)) < 0.5)
        else:
            points = rng.integers(-3, 4, size=(int(rng.integers(10, 200)), 3))
        points = points.astype(np.float64)
        scale = rng.uniform(0.5, 1.5, 3)
        triangles, is_vertex = lattice_hull(points)
        volume, area, diameter = hull_measures(points, triangles, is_vertex, scale)
        hull = ConvexHull(points * scale)
        assert volume == pytest.approx(hull.volume, rel=1e-12)
        assert area == pytest.approx(hull.area, rel=1e-12)
        assert diameter == pytest.approx(pdist(points * scale).max(), rel=1e-14)
        corners = points[triangles]
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        assert (points @ normal.T <= np.einsum("ij,ij->i", normal, corners[:, 0])).all()
        extreme = {tuple(p) for p in points[ConvexHull(points).vertices]}  # as points: crowded ones repeat
        assert extreme <= {tuple(p) for p in points[is_vertex]}
    flat = np.column_stack((rng.integers(0, 9, (30, 2)), np.zeros(30))).astype(np.float64)
    assert lattice_hull(flat)[0].size == 0


def test_peaks_truncate_at_the_image_border_and_take_the_highest_tie():
    """Sphere means average only existing voxels; of two equally hot voxels the higher sphere mean wins."""
    image = np.ones((9, 9, 9))
    image[0, 4, 4] = 10.0  # hottest voxel on the border
    image[6, 4, 4] = 10.0  # equally hot, inside, with a warm neighbourhood
    image[5:8, 3:6, 3:6] += 1.0
    mask = np.zeros_like(image, dtype=bool)
    mask[0:8, 4, 4] = True
    spacing = (2.0, 2.0, 2.0)
    kernel = local_intensity.sphere_kernel(spacing, 1.0)
    r = kernel.shape[0] // 2
    offsets = np.argwhere(kernel) - r
    def manual(k, j, i):
        pts = offsets + (k, j, i)
        ok = np.all((pts >= 0) & (pts < 9), axis=1)
        return image[tuple(pts[ok].T)].mean()
    local, glob = local_intensity.peaks(Roi(image, mask, spacing), 1.0)
    assert manual(0, 4, 4) < manual(6, 4, 4)
    assert local == pytest.approx(manual(6, 4, 4))
    assert glob == pytest.approx(max(manual(k, 4, 4) for k in range(8)))
    assert local_intensity.peak_radius_mm(1.0) == pytest.approx(6.2035, abs=1e-4)


def test_pet_metrics_and_sul_scale():
    """SUVmax/mean, MTV in mL, TLG = SUVmean × MTV, PERCIST peak ≥ IBSI peak, SUL = SUV × ratio; no SUL without it."""
    rng = np.random.default_rng(0)
    image = rng.gamma(4.0, 1.0, (20, 20, 20))
    mask = ellipsoid((20, 20, 20), (6, 5, 4))
    roi = Roi(image, mask, (2.0, 4.0, 4.0))
    suv = {f.name: f.value for f in pet.compute(roi, SETTINGS)}
    both = {f.name: f.value for f in pet.compute(roi, SETTINGS, sul_ratio=0.8)}
    assert not any(name.startswith("SUL") for name in suv)
    assert suv["SUVmax"] == pytest.approx(image[mask].max())
    assert suv["MTV (mL)"] == pytest.approx(mask.sum() * 32 / 1000)
    assert suv["TLG SUV"] == pytest.approx(image[mask].mean() * mask.sum() * 0.032)
    assert suv["SUVpeak PERCIST"] >= suv["SUVpeak"]
    for key in ("max", "mean", "peak", "peak PERCIST"):
        assert both[f"SUL{key}"] == pytest.approx(0.8 * suv[f"SUV{key}"])
    with pytest.raises(ValueError, match="sul_ratio"):
        pet.compute(roi, SETTINGS, sul_ratio=0.0)


def test_empty_mask_and_nan_inside_are_clear_errors():
    image = np.ones((5, 5, 5))
    with pytest.raises(FeatureInputError, match="empty mask"):
        extract_features(Roi(image, np.zeros((5, 5, 5), bool), (1.0, 1.0, 1.0)), SETTINGS)
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 1:4] = True
    image[2, 2, 2] = np.nan
    with pytest.raises(FeatureInputError, match="1 of 3 lesion voxels are NaN"):
        extract_features(Roi(image, mask, (1.0, 1.0, 1.0)), SETTINGS)
    with pytest.raises(FeatureInputError, match="unknown feature family"):
        extract_features(Roi(np.ones((5, 5, 5)), mask, (1.0, 1.0, 1.0)), SETTINGS, families=("shape",))


def test_two_voxel_lesion_robust_deviation_is_nan_with_reason():
    """Linear percentiles of two values leave no voxel in [P10, P90]: robust MAD is NaN with a reason."""
    image = np.zeros((3, 3, 3))
    image[1, 1, 0], image[1, 1, 1] = 1.0, 2.0
    mask = image > 0
    feats = {f.name: f for f in extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ("statistics",))}
    robust = feats["Intensity-based robust mean absolute deviation"]
    assert np.isnan(robust.value) and "10th and 90th" in robust.reason
    assert feats["Intensity-based mean absolute deviation"].value == pytest.approx(0.5)


def test_nan_outside_the_mask_only_shrinks_the_peak_sphere():
    image = np.full((7, 7, 7), 2.0)
    image[3, 3, 3] = 5.0
    image[3, 3, 4] = np.nan
    mask = np.zeros_like(image, dtype=bool)
    mask[3, 3, 3] = True
    feats = {f.name: f.value for f in extract_features(Roi(image, mask, (4.0, 4.0, 4.0)), SETTINGS, ("pet",))}
    # 1 cm³ sphere (r 6.2 mm) on 4 mm voxels: centre, 6 face and 12 edge neighbours (5.7 mm), one of them NaN
    assert feats["SUVpeak"] == pytest.approx((5.0 + 17 * 2.0) / 18)


def test_one_voxel_lesion_gives_values_or_reasons_for_every_family():
    rng = np.random.default_rng(1)
    image = rng.normal(3, 1, (9, 9, 9))
    mask = np.zeros_like(image, dtype=bool)
    mask[4, 4, 4] = True
    feats = extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ALL_FAMILIES)
    assert {f.family for f in feats} == set(ALL_FAMILIES)
    nan = [f for f in feats if not np.isfinite(f.value)]
    assert nan and all(f.reason for f in nan), [f.name for f in nan if not f.reason]
    by_name = {(f.family, f.name): f.value for f in feats}
    assert by_name[("morphology", "Volume (voxel counting)")] == pytest.approx(8.0)
    assert np.isnan(by_name[("morphology", "Moran’s I index")])


def test_large_ellipsoid_runs_in_bounded_memory():
    """A 100k+ voxel lesion completes for every family, Moran's I included (no pair matrix)."""
    mask = ellipsoid((64, 72, 80), (31, 35, 39))
    assert mask.sum() > 100_000
    rng = np.random.default_rng(2)
    image = 2.0 + mask * 3.0 + rng.normal(0, 0.5, mask.shape)
    feats = extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ALL_FAMILIES)
    values = {(f.family, f.name): f.value for f in feats}
    assert values[("morphology", "Volume (mesh)")] == pytest.approx(mask.sum() * 8.0, rel=0.02)
    assert np.isfinite(values[("morphology", "Moran’s I index")])
    assert values[("pet", "MTV (mL)")] == pytest.approx(mask.sum() * 8 / 1000)


def test_column_names_are_sql_friendly_and_unique():
    assert column_name(Feature("glcm", "Joint maximum", "GYBY", 1.0, "3D, averaged")) == "glcm_joint_maximum__gyby__3d_avg"
    assert column_name(Feature("glcm", "Joint maximum", "GYBY", 1.0, "2.5D, direction-merged")) == \
        "glcm_joint_maximum__gyby__2_5d_dmrg"
    assert column_name(Feature("morphology", "Moran’s I index", "N365", 1.0)) == "morphology_morans_i_index__n365"
    assert column_name(Feature("pet", "MTV (mL)", "", 1.0)) == "pet_mtv_ml"
    image = np.random.default_rng(4).gamma(3.0, 1.0, (12, 12, 12))
    mask = ellipsoid((12, 12, 12), (4, 5, 5))
    feats = extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ALL_FAMILIES, ("2D", "2.5D", "3D"))
    names = [column_name(f) for f in feats]
    assert len(set(names)) == len(names)
    assert all(n.replace("_", "").isalnum() and n == n.lower() and not n[0].isdigit() for n in names)


def test_one_code_per_feature_and_aggregation():
    """No two columns of the IBSI families share an IBSI code and aggregation (the discretised 10th and 90th
    percentiles are GPMT and OZ0C, the minimum alone 1PR8, with the manual's misprint noted in the dictionary).
    Exceptions, both by definition: IBSI's parameterised IVH features (BC2M = V_x, GBPN = I_x, one column per
    fraction) and the PET family, which restates IBSI features (SUVmax = 84IY, ...) under PET names, the same values."""
    image = np.random.default_rng(4).gamma(3.0, 1.0, (12, 12, 12))
    mask = ellipsoid((12, 12, 12), (4, 5, 5))
    feats = extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ALL_FAMILIES, ("2D", "2.5D", "3D"))
    _, dictionary = feature_table([LesionFeatures({"lesion": 1}, feats)], SETTINGS)
    coded = dictionary[(dictionary.code != "") & (dictionary.family != "pet")]
    shared = coded[coded.duplicated(["code", "aggregation"], keep=False)]
    assert sorted(shared.code.unique()) == ["BC2M", "GBPN"] and len(shared) == 4
    codes = dictionary[dictionary.family == "histogram"].set_index("name").code
    assert codes["Minimum discretised intensity"] == "1PR8"
    assert codes["10th discretised intensity percentile"] == "GPMT"
    assert codes["90th discretised intensity percentile"] == "OZ0C"
    notes = dictionary[dictionary.note != ""]
    assert sorted(notes.code) == ["GPMT", "OZ0C"] and notes.note.str.contains("misprints it as 1PR8").sum() == 1
    values = {(f.family, f.code): f.value for f in feats if f.code}
    for f in feats:
        if f.family == "pet" and f.code:
            ibsi = "statistics" if f.code in ("84IY", "Q4LE") else "local_intensity"
            assert values[(ibsi, f.code)] == pytest.approx(f.value)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_table_one_row_per_lesion_with_dictionary_and_settings(tmp_path, suffix):
    image = np.random.default_rng(5).gamma(3.0, 1.0, (12, 12, 12))
    mask = ellipsoid((12, 12, 12), (4, 5, 5))
    feats = extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ("statistics", "pet", "glcm"))
    lesions = [LesionFeatures({"patient": "P01", "lesion": 1}, feats),
               LesionFeatures({"patient": "P01", "lesion": 2}, error="empty mask")]
    table, dictionary = feature_table(lesions, SETTINGS)
    assert list(table.columns[:4]) == ["patient", "lesion", "error", "nan_reasons"]
    assert len(table) == 2 and table.loc[1, "error"] == "empty mask"
    assert np.isnan(table.loc[1, "statistics_mean_intensity__q4le"])
    assert table.loc[0, "setting_bin_width"] == 0.5
    assert set(dictionary.column) == {column_name(f) for f in feats}
    out = write_table(table, dictionary, tmp_path / f"features{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    if suffix == ".parquet":
        back = pd.read_parquet(out)
        pd.testing.assert_frame_equal(read_dictionary(out), dictionary)
    else:
        back = pd.read_csv(out)
        assert pd.read_csv(tmp_path / "features.dictionary.csv").column.tolist() == dictionary.column.tolist()
    assert back["glcm_joint_maximum__gyby__3d_avg"].iloc[0] == pytest.approx(
        table["glcm_joint_maximum__gyby__3d_avg"].iloc[0])


def test_table_built_lesion_by_lesion_equals_the_table_of_row_dicts(tmp_path):
    """FeatureRows keeps one float array per lesion, yet gives the table a list of row dicts gives: columns in
    order of first appearance (a lesion without features first, another with fewer families), NaN where a lesion
    has no value, each id column's type, the settings on every row; the Parquet files are byte-identical."""
    image = np.random.default_rng(8).gamma(3.0, 1.0, (12, 12, 12))
    mask = ellipsoid((12, 12, 12), (4, 5, 5))
    small = extract_features(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS, ("statistics",))
    large = extract_features(Roi(image[::-1], mask, (2.0, 2.0, 2.0)), SETTINGS, ("pet", "statistics", "glcm"))
    lesions = [LesionFeatures({"patient": "P01", "lesion": 1, "tracer": "FDG"}, error="empty mask"),
               LesionFeatures({"patient": "P01", "lesion": 2, "tracer": "FDG"}, small),
               LesionFeatures({"patient": "P02", "lesion": 1, "tracer": "FES", "organ": "bone"}, large)]
    table, dictionary = feature_table(lesions, SETTINGS)
    settings = {f"setting_{k}": v for k, v in SETTINGS.as_dict().items()}
    columns = list(dict.fromkeys(column_name(f) for lesion in lesions for f in lesion.features))
    rows = [{**lesion.ids, "error": lesion.error,
             "nan_reasons": "; ".join(f"{column_name(f)}: {f.reason}" for f in lesion.features
                                      if f.reason and not np.isfinite(f.value)),
             **{column_name(f): f.value for f in lesion.features}, **settings} for lesion in lesions]
    expected = pd.DataFrame(rows, columns=["patient", "lesion", "tracer", "organ", "error", "nan_reasons", *columns,
                                           *settings]).astype(dict.fromkeys(columns, np.float64))
    pd.testing.assert_frame_equal(table, expected)
    assert dictionary.column.tolist() == columns and np.isnan(table.loc[1, "glcm_joint_maximum__gyby__3d_avg"])
    built, made = write_table(table, dictionary, tmp_path / "rows.parquet"), \
        write_table(expected, dictionary, tmp_path / "dicts.parquet")
    assert built.read_bytes() == made.read_bytes()


def test_spatial_autocorrelation_beyond_the_size_limit_is_nan_with_reason(monkeypatch):
    """Past SPATIAL_MAX_CELLS FFT cells Moran's I and Geary's C are NaN with a reason, the rest still computed."""
    mask = ellipsoid((10, 10, 10), (4, 4, 4))
    image = np.random.default_rng(6).normal(3, 1, mask.shape)
    monkeypatch.setattr(morphology, "SPATIAL_MAX_CELLS", 100)
    feats = {f.name: f for f in morphology.compute(Roi(image, mask, (2.0, 2.0, 2.0)), SETTINGS)}
    moran = feats["Moran’s I index"]
    assert np.isnan(moran.value) and "too large" in moran.reason
    assert np.isfinite(feats["Sphericity"].value)


def test_spatial_autocorrelation_can_be_left_out():
    """With spatial_autocorrelation off, Moran's I and Geary's C are NaN with a reason; the rest is unchanged."""
    mask = ellipsoid((10, 10, 10), (4, 4, 4))
    roi = Roi(np.random.default_rng(7).normal(3, 1, mask.shape), mask, (2.0, 2.0, 2.0))
    full = {f.name: f for f in morphology.compute(roi, SETTINGS)}
    lean = {f.name: f for f in morphology.compute(roi, FeatureSettings(bin_width=0.5, spatial_autocorrelation=False))}
    assert np.isfinite(full["Moran’s I index"].value) and np.isnan(lean["Moran’s I index"].value)
    assert "spatial_autocorrelation" in lean["Geary’s C measure"].reason
    assert all(lean[k].value == full[k].value for k in full if k not in ("Moran’s I index", "Geary’s C measure"))


def test_feature_from_template_equals_the_dataclass_record():
    """Records built from cached templates are the same frozen, picklable Feature as the constructor's."""
    table = (("Q4LE", "Mean", "x"), ("84IY", "Maximum", "y"))
    templates = record_templates("statistics", table, "3D", 0, 1)
    built = [Feature.from_template(t, v, r) for t, v, r in zip(templates, (1.5, float("nan")), ("", "why"))]
    assert built[0] == Feature("statistics", "Mean", "Q4LE", 1.5, "3D", "")
    assert (built[1].name, built[1].reason, built[1].aggregation) == ("Maximum", "why", "3D")
    assert pickle.loads(pickle.dumps(built[0])) == built[0]
    assert templates[0]["value"] != templates[0]["value"]  # the cached template is not changed by a record
    with pytest.raises(AttributeError):
        built[0].value = 2.0
