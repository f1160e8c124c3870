"""The study report: renders an analysed study as one self-contained HTML file with embedded figures, plus
metrics as JSON."""

from sonimage.report.document import render_report

__all__ = ["render_report"]
