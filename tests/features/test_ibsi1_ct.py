"""IBSI 1 image processing: interpolation, re-segmentation and discretisation against the CT phantom's
configurations A to E (reference values: tests/features/data/ibsi1_ct_phantom_reference.csv), and their rules in small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.compliance import CONFIGURATIONS, configuration_values, feature_key, score
from sonimage.features.families import FeatureInputError, extract_features
from sonimage.features.processing import grid_positions, interpolate, process, resegment

REFERENCE = Path(__file__).parent / "data" / "ibsi1_ct_phantom_reference.csv"
DIAGNOSTIC = ("_roi",)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(REFERENCE)


def test_every_reference_tag_names_a_feature(reference):
    """Each feature tag maps to one sonimage feature; only the mask diagnostics map to none."""
    unmapped = {t for t in reference.tag if feature_key(t) is None}
    assert unmapped and all(t.endswith(DIAGNOSTIC) for t in unmapped)
    assert reference.groupby("configuration").size().to_dict() == dict.fromkeys("ABCDE", 215)


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_ct_phantom_configuration(ct_phantom, reference, name):
    """Every reference value of the configuration (diagnostics and features) passes IBSI's rule."""
    rows = reference[reference.configuration == name]
    result = score(configuration_values(ct_phantom, name, rows.tag), rows)
    print(f"\nconfiguration {name}: {int(result.passed.sum())}/{len(result)}")
    failures = result[~result.passed]
    assert failures.empty, f"configuration {name}: {len(failures)} rows fail\n{failures.to_string()}"


def test_grid_alignment_follows_ibsi():
    """n_new = ceil(n s / s_new) and the two grids share their centre (IBSI 1, section 2.4)."""
    pos = grid_positions(5, 3.0, 2.0)  # 15 mm -> 8 voxels of 2 mm
    assert pos.size == 8
    assert np.mean(pos) == pytest.approx(2.0)
    assert np.diff(pos) == pytest.approx(np.full(7, 2.0 / 3.0))
    assert grid_positions(4, 2.0, 2.0) == pytest.approx(np.arange(4.0))


def test_interpolation_reproduces_a_linear_ramp_and_thresholds_the_mask():
    """Trilinear and tricubic interpolation are exact on a linear ramp; a one-slab mask at 3 mm keeps the
    2 mm voxels whose interpolated partial volume reaches 0.5."""
    z = np.arange(12, dtype=float)[:, None, None] * np.ones((12, 10, 10))
    mask = np.zeros(z.shape, bool)
    mask[4:8, 3:7, 3:7] = True
    roi = Roi(z * 3.0, mask, (3.0, 2.0, 2.0))
    for method in ("linear", "cubic"):
        out = interpolate(roi, FeatureSettings(voxel_size=2.0, interpolation=method))
        assert out.spacing == (2.0, 2.0, 2.0)
        # 1 intensity unit per mm along z: each new slice holds 3 x its centre's old z index (the spline's
        # edge condition 4 voxels away perturbs it by < 0.01)
        values = np.unique(np.round(out.image[out.mask], 2))
        expected = 3.0 * grid_positions(12, 3.0, 2.0)
        assert np.abs(values[:, None] - expected[None, :]).min(axis=1).max() < 0.01
        assert values.size == 6 and np.diff(values) == pytest.approx(np.full(5, 2.0), abs=0.01)
    planar = interpolate(roi, FeatureSettings(voxel_size=1.0, interpolate_in_plane=True))
    assert planar.spacing == (3.0, 1.0, 1.0) and planar.mask.sum() == 4 * 8 * 8


def test_resegmentation_is_the_intersection_of_range_and_outliers():
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 1.0, (6, 6, 6))
    image[0, 0, 0] = 50.0
    mask = np.ones(image.shape, bool)
    roi = Roi(image, mask, (1.0, 1.0, 1.0))
    x = image[mask]
    outliers = resegment(roi, FeatureSettings(outlier_sd=3.0))
    assert not outliers.mask[0, 0, 0] and outliers.morph_mask.all()
    assert outliers.mask.sum() == np.sum(np.abs(x - x.mean()) <= 3 * x.std())
    both = resegment(roi, FeatureSettings(outlier_sd=3.0, resegment_min=0.0))
    assert both.mask.sum() == np.sum((np.abs(x - x.mean()) <= 3 * x.std()) & (x >= 0))


def test_processing_changes_nothing_by_default_and_empty_resegmentation_is_a_clear_error():
    roi = Roi(np.arange(27.0).reshape(3, 3, 3), np.ones((3, 3, 3), bool), (1.0, 1.0, 1.0))
    assert process(roi, FeatureSettings()) is roi
    with pytest.raises(FeatureInputError, match="after re-segmentation"):
        extract_features(roi, FeatureSettings(bin_width=1.0, resegment_min=100.0), ("statistics",))


def test_morphology_uses_the_morphological_mask_after_resegmentation():
    """Volume follows the morphological mask; the mean (and integrated intensity) the intensity mask."""
    image = np.full((8, 8, 8), 10.0)
    image[3:5, 3:5, 3:5] = 1000.0
    mask = np.zeros(image.shape, bool)
    mask[2:6, 2:6, 2:6] = True
    settings = FeatureSettings(bin_width=10.0, resegment_max=100.0)
    feats = {f.name: f.value for f in extract_features(Roi(image, mask, (1.0, 1.0, 1.0)), settings,
                                                       ("morphology", "statistics"))}
    assert feats["Volume (voxel counting)"] == 64.0
    assert feats["Mean intensity"] == 10.0
    assert feats["Integrated intensity"] == pytest.approx(10.0 * feats["Volume (mesh)"])


@pytest.mark.parametrize("bad", [dict(voxel_size=0.0), dict(interpolation="nearest"), dict(outlier_sd=-1.0),
                                 dict(resegment_min=5.0, resegment_max=1.0), dict(mask_partial_volume=0.0),
                                 dict(ivh_bin_width=1.0, ivh_bin_count=10)])
def test_processing_settings_are_checked(bad):
    with pytest.raises(ValueError):
        FeatureSettings(**bad)
