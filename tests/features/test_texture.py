"""IBSI-1 texture families against the IBSI digital phantom, plus edge cases and matrix properties."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from scipy import ndimage
from sonimage.features import glcm, glrlm, glszm, ngldm, ngtdm
from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.texture import grey_levels, half_offsets, zone_entries
from sonimage.features.compliance import round_sig
from tests.helpers import ALL_DIMS, IBSI_FAMILIES

FAMILIES = {k: v for k, v in IBSI_FAMILIES.items() if k in ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")}


PHANTOM_SETTINGS = {
    "integer levels": FeatureSettings(),
    "bin width 1 from 1": FeatureSettings(bin_width=1.0, bin_lower_bound=1.0),
}


@pytest.mark.parametrize("settings", list(PHANTOM_SETTINGS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_phantom_reference_values(phantom, family, settings):
    """Every 2D, 2.5D and 3D reference row of the family passes IBSI's rule (3 significant digits, tolerance)."""
    roi, reference = phantom
    module = importlib.import_module(f"sonimage.features.{family}")
    features = module.compute(roi, PHANTOM_SETTINGS[settings], ALL_DIMS)
    # Rows are matched by IBSI code; the CSV leaves the code of a few rows empty, matched then by name.
    computed = {(f.code, f.aggregation): f for f in features} | {(f.name, f.aggregation): f for f in features}
    rows = reference[(reference.family == FAMILIES[family]) & reference.value.notna()]
    assert len(rows) > 0
    passed, failures = Counter(), []
    for row in rows.itertuples():
        key = row.ibsi_code or row.feature
        feature = computed.get((key, row.aggregation))
        value = np.nan if feature is None else round_sig(feature.value)
        if abs(value - row.value) <= row.tolerance:
            passed[row.aggregation] += 1
        else:
            failures.append(f"{row.ibsi_code} {row.feature} [{row.aggregation}]: {value} != {row.value}")
    totals = Counter(rows.aggregation)
    print(f"\n{family}: " + ", ".join(f"{agg} {passed[agg]}/{n}" for agg, n in sorted(totals.items())))
    assert not failures, f"{len(failures)} of {len(rows)} {family} rows fail:\n" + "\n".join(failures)


def _compute_all(roi: Roi, settings: FeatureSettings = FeatureSettings()) -> list:
    return [f for family in FAMILIES for f in importlib.import_module(f"sonimage.features.{family}").compute(
        roi, settings, ALL_DIMS)]  # fmt: skip


def _random_roi(seed: int, shape=(6, 7, 8), n_levels: int = 4) -> Roi:
    rng = np.random.default_rng(seed)
    image = rng.integers(1, n_levels + 1, size=shape).astype(np.float64)
    mask = rng.random(shape) < 0.7
    return Roi(image, mask, (2.0, 1.0, 1.0))


def _assert_reasons(features: list) -> None:
    for f in features:
        if math.isnan(f.value):
            assert f.reason, f"{f.family} {f.code} [{f.aggregation}] is NaN without a reason"
        else:
            assert not f.reason, f"{f.family} {f.code} [{f.aggregation}] has a value and a reason"


def test_one_voxel_roi_gives_values_or_nan_with_reason():
    """A one-voxel lesion: no co-occurring pair and no neighbour (NaN with reason), but one run and one zone."""
    image = np.full((3, 3, 3), 7.0)
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[1, 1, 1] = True
    features = _compute_all(Roi(image, mask, (2.0, 2.0, 2.0)))
    _assert_reasons(features)
    by_key = {(f.family, f.code, f.aggregation): f for f in features}
    assert all(math.isnan(f.value) and "empty GLCM" in f.reason for f in features if f.family == "glcm")
    assert all(math.isnan(f.value) for f in features if f.family == "ngtdm")
    assert by_key[("glszm", "P30P", "3D")].value == 1.0
    assert by_key[("glrlm", "22OV", "3D, merged")].value == 1.0
    assert by_key[("ngldm", "SODN", "2D")].value == 1.0


def test_all_equal_roi_defined_where_possible():
    """One grey level: correlation and NGTDM coarseness have zero denominators; joint maximum is 1."""
    image = np.full((4, 5, 5), 3.0)
    mask = np.ones((4, 5, 5), dtype=bool)
    features = _compute_all(Roi(image, mask, (2.0, 2.0, 2.0)))
    _assert_reasons(features)
    by_key = {(f.family, f.code, f.aggregation): f for f in features}
    assert by_key[("glcm", "GYBY", "3D, merged")].value == 1.0
    assert math.isnan(by_key[("glcm", "NI2N", "3D, merged")].value)
    assert math.isnan(by_key[("ngtdm", "QCDE", "3D")].value)
    assert by_key[("glszm", "P30P", "3D")].value == pytest.approx(1 / 100)
    assert by_key[("gldzm", "0GBI", "2D")].value == 1.0


