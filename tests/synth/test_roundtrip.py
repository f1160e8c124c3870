"""The synthetic study through the converter: every vendor profile gives back the SUV factor it was written with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sonimage.dicom.pseudonym import Pseudonymiser, read_linking
from sonimage.synth.generate import generate_study
from sonimage.stages import convert as convert_stage

pytestmark = pytest.mark.slow  # renders and converts a synthetic study of every vendor profile

KEY = b"roundtrip"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Pseudonymiser]:
    base = tmp_path_factory.mktemp("roundtrip")
    generate_study(base / "study", n_patients=4, size="tiny", seed=11)
    pseudo = Pseudonymiser(KEY, read_linking(base / "study" / "site-private" / "linking.csv"))
    convert_stage.run(base / "study" / "dicom", base / "out", pseudo)
    return base / "study", base / "out", pseudo


def truth_series(study: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((study / "truth").glob("*/series.parquet"))])


def test_every_series_converts(converted: tuple) -> None:
    study, out, _ = converted
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert pd.read_parquet(out / "quarantine.parquet").empty
    assert len(manifest) == len(truth_series(study))
    assert set(manifest.patient) == set(pd.concat(pd.read_parquet(p) for p in (study / "truth").glob("*/patients.parquet")).subject_id)


def test_suv_factor_of_every_vendor_profile(converted: tuple) -> None:
    study, out, pseudo = converted
    truth = truth_series(study)
    truth = truth[truth.modality == "PT"].assign(series=lambda t: t.series_uid.map(pseudo.uid))
    manifest = pd.read_parquet(out / "manifest.parquet").merge(truth, on="series", suffixes=("", "_true"))
    assert len(manifest) == len(truth)
    assert manifest.profile.nunique() >= 6  # Siemens, GE and Philips profiles, ADMIN/START/NONE, MBq, time-only
    for row in manifest.itertuples():
        attrs = xr.open_zarr(out / row.store, consolidated=False).attrs
        ours = np.sort(attrs["suv_slice_factors"] or [attrs["suv_factor"]])
        expected = np.sort(np.unique(row.suv_factors))
        assert np.allclose(np.unique(ours), expected, rtol=1e-6), row.profile
        assert row.tracer == row.tracer_true
