"""The study report: one self-contained HTML file with embedded figures, plus metrics as JSON."""

from sonimage.report.study import run_study_analysis

__all__ = ["run_study_analysis"]
