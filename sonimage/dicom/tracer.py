"""Recognise the PET tracer from the radiopharmaceutical description."""

from __future__ import annotations

TRACER_WORDS = {
    "FES": ("FES", "ESTRADIOL", "OESTRADIOL", "FLUOROESTRADIOL", "CERIANNA"),
    "FDG": ("FDG", "FLUORODEOXYGLUCOSE", "DEOXYGLUCOSE"),
}


def tracer_name(description: str) -> str:
    """'FES', 'FDG' or 'unknown' from a free-text radiopharmaceutical or series description."""
    text = description.upper().replace("-", " ").replace("_", " ")
    words = set(text.split())
    for tracer, keys in TRACER_WORDS.items():
        if any(k in words or (len(k) > 4 and k in text) for k in keys):
            return tracer
    return "unknown"
