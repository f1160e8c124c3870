"""Acceptance: every feature family against the IBSI digital phantom, pass counts per family and aggregation."""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import require
from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.extract import extract_features

FAMILIES = {
    "morphology": "Morphological features",
    "local_intensity": "Local intensity features",
    "statistics": "Intensity-based statistical features",
    "histogram": "Intensity histogram features",
    "ivh": "Intensity-volume histogram features",
    "glcm": "Grey level co-occurrence based features",
    "glrlm": "Grey level run length based features",
    "glszm": "Grey level size zone based features",
    "gldzm": "Grey level distance zone based features",
    "ngtdm": "Neighbourhood grey tone difference based features",
    "ngldm": "Neighbouring grey level dependence based features",
}
ALL_DIMS = ("2D", "2.5D", "3D")


def round_sig(x: float, digits: int = 3) -> float:
    """IBSI's rounding: ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


@pytest.fixture(scope="module")
def phantom(shared_data) -> tuple[Roi, pd.DataFrame]:
    folder = require(shared_data / "ibsi-digital-phantom")
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "phantom.nii.gz"))).astype(np.float64)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "mask.nii.gz"))) > 0
    reference = pd.read_csv(folder / "reference_values.csv", keep_default_na=False, na_values={"value": [""]})
    return Roi(image, mask, (2.0, 2.0, 2.0)), reference


def score(features: list, rows: pd.DataFrame) -> tuple[Counter, Counter, list[str]]:
    """Pass and total counts per aggregation, and the failures; the k-th row of a (code, aggregation) meets
    the k-th computed feature with that code and aggregation (IVH and histogram repeat codes). A row without a
    code (GLSZM small zone emphasis) is matched by name."""
    computed = defaultdict(list)
    for f in features:
        computed[(f.code, f.aggregation)].append(f)
        computed[(f.name, f.aggregation)].append(f)
    seen, passed, totals, failures = Counter(), Counter(), Counter(), []
    for row in rows.itertuples():
        key = (row.ibsi_code or row.feature, row.aggregation)
        agg = row.aggregation or "3D (non-texture)"
        candidates = computed.get(key, [])
        feature = candidates[seen[key]] if seen[key] < len(candidates) else None
        seen[key] += 1
        totals[agg] += 1
        value = np.nan if feature is None else round_sig(feature.value)
        if abs(value - row.value) <= row.tolerance:
            passed[agg] += 1
        else:
            failures.append(f"{row.ibsi_code} {row.feature} [{agg}]: {value} != {row.value} ± {row.tolerance}")
    return passed, totals, failures


@pytest.mark.parametrize("family", list(FAMILIES))
def test_phantom_family(phantom, family):
    """Every reference row of the family (3D, and 2D/2.5D for texture) passes IBSI's rule via extract_features."""
    if importlib.util.find_spec(f"sonimage.features.{family}") is None:
        pytest.skip(f"feature family module sonimage.features.{family} not written yet")
    roi, reference = phantom
    features = extract_features(roi, FeatureSettings(), families=(family,), dims=ALL_DIMS)
    rows = reference[(reference.family == FAMILIES[family]) & reference.value.notna()]
    assert len(rows) > 0
    passed, totals, failures = score(features, rows)
    print(f"\n{family}: " + ", ".join(f"{agg} {passed[agg]}/{n}" for agg, n in sorted(totals.items())))
    assert not failures, f"{len(failures)} of {len(rows)} {family} rows fail:\n" + "\n".join(failures)


def test_phantom_total(phantom):
    """All families together: the printed total of passing reference rows; every 3D row passes."""
    roi, reference = phantom
    present = tuple(f for f in FAMILIES if importlib.util.find_spec(f"sonimage.features.{f}") is not None)
    features = extract_features(roi, FeatureSettings(), families=present, dims=ALL_DIMS)
    rows = reference[reference.family.isin([FAMILIES[f] for f in present]) & reference.value.notna()]
    passed, totals, failures = score(features, rows)
    print(f"\nphantom: {sum(passed.values())}/{len(rows)} rows pass over {len(present)} families "
          f"({len(reference)} reference rows in all, {int(reference.value.isna().sum())} without a value)")
    for agg in sorted(totals):
        print(f"  {agg}: {passed[agg]}/{totals[agg]}")
    three_d = [f for f in failures if "[3D" in f]
    assert not three_d, "3D rows fail:\n" + "\n".join(three_d)