def test_empty_mask_gives_nan_with_reason():
    roi = Roi(np.ones((3, 3, 3)), np.zeros((3, 3, 3), dtype=bool), (1.0, 1.0, 1.0))
    features = _compute_all(roi)
    assert features and all(math.isnan(f.value) and f.reason for f in features)


def test_unknown_dimension_is_refused():
    with pytest.raises(ValueError, match="4D"):
        glcm.compute(_random_roi(0), FeatureSettings(), ("4D",))


@pytest.mark.parametrize("distance", [1, 2])
def test_glcm_matches_brute_force_pair_count(distance):
    """Each direction's matrix counts ROI pairs at distance·direction both ways; 3D merged is their sum."""
    roi = _random_roi(1)
    settings = FeatureSettings(glcm_distance=distance)
    levels = grey_levels(roi, settings, margin=distance)
    image, ng = roi.image.astype(int), levels.n_levels
    assert levels.present.tolist() == list(range(1, ng + 1))  # every level occurs: matrix rows are levels
    total = np.zeros((ng, ng))
    for direction in half_offsets(1, planar=False):
        expected = np.zeros((ng, ng))
        step = np.array(direction) * distance
        for a in zip(*np.nonzero(roi.mask)):
            b = tuple(np.array(a) + step)
            if all(0 <= c < n for c, n in zip(b, roi.mask.shape)) and roi.mask[b]:
                expected[image[a] - 1, image[b] - 1] += 1
                expected[image[b] - 1, image[a] - 1] += 1
        matrix = glcm.cooccurrences(levels, levels.roi, [tuple(step)])[0]
        np.testing.assert_array_equal(matrix + matrix.T, expected, err_msg=f"direction {direction}")
        total += expected
    merged = {f.code: f.value for f in glcm.compute(roi, settings) if f.aggregation == "3D, merged"}
    assert merged == pytest.approx(glcm.glcm_features(total / 2, levels.present, ng))


def test_glrlm_matches_brute_force_runs():
    """Runs walked voxel by voxel along each direction equal the vectorised run matrices."""
    roi = _random_roi(2)
    levels = grey_levels(roi, FeatureSettings(), margin=1)
    assert levels.present.tolist() == list(range(1, levels.n_levels + 1))  # matrix rows are the levels
    image, shape = roi.image.astype(int), roi.mask.shape
    inside = lambda p: all(0 <= c < n for c, n in zip(p, shape)) and roi.mask[p]  # noqa: E731
    for direction in half_offsets(1, planar=False):
        d = np.array(direction)
        expected = np.zeros((levels.n_levels, max(levels.array.shape)))
        for start in zip(*np.nonzero(roi.mask)):
            before = tuple(np.array(start) - d)
            if inside(before) and image[before] == image[start]:
                continue
            length, p = 1, tuple(np.array(start) + d)
            while inside(p) and image[p] == image[start]:
                length, p = length + 1, tuple(np.array(p) + d)
            expected[image[start] - 1, length - 1] += 1
        np.testing.assert_array_equal(glrlm.runs(levels, levels.roi, [direction])[0], expected)


def test_zones_match_scipy_label_per_grey_level():
    """GLSZM zones (union-find) equal scipy.ndimage.label per grey level, 26- and 8-connected."""
    roi = _random_roi(3)
    levels = grey_levels(roi, FeatureSettings(), margin=1)
    image = np.where(roi.mask, roi.image.astype(int), 0)
    for planar in (False, True):
        structure = np.ones((3, 3, 3), dtype=bool)
        if planar:
            structure[0] = structure[2] = False
        expected = []
        for g in range(1, levels.n_levels + 1):
            labels, n = ndimage.label(image == g, structure=structure)
            expected += [(g, s) for s in np.bincount(labels.ravel())[1:]]
        _, (level, size) = zone_entries(levels, 1, planar, glszm._zone_sizes)
        assert sorted(zip(level.tolist(), size.tolist())) == sorted(expected)


def test_longer_zone_linkage_joins_zones():
    """Linkage 2 links voxels two apart: never more zones than linkage 1, here strictly fewer."""
    roi = _random_roi(5)
    percentage = {
        linkage: next(f.value for f in glszm.compute(roi, FeatureSettings(zone_linkage=linkage)) if f.code == "P30P")
        for linkage in (1, 2)
    }
    assert percentage[2] < percentage[1]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_3d_features_invariant_under_flip_and_transpose(family):
    """Mirroring x and swapping y with x (isotropic in-plane) leaves every 3D value unchanged."""
    roi = _random_roi(4, shape=(5, 7, 7), n_levels=5)
    module = importlib.import_module(f"sonimage.features.{family}")
    moved = Roi(roi.image[:, :, ::-1].transpose(0, 2, 1), roi.mask[:, :, ::-1].transpose(0, 2, 1), roi.spacing)
    dims = ("3D", "2.5D")
    original = {(f.code, f.aggregation): f.value for f in module.compute(roi, FeatureSettings(), dims)}
    mirrored = {(f.code, f.aggregation): f.value for f in module.compute(moved, FeatureSettings(), dims)}
    assert mirrored == pytest.approx(original, nan_ok=True)


