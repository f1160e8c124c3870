"""Per-patient heterogeneity metrics on a hand-checked lesion table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonimage.tables.patients import FesRule, fes_complete_case, patient_metrics


def lesions() -> pd.DataFrame:
    rows = [  # patient, organ, fdg_suvmax, fes_suvmax, fes_suvmean, volume
        ("A", "bone", 6.0, 3.0, 2.0, 4.0), ("A", "bone", 4.0, 1.5, 1.0, 2.0), ("A", "liver", 9.0, 12.0, 8.0, 10.0),
        ("B", "lymph_node", 5.0, 1.0, 0.8, 3.0), ("B", "lung", 3.0, 1.2, 0.9, 1.0),
        ("C", "bone", 2.0, 4.0, 3.0, 1.0),
        ("D", "liver", 8.0, 10.0, 7.0, 5.0),
    ]
    df = pd.DataFrame(rows, columns=["patient", "organ", "fdg_suvmax", "fes_suvmax", "fes_suvmean", "volume_ml"])
    df["lesion"] = df.groupby("patient").cumcount() + 1
    df["fdg_sulmax"] = df.fdg_suvmax * 0.8
    df["fes_sulmean"] = df.fes_suvmean * 0.8
    df["fdg_tlg"] = df.volume_ml * 2.0
    return df


def test_patterns_fractions_and_liver_rule() -> None:
    m = patient_metrics(lesions()).set_index("patient")
    assert m.loc["A", "fes_pattern"] == "all positive"  # 1.5 counts as positive with the inclusive default
    assert m.loc["A", "n_fes_evaluable"] == 2  # the liver lesion is not FES-evaluable
    assert m.loc["A", "fes_positive_fraction"] == pytest.approx(2 / 3)
    assert m.loc["B", "fes_pattern"] == "all negative"
    assert m.loc["D", "fes_pattern"] == "not evaluable"
    assert np.isnan(m.loc["D", "fes_positive_fraction_evaluable"])


def test_strict_threshold_changes_a_borderline_lesion() -> None:
    m = patient_metrics(lesions(), FesRule(1.5, inclusive=False)).set_index("patient")
    assert m.loc["A", "fes_pattern"] == "mixed"
    assert bool(m.loc["A", "any_fes_negative"])


def test_kurland_geometric_means_use_the_top_fdg_lesions() -> None:
    m = patient_metrics(lesions()).set_index("patient")
    assert m.loc["A", "fdg_sulmax3"] == pytest.approx((9.0 * 6.0 * 4.0) ** (1 / 3) * 0.8)
    # FES SULmean3 over the same three lesions, the liver one left out as not evaluable
    assert m.loc["A", "fes_sulmean3"] == pytest.approx(np.sqrt(2.0 * 1.0) * 0.8)
    assert m.loc["A", "fdg_mtv_ml"] == pytest.approx(16.0)


def test_lesions_without_a_fes_value_are_not_counted_negative() -> None:
    df = lesions()
    df.loc[df.patient == "B", ["fes_suvmax", "fes_suvmean", "fes_sulmean"]] = np.nan  # no FES scan for B
    m = patient_metrics(df).set_index("patient")
    assert m.loc["B", "fes_pattern"] == "not evaluable"
    assert m.loc["B", "n_fes_evaluable"] == 0
    assert m.loc["B", "any_fes_negative"] is pd.NA  # unknown, not "no FES-negative lesion"
    assert np.isnan(m.loc["B", "fes_positive_fraction"]) and m.loc["B", "fes_missing_reason"] == "no FES-evaluable lesion"


def test_missing_fes_is_not_negative_fes() -> None:
    """No FES scan, failed or poor registration, only non-evaluable lesions: NaN/NA metrics and a reason."""
    df = lesions()
    df["fes_evaluable"] = ~df.organ.eq("liver")
    df["fes_not_evaluable_reason"] = np.where(df.organ.eq("liver"), "liver", "")
    extra = []
    for patient, reason in (("E", "no FES scan"), ("F", "registration failed"),
                            ("G", "registration below quality threshold")):
        for lesion in (1, 2):
            extra.append({"patient": patient, "lesion": lesion, "organ": "bone", "fdg_suvmax": 5.0,
                          "fdg_sulmax": 4.0, "fes_suvmax": np.nan if reason != "registration below quality "
                          "threshold" else 0.9, "fes_suvmean": np.nan, "fes_sulmean": np.nan, "volume_ml": 2.0,
                          "fdg_tlg": 8.0, "fes_evaluable": False, "fes_not_evaluable_reason": reason})
    df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    m = patient_metrics(df).set_index("patient")
    assert m["any_fes_negative"].dtype == "boolean"
    for patient, reason in (("D", "no FES-evaluable lesion"), ("E", "no FES scan"), ("F", "registration failed"),
                            ("G", "registration below quality threshold")):
        row = m.loc[patient]
        assert np.isnan(row.fes_positive_fraction) and np.isnan(row.fes_positive_fraction_evaluable), patient
        assert row.any_fes_negative is pd.NA and row.fes_pattern == "not evaluable"
        assert row.fes_missing_reason == reason and not row.fes_evaluable
    assert m.loc["B", "any_fes_negative"] == True  # noqa: E712 (a negative patient stays negative)
    assert pd.isna(m.loc["A", "fes_missing_reason"]) and m.loc["A", "fes_positive_fraction"] == pytest.approx(2 / 3)
    kept, left = fes_complete_case(m.reset_index())
    assert sorted(left.patient) == ["D", "E", "F", "G"] and len(kept) == 3
    assert dict(zip(left.patient, left.reason))["E"] == "no FES scan"


def test_a_lesion_the_reading_declares_not_evaluable_is_left_out() -> None:
    df = lesions()
    df["fes_evaluable"] = True
    df.loc[(df.patient == "B") & (df.organ == "lung"), "fes_evaluable"] = False  # e.g. next to the bowel
    df["fes_not_evaluable_reason"] = np.where(df.fes_evaluable, "", "near high FES uptake")
    m = patient_metrics(df).set_index("patient")
    assert m.loc["B", "n_fes_evaluable"] == 1
    assert m.loc["B", "fes_positive_fraction"] == 0.0 and m.loc["B", "fes_pattern"] == "all negative"


def test_positivity_on_the_peak_is_a_sensitivity_option() -> None:
    df = lesions().assign(fes_suvpeak=lambda d: d.fes_suvmax * 0.9)  # A's 1.5 lesion peaks at 1.35
    m = patient_metrics(df, FesRule(statistic="suvpeak")).set_index("patient")
    assert m.loc["A", "fes_pattern"] == "mixed" and m.loc["C", "fes_pattern"] == "all positive"
    with pytest.raises(ValueError, match="suvmax or suvpeak"):
        FesRule(statistic="suvmean")
