"""Feature tables: one row per lesion, SQL-friendly column names, a feature dictionary, atomic Parquet or CSV.

Columns: the identifying columns first (as given per lesion, e.g. patient pseudonym, lesion id, tracer, ROI
name), then ``error`` (why a lesion has no features, else empty) and ``nan_reasons`` (``column: reason`` for
every NaN feature), then one column per feature named ``<family>_<name>__<ibsi code>__<aggregation>`` in snake
case (e.g. ``glcm_joint_maximum__gyby__3d_avg``, ``statistics_mean_intensity__q4le``), then the settings as
``setting_<name>`` columns, so every number carries how it was made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sonimage.features.base import Feature, FeatureSettings
from sonimage.features.histogram import FAMILY as HISTOGRAM, MANUAL_MISPRINTS
from sonimage.io import write_bytes_atomic, write_parquet_atomic

DICTIONARY_KEY = b"sonimage.feature_dictionary"
AGGREGATION_WORDS = (("2.5d", "2_5d"), ("slice-merged", "smrg"), ("direction-merged", "dmrg"),
                     ("averaged", "avg"), ("merged", "mrg"))


@dataclass(frozen=True)
class LesionFeatures:
    """One lesion's identifying values, its features, and the error that left it without features."""

    ids: dict[str, Any]
    features: list[Feature] = field(default_factory=list)
    error: str = ""


@cache
def snake(text: str) -> str:
    """Lower-case words joined by underscores ("Moran’s I index" → "morans_i_index"); cached: the feature table
    names the same few hundred features for every lesion."""
    text = re.sub(r"[’']", "", text.lower()).replace("%", "pct")
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def column_name(feature: Feature) -> str:
    """``<family>_<name>__<code>__<aggregation>``; the code and aggregation parts only where they exist."""
    agg = feature.aggregation.lower()
    for word, short in AGGREGATION_WORDS:
        agg = agg.replace(word, short)
    parts = [f"{feature.family}_{snake(feature.name)}", feature.code.lower(), snake(agg)]
    return "__".join(p for p in parts if p)


def code_note(feature: Feature) -> str:
    """Where the printed IBSI 1 manual gives ``feature`` another code than the IBSI source and MIRP, say so."""
    printed = MANUAL_MISPRINTS.get(feature.code) if feature.family == HISTOGRAM else None
    if printed is None:
        return ""
    return (f"code {feature.code} as in the IBSI source and MIRP; the printed IBSI 1 manual (arXiv:1612.07003) "
            f"misprints it as {printed}")


class FeatureRows:
    """The feature table built lesion by lesion (:meth:`add`), holding per lesion only its identifying values and
    one float array of its features, not its :class:`Feature` records: a study's gather reads its patients' results
    one at a time (:func:`sonimage.stages.extract.write_feature_tables`). :meth:`table` gives what
    :func:`feature_table` gives for the same lesions, column for column."""

    def __init__(self, settings: FeatureSettings) -> None:
        self.settings = {f"setting_{k}": v for k, v in settings.as_dict().items()}
        self.entries: dict[str, dict[str, str]] = {}  # column -> its dictionary row, in order of first appearance
        self.position: dict[str, int] = {}  # column -> its place among the feature columns
        self.labels: list[dict[str, Any]] = []  # per lesion: ids, error, nan_reasons
        self.cells: list[tuple[np.ndarray, np.ndarray]] = []  # per lesion: column positions, values

    def add(self, lesion: LesionFeatures) -> None:
        """One lesion's row; an error when two of its features map to one column."""
        positions, values, reasons, seen = [], [], [], set()
        for f in lesion.features:
            col = column_name(f)
            if col in seen:
                raise ValueError(f"two features map to column {col!r}")
            seen.add(col)
            if (position := self.position.get(col)) is None:
                position = self.position[col] = len(self.position)
                self.entries[col] = {"column": col, "family": f.family, "name": f.name, "code": f.code,
                                     "aggregation": f.aggregation, "note": code_note(f)}
            positions.append(position)
            values.append(f.value)
            if f.reason and not np.isfinite(f.value):
                reasons.append(f"{col}: {f.reason}")
        self.labels.append({**lesion.ids, "error": lesion.error, "nan_reasons": "; ".join(reasons)})
        self.cells.append((np.asarray(positions, dtype=np.intp), np.asarray(values, dtype=np.float64)))

    def table(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The lesion table (ids, ``error``, ``nan_reasons``, one float column per feature, the settings) and its
        feature dictionary (column, family, name, code, aggregation, note)."""
        id_cols = list(dict.fromkeys(k for label in self.labels for k in label if k not in ("error", "nan_reasons")))
        values = np.full((len(self.cells), len(self.entries)), np.nan)
        for row, (positions, cells) in zip(values, self.cells):
            row[positions] = cells
        table = pd.concat([pd.DataFrame(self.labels, columns=[*id_cols, "error", "nan_reasons"]),
                           pd.DataFrame(values, columns=list(self.entries)),
                           pd.DataFrame([self.settings] * len(self.labels), columns=list(self.settings))], axis=1)
        dictionary = pd.DataFrame(list(self.entries.values()),
                                  columns=["column", "family", "name", "code", "aggregation", "note"])
        return table, dictionary


def feature_table(lesions: Iterable[LesionFeatures], settings: FeatureSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lesion table (one row per lesion) and its feature dictionary (column, family, name, code, aggregation,
    note): :class:`FeatureRows` over ``lesions``."""
    rows = FeatureRows(settings)
    for lesion in lesions:
        rows.add(lesion)
    return rows.table()


def write_table(table: pd.DataFrame, dictionary: pd.DataFrame, path: Path,
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``table`` atomically as Parquet (dictionary and ``metadata`` in the schema metadata) or CSV
    (dictionary beside it)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: output must end in .parquet or .csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    targets = [(path, table)]
    if suffix == ".csv":
        targets.append((path.with_name(f"{path.stem}.dictionary.csv"), dictionary))
    for target, frame in targets:
        if suffix == ".parquet":
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            meta = {**(arrow.schema.metadata or {}), DICTIONARY_KEY: json.dumps(dictionary.to_dict("records")).encode(),
                    **{k.encode(): v.encode() for k, v in (metadata or {}).items()}}
            write_parquet_atomic(arrow.replace_schema_metadata(meta), target)
        else:
            write_bytes_atomic(target, frame.to_csv(index=False).encode("utf-8"))
    return path


def read_dictionary(path: Path) -> pd.DataFrame:
    """The feature dictionary stored in a Parquet feature table's schema metadata."""
    meta = pq.read_schema(path).metadata or {}
    if DICTIONARY_KEY not in meta:
        raise ValueError(f"{path}: no sonimage feature dictionary in the Parquet metadata")
    return pd.DataFrame(json.loads(meta[DICTIONARY_KEY]))
