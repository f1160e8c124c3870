"""What a run did, for the person who started it: series converted, skipped and quarantined, lesions, and the time
each stage took. Printed as a table at the end of a run and kept as ``run_summary.json`` beside the outputs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sonimage.io import write_json_atomic
from sonimage.dicom.conversion import ConvertSummary


class StageClock:
    """Wall-clock seconds per named stage: ``with clock.stage("convert"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start


def run_summary(convert: ConvertSummary, tables: dict[str, str], seconds: dict[str, float],
                reuse: dict[str, int] | None = None) -> dict[str, Any]:
    """The counts and stage times of a run whose conversion gave ``convert`` and which wrote ``tables``, and how
    many patients' lesion stages it computed or ``reuse``d (:mod:`sonimage.lesions.reuse`)."""
    summary: dict[str, Any] = {
        "input files": convert.n_files, "series converted": convert.n_converted,
        "series skipped (same bytes as before)": convert.n_skipped,
        "series quarantined": convert.n_quarantined_series, "files quarantined": convert.n_quarantined_files}
    for name, label in (("lesions", "lesions"), ("patients", "patients"),
                        ("excluded_patients", "patients excluded (features/excluded_patients.parquet)")):
        if name in tables:
            summary[label] = pq.read_metadata(tables[name]).num_rows
    if reuse is not None:
        summary["patients' lesion features computed"] = reuse["computed"]
        summary["patients' lesion features reused (inputs unchanged)"] = reuse["reused"]
    summary.update({f"time {stage} (s)": round(s, 1) for stage, s in seconds.items()})
    return summary


def render(summary: dict[str, Any]) -> str:
    """The summary as a two-column text table."""
    width = max(map(len, summary))
    rule = "-" * (width + 12)
    return "\n".join(["run summary", rule, *(f"{k:<{width}}  {v:>10}" for k, v in summary.items()), rule])


def write_run_summary(summary: dict[str, Any], out: Path) -> Path:
    """``out/run_summary.json`` (atomically)."""
    return write_json_atomic(summary, Path(out) / "run_summary.json")
