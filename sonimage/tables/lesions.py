"""The lesion table: one row per lesion, FDG and FES uptake side by side.

One format, written by the feature stage (values measured on the images, ``features/lesions.parquet``) and by
the synthetic generator (true values, ``truth/<cohort>/features/lesions.parquet``), read by the patient metrics
(:mod:`sonimage.tables.patients`) and the analyses as written. Columns: ``cohort``, ``patient`` (trial
pseudonym), ``lesion`` (number), ``roi``, ``organ``, then per tracer ``<tracer>_suvmax``, ``_suvmean``,
``_suvpeak``, ``_sulmax``, ``_sulmean``, ``_mtv_ml``, ``_tlg`` and ``_error`` (why a value is missing, else
empty), then ``volume_ml`` (the FDG MTV). A value that was not measured is NaN, never 0. Further columns (lesion
response joined from the clinic, delineation details) follow these; the feature stage adds the FES reading
(:mod:`sonimage.lesions.fes_reading`: ``fes_evaluable``, ``fes_not_evaluable_reason``, ``fes_n_voxels``,
``fes_diameter_mm``, ``fes_rc``, ``fes_background_median``, ``fes_background_p95``, ``fes_lbr``,
``fes_suvmax_pvc``, ...) and each lesion's call, ``fes_call`` (:data:`FES_CALLS`) with ``fes_call_reason``
(:func:`sonimage.tables.patients.fes_calls`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KEYS = ("cohort", "patient", "lesion")
TRACERS = ("fdg", "fes")
UPTAKE = ("suvmax", "suvmean", "suvpeak", "sulmax", "sulmean", "mtv_ml", "tlg")
FES_CALLS = ("positive", "negative", "indeterminate", "not evaluable")
COLUMNS = (*KEYS, "roi", "organ", *(f"{t}_{u}" for t in TRACERS for u in (*UPTAKE, "error")), "volume_ml")


def lesion_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` in the lesion table format: every column present (NaN uptake, empty error where not measured),
    the format's columns first, sorted by cohort, patient and lesion."""
    table = rows.copy()
    for col in COLUMNS:
        if col not in table:
            table[col] = "" if col.endswith("_error") or col == "roi" else np.nan
    table["volume_ml"] = table["volume_ml"].fillna(table["fdg_mtv_ml"])
    extra = [c for c in table.columns if c not in COLUMNS]
    return table[[*COLUMNS, *extra]].sort_values(list(KEYS)).reset_index(drop=True)
