"""Per-patient heterogeneity metrics on a hand-checked lesion table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonimage.settings import FesRuleSettings
from sonimage.tables.patients import (SUMMARY_INPUTS, fes_calls, fes_complete_case, patient_metrics,
                                      patient_summaries)


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
    m = patient_metrics(lesions(), FesRuleSettings(1.5, inclusive=False)).set_index("patient")
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
    m = patient_metrics(df, FesRuleSettings(statistic="suvpeak")).set_index("patient")
    assert m.loc["A", "fes_pattern"] == "mixed" and m.loc["C", "fes_pattern"] == "all positive"
    with pytest.raises(ValueError, match="suvmax, suvpeak or suvmax_pvc"):
        FesRuleSettings(statistic="suvmean")


def test_patient_metrics_count_only_determinate_lesions() -> None:
    """With the reading's detectability columns, a too-small lesion below the threshold is indeterminate: it does
    not make the patient FES-negative; it is counted; a patient with only indeterminate lesions has no FES metrics."""
    df = lesions()
    df["fes_evaluable"] = ~df.organ.eq("liver")
    df["fes_not_evaluable_reason"] = np.where(df.organ.eq("liver"), "liver", "")
    df["fes_background_median"], df["fes_background_p95"] = 0.9, 1.2
    df["fes_rc"] = 0.9  # large lesions
    small = (df.patient == "B") & (df.organ == "lung")  # B: lymph node 1.0 (negative), lung 1.2 (too small)
    df.loc[small, "fes_rc"] = 0.2  # 0.9 + 0.2 x (2.3 - 0.9) = 1.18 < 1.5: an ER-positive lesion would read negative
    extra = {"patient": "H", "lesion": 1, "organ": "bone", "fdg_suvmax": 3.0, "fdg_sulmax": 2.4, "fes_suvmax": 1.0,
             "fes_suvmean": 0.8, "fes_sulmean": 0.6, "volume_ml": 0.2, "fdg_tlg": 0.4, "fes_evaluable": True,
             "fes_not_evaluable_reason": "", "fes_background_median": 0.9, "fes_background_p95": 1.2, "fes_rc": 0.1}
    df = pd.concat([df, pd.DataFrame([extra])], ignore_index=True)
    calls = fes_calls(df)
    assert list(calls.loc[small[small].index, "fes_call"]) == ["indeterminate"]
    m = patient_metrics(df).set_index("patient")
    assert m.loc["B", "n_fes_determinate"] == 1 and m.loc["B", "n_fes_indeterminate"] == 1
    assert m.loc["B", "n_fes_evaluable"] == 2 and m.loc["B", "fes_pattern"] == "all negative"
    assert m.loc["A", "any_fes_negative"] == False and m.loc["A", "n_fes_indeterminate"] == 0  # noqa: E712
    assert m.loc["H", "fes_pattern"] == "not evaluable" and m.loc["H", "any_fes_negative"] is pd.NA
    assert m.loc["H", "fes_missing_reason"] == "only indeterminate FES calls (lesions too small, or spill-in from a neighbour)"
    # a patient whose only sub-threshold lesion is indeterminate is not any-FES-negative
    df.loc[(df.patient == "B") & (df.organ == "lymph_node"), "fes_rc"] = 0.2
    df.loc[df.patient == "B", "fes_suvmax"] = [1.0, 3.0]  # the lung lesion now reads positive
    m = patient_metrics(df).set_index("patient")
    assert m.loc["B", "any_fes_negative"] == False and m.loc["B", "fes_pattern"] == "all positive"  # noqa: E712
    assert m.loc["B", "fes_positive_fraction"] == pytest.approx(1.0)  # Boers, the indeterminate lesion left out
    assert m.loc["A", "fes_positive_fraction"] == pytest.approx(2 / 3)  # ... the liver lesion kept in


def test_calls_without_reading_columns_follow_the_uptake() -> None:
    """True-value tables (no partial volume) call every evaluable lesion on its uptake; liver is not evaluable."""
    calls = fes_calls(lesions())
    assert list(calls.fes_call) == ["positive", "positive", "not evaluable", "negative", "negative", "positive",
                                    "not evaluable"]
    assert calls.fes_call_reason.iloc[2] == "liver"


def _pandas_summaries(lesions: pd.DataFrame, flags: pd.Series) -> pd.DataFrame:
    """The summaries as the pandas expressions their definitions are written in (per-patient DataFrames)."""
    def geomean(x: pd.Series) -> float:
        x = x.dropna()
        return float(np.exp(np.log(x).mean())) if len(x) and (x > 0).all() else float("nan")

    rows = []
    for (cohort, patient), d in lesions.groupby(["cohort", "patient"], sort=True):
        ev = d[flags.loc[d.index]]
        top3 = d.nlargest(3, "fdg_sulmax") if d.fdg_sulmax.notna().any() else d.nlargest(3, "fdg_suvmax")
        log_fes = np.log(ev.fes_suvmax[ev.fes_suvmax > 0])
        within = (ev.fes_suvmax / ev.fes_suvmean).dropna()
        rows.append({"cohort": cohort, "patient": patient, "fdg_sulmax3": geomean(top3.fdg_sulmax),
                     "fdg_suvmax3": geomean(d.nlargest(3, "fdg_suvmax").fdg_suvmax),
                     "fes_sulmean3": geomean(top3.loc[flags.reindex(top3.index), "fes_sulmean"]),
                     "fes_suvmax_largest3": float(ev.nlargest(3, "volume_ml").fes_suvmax.mean()),
                     "fes_suvmax_cv": float(ev.fes_suvmax.std() / ev.fes_suvmax.mean()) if len(ev) > 1 else np.nan,
                     "fes_log_suvmax_sd": float(log_fes.std()) if len(log_fes) > 1 else np.nan,
                     "fes_heterogeneity_index": float(within.median()) if len(within) else np.nan,
                     "fdg_suvmax_max": float(d.fdg_suvmax.max()), "fdg_mtv_ml": float(d.volume_ml.sum()),
                     "fdg_tlg": float(d.fdg_tlg.sum())})
    return pd.DataFrame(rows)


def test_patient_summaries_equal_their_pandas_definitions_bit_for_bit() -> None:
    """Ties, NaNs (fewer than three known values: nlargest fills with unknown ones, in order), non-positive FES, a
    patient without SUL, rows out of patient order: every value identical to the pandas expressions."""
    rng = np.random.default_rng(7)
    n = 600
    df = pd.DataFrame({"cohort": rng.choice(["a", "b"], n), "patient": rng.choice([f"P{i:02d}" for i in range(40)], n)})
    for c in SUMMARY_INPUTS:
        df[c] = rng.lognormal(0.5, 0.6, n).round(1)  # rounded: many ties
        df.loc[rng.random(n) < 0.2, c] = np.nan
    df.loc[rng.random(n) < 0.05, "fes_suvmax"] = -1.0
    df.loc[df.patient == "P03", "fdg_sulmax"] = np.nan
    flags = pd.Series(rng.random(n) < 0.7, index=df.index)
    got = patient_summaries(df, flags)
    pd.testing.assert_frame_equal(got, _pandas_summaries(df, flags), check_exact=True)
    assert got.fes_suvmax_largest3.notna().sum() > 50 and got.fdg_sulmax3.isna().any()
