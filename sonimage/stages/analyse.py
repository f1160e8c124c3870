"""The analysis stage: clinical tables joined to the image tables, objectives 1–5 (:mod:`sonimage.analysis.results`),
the report rendered (:mod:`sonimage.report`). Its items are the bootstraps and cross-validation folds, fanned out
over ``executor`` inside :func:`sonimage.analysis.results.analyse`.

Stages of a run, each a library call: :func:`sonimage.stages.convert.run` (DICOM → Zarr),
:func:`sonimage.stages.extract.run` (Zarr → feature tables), :func:`run` here (tables → report).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sonimage.stages.extract import FEATURES
from sonimage.parallel import Executor
from sonimage.report.document import render_report
from sonimage.settings import Settings
from sonimage.analysis.results import analyse
from sonimage.tables.parquet import write_table
from sonimage.tables.clinical import study_tables

REPORT = "report"
TRUTH = "truth.json"  # beside a synthetic cohort's clinical tables


def run_study_analysis(patients: dict[str, pd.DataFrame], lesions: dict[str, pd.DataFrame], out_dir: Path,
                       settings: Settings | None = None, executor: Executor | None = None,
                       truth: dict[str, dict] | None = None) -> Path:
    """Objectives 1–5 on per-cohort tables, rendered into ``out_dir``; returns the report's path. ``truth``: per
    cohort, a synthetic study's ``truth.json`` (the report then says the study is synthetic and checks it)."""
    return render_report(analyse(patients, lesions, settings, executor, truth), Path(out_dir))


def read_truth(clinical: Path, cohorts: list[str]) -> dict[str, dict]:
    """``<clinical>/<cohort>/truth.json`` of each cohort that has one (a synthetic study's generator writes it)."""
    out = {}
    for c in cohorts:
        path = Path(clinical) / c / TRUTH
        if path.is_file():
            try:
                out[c] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not a readable truth file ({exc})") from exc
    return out


def run(out: Path, clinical: Path, executor: Executor | None = None, settings: Settings | None = None
        ) -> dict[str, str]:
    """The analysis stage over a run's output folder ``out`` (after :func:`sonimage.stages.extract.run`) and the
    trial office's ``clinical`` tables: writes ``out/report/`` (excluded patients, report, metrics, models,
    benefit)."""
    settings = settings or Settings()
    tables = study_tables(Path(out) / FEATURES, Path(clinical))
    report_dir = Path(out) / REPORT
    write_table(tables.excluded, report_dir / "excluded.parquet", metadata=settings.metadata())
    report = run_study_analysis(tables.patients, tables.lesions, report_dir, settings, executor,
                                read_truth(Path(clinical), list(tables.patients)))
    return {"report": str(report), "metrics": str(report_dir / "metrics.json")}