def test_wide_grey_level_range_counts_present_levels_only():
    """Levels 1 and 100 000 (a 10^10-cell dense GLCM): computed, and merged contrast is the mean (a-b)² of pairs."""
    rng = np.random.default_rng(6)
    image = np.where(rng.random((5, 6, 7)) < 0.5, 1.0, 100_000.0)
    roi = Roi(image, np.ones(image.shape, dtype=bool), (1.0, 1.0, 1.0))
    squares = []
    for dz, dy, dx in half_offsets(1, planar=False):
        a = image[max(0, -dz) : image.shape[0] - max(0, dz), max(0, -dy) : image.shape[1] - max(0, dy),
                  max(0, -dx) : image.shape[2] - max(0, dx)]  # fmt: skip
        b = image[max(0, dz) : image.shape[0] + min(0, dz) or None, max(0, dy) : image.shape[1] + min(0, dy) or None,
                  max(0, dx) : image.shape[2] + min(0, dx) or None]  # fmt: skip
        squares.append(((a - b) ** 2).ravel())
    merged = {f.code: f.value for f in glcm.compute(roi, FeatureSettings()) if f.aggregation == "3D, merged"}
    assert merged["ACUI"] == pytest.approx(np.concatenate(squares).mean())
    features = _compute_all(roi)  # every family: matrices over the two present levels, high-level emphasis huge
    _assert_reasons(features)
    high = next(f for f in features if (f.code, f.aggregation) == ("5GN9", "3D"))
    assert 1 < high.value < 1e10


def test_ngtdm_closed_forms_match_pairwise_definitions():
    """Contrast, busyness and strength by closed forms equal IBSI's pairwise sums over present grey levels."""
    rng = np.random.default_rng(7)
    level = rng.choice([1, 2, 4, 7, 8, 12, 20], size=300)
    difference = rng.random(300) * 3
    values = ngtdm.ngtdm_features((level, difference))
    grey = np.unique(level).astype(float)
    p = np.array([(level == g).mean() for g in grey])
    s = np.array([difference[level == g].sum() for g in grey])
    di2 = (grey[:, None] - grey[None, :]) ** 2
    n = grey.size
    assert values["65HE"] == pytest.approx((p[:, None] * p[None, :] * di2).sum() / (n * (n - 1)) * s.sum() / 300)
    assert values["NQ30"] == pytest.approx((p * s).sum() / np.abs((grey * p)[:, None] - (grey * p)[None, :]).sum())
    assert values["1X9X"] == pytest.approx(((p[:, None] + p[None, :]) * di2).sum() / s.sum())
    complexity = (np.sqrt(di2) * ((p * s)[:, None] + (p * s)[None, :]) / (p[:, None] + p[None, :])).sum() / 300
    assert values["HDEZ"] == pytest.approx(complexity)


def test_ngldm_alpha_covering_all_levels_counts_every_roi_neighbour():
    """With α ≥ the level range every ROI neighbour is dependent: k = 1 + ROI voxels among the 26 neighbours."""
    roi = _random_roi(8)
    levels = grey_levels(roi, FeatureSettings(), margin=1)
    _, (_, k) = ngldm.dependences(levels, distance=1, alpha=levels.n_levels, planar=False)
    neighbours = ndimage.convolve(roi.mask.astype(int), np.ones((3, 3, 3), dtype=int), mode="constant")
    assert k.tolist() == neighbours[roi.mask].tolist()  # the centre counts once in both


def test_compiled_loops_run_where_no_numba_cache_is_writable(tmp_path):
    """With Numba's only cache location impossible to create (a directory under a file: not writable even for
    root), the compiled loops are compiled per process and every texture family gives the same values."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(blocker / "cache"), "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator"}
    code = ("import json, numpy as np\n"
            "from sonimage.features.base import FeatureSettings, Roi\n"
            "from sonimage.features.families import TEXTURE, extract_features\n"
            "rng = np.random.default_rng(9)\n"
            "roi = Roi(rng.integers(1, 5, (6, 7, 8)).astype(float), rng.random((6, 7, 8)) < 0.6, (1.0, 1.0, 1.0))\n"
            "print(json.dumps([f.value for f in extract_features(roi, FeatureSettings(), TEXTURE)]))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from sonimage.features.families import TEXTURE, extract_features

    rng = np.random.default_rng(9)
    roi = Roi(rng.integers(1, 5, (6, 7, 8)).astype(float), rng.random((6, 7, 8)) < 0.6, (1.0, 1.0, 1.0))
    expected = [f.value for f in extract_features(roi, FeatureSettings(), TEXTURE)]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == pytest.approx(expected, nan_ok=True)
