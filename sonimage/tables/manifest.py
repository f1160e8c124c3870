"""The conversion's two tables: the manifest (one row per series) and the quarantine (what could not be used)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from sonimage.tables.parquet import write_table

MANIFEST_SCHEMA = pa.schema([
    ("cohort", pa.string()), ("patient", pa.string()), ("study", pa.string()), ("series", pa.string()),
    ("frame_of_reference", pa.string()), ("modality", pa.string()), ("tracer", pa.string()),
    ("referenced_series", pa.string()), ("n_rois", pa.int32()),
    ("vendor", pa.string()), ("model", pa.string()), ("units", pa.string()), ("original_units", pa.string()),
    ("decay_correction", pa.string()), ("suv_factor", pa.float64()), ("suv_bw_factor_g_per_bq", pa.float64()),
    ("suv_method", pa.string()), ("uptake_min", pa.float64()), ("sul_ratio", pa.float64()),
    ("shape_z", pa.int32()), ("shape_y", pa.int32()), ("shape_x", pa.int32()),
    ("spacing_z", pa.float64()), ("spacing_y", pa.float64()), ("spacing_x", pa.float64()),
    ("n_files", pa.int32()), ("store", pa.string()), ("status", pa.string()),
])

# patient, modality and tracer are '' where not known (a file that cannot be read names no patient)
QUARANTINE_SCHEMA = pa.schema([
    ("cohort", pa.string()), ("patient", pa.string()), ("path", pa.string()), ("series", pa.string()),
    ("modality", pa.string()), ("tracer", pa.string()), ("n_files", pa.int32()), ("stage", pa.string()),
    ("reason", pa.string()),
])


def _frame(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=schema.names)
    return df.sort_values(list(df.columns[:4])).reset_index(drop=True) if len(df) else df


def write_manifest(rows: list[dict], path: Path) -> Path:
    """Write the manifest rows (sorted, so reruns give identical files)."""
    return write_table(_frame(rows, MANIFEST_SCHEMA), path, MANIFEST_SCHEMA)


def write_quarantine(rows: list[dict], path: Path) -> Path:
    """Write the quarantine rows (sorted)."""
    return write_table(_frame(rows, QUARANTINE_SCHEMA), path, QUARANTINE_SCHEMA)
