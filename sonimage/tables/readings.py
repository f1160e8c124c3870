"""The tables built from the lesion stage's readings: the lesion table (:mod:`sonimage.tables.lesions`' format)
with the FES reading and each lesion's call, every delineation (long), and the QC tables (registration per patient,
liver reference per scan, FES reading per lesion)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from sonimage.features.base import Feature
from sonimage.features.table import LesionFeatures
from sonimage.tables.lesions import lesion_table
from sonimage.settings import FesRuleSettings
from sonimage.tables.patients import fes_calls


def _value(features: list[Feature], name: str) -> float:
    return next((f.value for f in features if f.family == "pet" and f.name == name), float("nan"))


def lesion_rows(results: Iterable[LesionFeatures]) -> list[dict]:
    """One row per lesion (not per tracer): FDG and FES uptake side by side, then the MTV/TLG of every automatic
    delineation (``fdg_mtv_ml_<method>``; ``fdg_mtv_ml`` is the reader contour). A lesion's tracers must come in
    the same ``results`` (e.g. one patient's)."""
    rows: dict[tuple, dict] = {}
    for r in results:
        key = (r.ids["cohort"], r.ids["patient"], r.ids["lesion"])
        row = rows.setdefault(key, {"cohort": key[0], "patient": key[1], "lesion": key[2], "roi": r.ids["roi"],
                                    "organ": r.ids["organ"]})
        t = r.ids["tracer"].lower()
        row.update({f"{t}_suvmax": _value(r.features, "SUVmax"), f"{t}_suvmean": _value(r.features, "SUVmean"),
                    f"{t}_suvpeak": _value(r.features, "SUVpeak"), f"{t}_sulmax": _value(r.features, "SULmax"),
                    f"{t}_sulmean": _value(r.features, "SULmean"), f"{t}_mtv_ml": _value(r.features, "MTV (mL)"),
                    f"{t}_tlg": _value(r.features, "TLG SUV"), f"{t}_error": r.error,
                    "sul_lbm_formula": r.ids.get("sul_lbm_formula", "Janmahasatian")})
        for d in getattr(r, "delineations", ()):
            if d["method"] != "contour":
                row.update({f"{t}_mtv_ml_{d['label']}": d["mtv_ml"], f"{t}_tlg_{d['label']}": d["tlg"]})
    return list(rows.values())


def summary_table(rows: list[dict], readings: pd.DataFrame | None = None, primary: str = "rtstruct",
                  rule: FesRuleSettings = FesRuleSettings()) -> pd.DataFrame:
    """The lesion table (:mod:`sonimage.tables.lesions`) of :func:`lesion_rows` and, with ``readings``
    (:func:`reading_tables`' ``fes_reading``), each lesion's FES evaluability and reason and what the call needs
    (diameter, RC(d), local background); then each lesion's ``fes_call`` and ``fes_call_reason`` by ``rule``
    (:func:`sonimage.tables.patients.fes_calls`). ``volume_ml`` (the burden of the patient table) is the MTV of
    ``primary`` (``rtstruct`` or a method label), named in ``fdg_mtv_method``."""
    table = lesion_table(pd.DataFrame(rows))
    if primary == "rtstruct":
        table["volume_ml"], table["fdg_mtv_method"] = table["fdg_mtv_ml"], "reader contour"
    else:
        table["volume_ml"], table["fdg_mtv_method"] = table[f"fdg_mtv_ml_{primary}"], primary
        table["fdg_tlg"] = table[f"fdg_tlg_{primary}"]
    if readings is not None and len(readings):
        table = table.merge(readings, on=["cohort", "patient", "lesion"], how="left")
        table["fes_evaluable"] = table["fes_evaluable"].fillna(False).astype(bool) & table["fes_suvmax"].notna()
        reason = table["fes_not_evaluable_reason"].fillna("")
        table["fes_not_evaluable_reason"] = reason.where(table["fes_evaluable"] | (reason != ""), "no FES value")
    return table.join(fes_calls(table, rule))


def lesion_summary(results: Iterable[LesionFeatures], readings: pd.DataFrame | None = None,
                   primary: str = "rtstruct", rule: FesRuleSettings = FesRuleSettings()) -> pd.DataFrame:
    """The lesion table of the features (:func:`summary_table` of :func:`lesion_rows`)."""
    return summary_table(lesion_rows(results), readings, primary, rule)


def delineation_rows(results: Iterable[LesionFeatures]) -> list[dict]:
    """Every delineation (method, parameters, threshold, MTV, TLG, SUVmean) of every FDG lesion, one dict each."""
    return [d for r in results for d in getattr(r, "delineations", ())]


def delineation_table(results: Iterable[LesionFeatures]) -> pd.DataFrame:
    """Long table of every delineation of every FDG lesion (:func:`delineation_rows`)."""
    return pd.DataFrame(delineation_rows(results))


def reading_tables(records: list[dict]) -> dict[str, pd.DataFrame]:
    """Registration QC (one row per patient), liver reference (one per scan) and FES reading (one per lesion)
    from the patients' records (:func:`sonimage.lesions.jobs.plan_lesions`)."""
    keys = ("cohort", "patient")
    liver = [{**{k: r[k] for k in keys}, **row} for r in records for row in r.get("liver", [])]
    lesions = [{**{k: r[k] for k in keys}, "lesion": row["label"], **{c: v for c, v in row.items() if c != "label"}}
               for r in records for row in r.get("lesions", [])]
    return {"registration": pd.DataFrame([{k: v for k, v in r.items() if k not in ("liver", "lesions")}
                                          for r in records]),
            "liver_reference": pd.DataFrame(liver), "fes_reading": pd.DataFrame(lesions)}
