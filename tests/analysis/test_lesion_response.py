"""Objective 3, RECIST/PERCIST-valid: lesion matching by identifier and mixed-model recovery of the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonimage.analysis.lesion_response import lesion_response
from sonimage.analysis.objectives import objective3
from sonimage.synth.tables import TRUE_PET_RESPONSE, TRUE_RESPONSE, simulate_cohort_tables
from sonimage.tables.lesion_match import lesion_number, match_clinic
from sonimage.tables.clinical import join_response as joined_by_study


@pytest.fixture(scope="module")
def large():
    return simulate_cohort_tables("sonia", 1200, seed=21)


def _coefs(res: dict) -> pd.DataFrame:
    return pd.DataFrame(res["coefficients"]).set_index("term")


def test_mixed_models_recover_the_true_lesion_coefficients(large):
    """n = 1,200 patients (tables only): every true coefficient of the size and SULpeak models lies in its 95 %
    CI (seed 21; with 14 terms about half of all seeds have one 95 % miss somewhere, as expected), the patient SD
    is recovered; bone without soft tissue and small nodes are not in the size model."""
    res = lesion_response(large.patients, large.lesion_table)
    size, pet = res["size"], res["pet"]
    assert size["estimable"] and pet["estimable"] and size["converged"] and pet["converged"]
    s = _coefs(size)
    assert {"log_fes_suv", "log_fdg_suv", "cdk46i", "log_size_cm", "organ[lymph_node]", "organ[lung]"} <= set(s.index)
    for term in s.index:
        beta = TRUE_RESPONSE[term]
        assert s.loc[term, "lower"] < beta < s.loc[term, "upper"], (term, beta, s.loc[term].to_dict())
    p = _coefs(pet)
    for term in p.index:
        beta = TRUE_PET_RESPONSE[term]
        assert p.loc[term, "lower"] < beta < p.loc[term, "upper"], (term, beta, p.loc[term].to_dict())
    assert size["patient_sd"] == pytest.approx(TRUE_RESPONSE["patient_sd"], rel=0.25)
    assert pet["lesion_sd"] == pytest.approx(TRUE_PET_RESPONSE["lesion_sd"], rel=0.15)
    measurable = large.lesions[large.lesions["recist_measurable"] & large.lesions["fes_evaluable"]]
    assert pet["n_lesions"] == int((large.lesions["percist_measurable"] & large.lesions["fes_evaluable"]).sum())
    assert size["n_lesions"] == len(measurable)
    assert not ((measurable["organ"] == "bone") & (measurable["soft_tissue_mm"] < 10)).any()
    assert not ((measurable["organ"] == "lymph_node") & (measurable["diameter_mm"] < 15)).any()


def test_clinic_rows_match_rois_by_identifier_not_order():
    clinic = pd.DataFrame({"subject_id": ["A"] * 4, "lesion_id": [1, 2, 3, 4], "organ": ["bone", "lung", "liver",
                                                                                        "lymph_node"],
                           "response_pct": [10.0, -40.0, 5.0, -20.0], "recist_measurable": [False, True, True, True]})
    # the reader skipped lesion 1 and drew the rest in another order; one ROI carries no number
    images = pd.DataFrame({"patient": ["A"] * 4, "lesion": [1, 2, 3, 4],
                           "roi": ["L04_lymph_node", "L02_lung", "L03_liver", "extra"],
                           "organ": ["lymph_node", "lung", "liver", "unknown"]})
    joined, record = match_clinic(images, clinic)
    assert joined["response_pct"].tolist()[:3] == [-20.0, -40.0, 5.0] and np.isnan(joined["response_pct"].iloc[3])
    assert record == {**record, "matched": 3, "roi_without_number": 1, "clinic_without_roi": 1,
                      "organ_disagreements": 0}
    assert joined_by_study(images, clinic).equals(joined)
    by_order = images.merge(clinic, left_on=["patient", "lesion"], right_on=["subject_id", "lesion_id"])
    assert (by_order["organ_x"] != by_order["organ_y"]).any()  # what matching by position would have done
    assert [lesion_number(r) for r in ("L07_bone", "Lesion 12", "l3-liver")] == [7, 12, 3]
    assert np.isnan(lesion_number("target lesion"))
    with pytest.raises(ValueError, match="duplicate"):
        match_clinic(images, pd.concat([clinic, clinic.head(1)]))


def test_objective3_reports_both_models_and_what_was_left_out():
    t = simulate_cohort_tables("sonia", 60, seed=3)
    o3 = objective3(t.patients, t.lesion_table)
    assert o3["size"]["estimable"] and o3["n_lesions"] == o3["size"]["n_lesions"] > 0
    assert o3["size"]["left_out"]["not FES-evaluable or no uptake value"] >= 0
    assert set(o3["size"]["categories"]) == {"CR", "PR", "SD", "PD"}
    assert len(o3["points"]["response_pct"]) == o3["n_lesions"]
    old = t.lesion_table.drop(columns=["recist_measurable", "sulpeak_change_pct"])
    o3_old = objective3(t.patients, old)
    assert not o3_old["size"]["estimable"] and "recist_measurable" in o3_old["size"]["reason"]
    assert not o3_old["pet"]["estimable"] and o3_old["coefficients"] == []
