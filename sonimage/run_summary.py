"""What a run did, for the person who started it: series converted, skipped and quarantined, lesions, and the time
each stage took. Printed as a table at the end of a run and kept as ``run_summary.json`` beside the outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sonimage.io import write_json_atomic
from sonimage.dicom.conversion import ConvertSummary


class StageClock:
    """Wall-clock seconds per named stage: ``with clock.stage("convert"): ...``; with ``peaks`` (a callable giving
    each process role's peak resident MB since its last call, e.g. ``{"flow process": 812.0, "largest worker":
    640.0}``), each stage's peak memory per role too."""

    def __init__(self, peaks: Callable[[], dict[str, float]] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, dict[str, float]] = {}
        self._probe = peaks

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (and take its peak memory)."""
        if self._probe:
            self._probe()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            if self._probe:
                self.peaks[name] = self._probe()


def run_summary(convert: ConvertSummary, tables: dict[str, str], seconds: dict[str, float],
                reuse: dict[str, int] | None = None, peaks: dict[str, dict[str, float]] | None = None
                ) -> dict[str, Any]:
    """The counts and stage times of a run whose conversion gave ``convert`` and which wrote ``tables``, how
    many patients' lesion stages it computed or ``reuse``d (:mod:`sonimage.lesions.reuse`), and each stage's peak
    resident memory per process role (``peaks``, :class:`StageClock`)."""
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
    summary.update({f"peak MB {stage}, {role}": round(mb) for stage, roles in (peaks or {}).items()
                    for role, mb in roles.items()})
    return summary


def render(summary: dict[str, Any]) -> str:
    """The summary as a two-column text table."""
    width = max(map(len, summary))
    rule = "-" * (width + 12)
    return "\n".join(["run summary", rule, *(f"{k:<{width}}  {v:>10}" for k, v in summary.items()), rule])


def write_run_summary(summary: dict[str, Any], out: Path) -> Path:
    """``out/run_summary.json`` (atomically)."""
    return write_json_atomic(summary, Path(out) / "run_summary.json")
