"""The study report: one self-contained HTML file with embedded figures, plus metrics as JSON."""
