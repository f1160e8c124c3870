"""IBSI-2 filters without reference data: settings as one line, the properties the filters must have, and the
filtered statistics in the feature table and `sonimage features --filter`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from sonimage.cli import main
from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.families import crop, extract_features
from sonimage.features.filters import FilterSpec, filtered_statistics, gabor, laws, log
from sonimage.features.filters.common import ROTATIONS
from sonimage.features.table import LesionFeatures, feature_table, read_dictionary

RNG = np.random.default_rng(7)


def test_spec_text_round_trip_and_errors():
    spec = FilterSpec.parse("gabor:sigma_mm=5,lambda_mm=2,gamma=1.5,rotation_invariant=true,delta_theta=pi/8")
    assert spec.settings["delta_theta"] == pytest.approx(np.pi / 8)
    assert spec.settings["boundary"] == "mirror" and spec.settings["dims"] == "3D"  # defaults recorded
    assert FilterSpec.parse(spec.text) == spec
    assert FilterSpec.parse("riesz:order=0/2/0,base=simoncelli").settings["order"] == (0, 2, 0)
    with pytest.raises(ValueError, match="unknown setting"):
        FilterSpec.parse("log:sigma=1")
    with pytest.raises(ValueError, match="sigma_mm is required"):
        FilterSpec.parse("log:")
    with pytest.raises(ValueError, match="unknown filter"):
        FilterSpec.parse("median:size=3")
    with pytest.raises(ValueError, match="boundary"):
        FilterSpec.parse("mean:support=3,boundary=wrap").apply(np.zeros((5, 5, 5)), (1, 1, 1))


def test_rotations_are_the_24_of_the_cube():
    x = RNG.random((3, 4, 5))
    turned = {}
    for steps in ROTATIONS["3D"]:
        y = x
        for axes, k in steps:
            y = np.rot90(y, k, axes)
        turned[(y.shape, y.tobytes())] = True
    assert len(turned) == 24


def test_rotation_invariant_laws_turns_with_the_image():
    x = RNG.random((12, 12, 12))
    spec = dict(kernel="E5L5S5", boundary="periodic", rotation_invariant=True, pooling="max")
    turned = np.rot90(x, 1, (0, 2))
    np.testing.assert_allclose(laws.apply(turned, (1, 1, 1), **spec), np.rot90(laws.apply(x, (1, 1, 1), **spec), 1,
                                                                               (0, 2)), atol=1e-12)
    plain = laws.apply(turned, (1, 1, 1), kernel="E5L5S5", boundary="periodic")
    assert not np.allclose(plain, np.rot90(laws.apply(x, (1, 1, 1), kernel="E5L5S5", boundary="periodic"), 1, (0, 2)))


def test_log_equals_the_sampled_analytic_kernel():
    x = RNG.random((16, 16, 16))
    sigma, spacing = 2.0, (2.0, 1.0, 1.0)
    s = [sigma / d for d in spacing]
    r = [int(np.floor(4 * v + 0.5)) for v in s]
    z, y, xx = np.mgrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1].astype(float)
    q = (z / s[0]) ** 2 + (y / s[1]) ** 2 + (xx / s[2]) ** 2
    g = np.exp(-q / 2) / np.prod([v * np.sqrt(2 * np.pi) for v in s])
    lap = sum(((c / v) ** 2 - 1) / v ** 2 for c, v in zip((z, y, xx), s)) * g
    np.testing.assert_allclose(log.apply(x, spacing, sigma_mm=sigma, boundary="mirror"),
                               ndimage.convolve(x, lap, mode="reflect"), atol=1e-10)


def test_gabor_half_turns_give_the_full_average():
    x = RNG.random((6, 20, 20))
    kw = dict(sigma_mm=2.0, lambda_mm=3.0, gamma=1.5, boundary="mirror", dims="2D", rotation_invariant=True,
              delta_theta=np.pi / 4)
    fast = gabor.apply(x, (1, 1, 1), pooling="average", **kw)
    full = gabor.apply(x, (1, 1, 1), pooling="sum", **kw) / 8  # sum pooling takes all 8 turns
    np.testing.assert_allclose(fast, full, rtol=1e-10)


def _lesion() -> Roi:
    image = ndimage.gaussian_filter(RNG.normal(10, 3, (30, 40, 40)), 1.5)
    mask = np.zeros(image.shape, bool)
    mask[12:18, 15:25, 14:26] = True
    return Roi(image, mask, (2.0, 1.0, 1.0))


@pytest.mark.parametrize("text", ["laws:kernel=L5E5E5,energy_distance=3,rotation_invariant=true",
                                  "log:sigma_mm=2", "wavelet:wavelet=db3,bands=LLH,level=2,rotation_invariant=true",
                                  "gabor:sigma_mm=2,lambda_mm=3,dims=2D", "mean:support=5,boundary=zero"])
def test_lesion_box_plus_reach_equals_the_whole_image(text):
    roi, spec = _lesion(), FilterSpec.parse(text)
    boxed = filtered_statistics(crop(roi, spec.reach(roi.spacing)), spec)
    whole = filtered_statistics(roi, spec)
    assert [f.value for f in boxed] == pytest.approx([f.value for f in whole], rel=1e-9)
    assert crop(roi, spec.reach(roi.spacing)).image.size < roi.image.size


def test_filtered_statistics_in_the_feature_table():
    roi = _lesion()
    specs = (FilterSpec.parse("log:sigma_mm=2"), FilterSpec.parse("mean:support=3"))
    features = extract_features(roi, FeatureSettings(), ("statistics",), filters=specs)
    assert len(features) == 3 * 18
    table, dictionary = feature_table([LesionFeatures({"roi": "a"}, features)], FeatureSettings())
    column = "statistics_mean_intensity__q4le__filter_log_sigma_mm_2_truncate_4_boundary_mirror_dims_3d"
    response = specs[0].apply(roi.image, roi.spacing)
    assert table.loc[0, column] == pytest.approx(response[roi.mask].mean(), rel=1e-9)
    entry = dictionary.set_index("column").loc[column]
    assert entry["code"] == "Q4LE" and entry["aggregation"] == f"filter {specs[0].text}"
    assert table.loc[0, "statistics_mean_intensity__q4le"] == pytest.approx(roi.image[roi.mask].mean())


def test_cli_filter(tmp_path):
    roi = _lesion()
    for name, array in (("image", roi.image.astype(np.float32)), ("mask", roi.mask.astype(np.uint8))):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(roi.spacing[::-1])
        sitk.WriteImage(img, str(tmp_path / f"{name}.nii.gz"))
    out = tmp_path / "f.parquet"
    code = main(["features", "--image", str(tmp_path / "image.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"),
                 "--families", "statistics", "--filter", "wavelet:wavelet=haar,bands=HHL,rotation_invariant=true",
                 "--filter", "laws:kernel=E5E5E5,energy_distance=2", "--out", str(out)])
    assert code == 0
    table = pd.read_parquet(out)
    dictionary = read_dictionary(out)
    filtered = dictionary[dictionary.aggregation.str.startswith("filter ")]
    assert len(filtered) == 36 and set(filtered.column) <= set(table.columns)
    spec = FilterSpec.parse("laws:kernel=E5E5E5,energy_distance=2")
    column = filtered[filtered.aggregation == f"filter {spec.text}"].set_index("name").loc["Maximum intensity",
                                                                                          "column"]
    expected = spec.apply(roi.image.astype(np.float32).astype(np.float64), roi.spacing)[roi.mask].max()
    assert table.loc[0, column] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(SystemExit):
        main(["features", "--image", "x", "--mask", "y", "--filter", "log:sigma=1", "--out", str(out)])
