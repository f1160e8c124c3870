"""Numbers and names as a journal prints them, and metrics as strict JSON.

Numbers: a real minus sign (U+2212), never "-0.00", intervals "(−1.18 to −0.23)", p-values "p = 0.03" or
"p < 0.001"; a missing number is "–" in a table and "not estimable (reason)" in a sentence, never "nan" or "inf".
"""

from __future__ import annotations

import math
import re
from typing import Any

MINUS = "\u2212"

# Readable names (with units) of the model terms and table columns the report prints.
LABELS = {
    "any_fes_negative": "Any FES-negative lesion (yes vs no)",
    "fes_positive_fraction": "FES-positive fraction of lesions (per 1 = all vs none)",
    "log_fdg_suvmax3": "FDG SUVmax3 (per unit of ln SUV, i.e. ×2.72)",
    "log_fdg_mtv": "FDG metabolic tumour volume (per unit of ln mL)",
    "age": "Age (per year)",
    "ecog": "ECOG performance status (per point)",
    "de_novo": "De novo metastatic disease (yes vs no)",
    "visceral": "Visceral disease (yes vs no)",
    "prior_endocrine": "Prior (neo)adjuvant endocrine therapy (yes vs no)",
    "bone_only": "Bone-only disease (yes vs no)",
    "cdk46i": "CDK4/6 inhibitor (AI + CDK4/6i vs AI)",
    "chemo": "Chemotherapy (yes vs no)",
    "cdk46i:any_fes_negative": "CDK4/6i × any FES-negative lesion",
    "cdk46i:fes_positive_fraction": "CDK4/6i × FES-positive fraction",
    "neg_ai": "Any FES-negative lesion, AI arm",
    "neg_cdk": "Any FES-negative lesion, AI + CDK4/6i arm",
    "log_fes_suv": "Lesion FES SUVmax (per unit of ln SUV)",
    "log_fdg_suv": "Lesion FDG SUVmax (per unit of ln SUV)",
    "log_size": "Lesion size (per unit of ln mm)",
    "log_size_cm": "Lesion size (per unit of ln cm)",
    "intercept": "Intercept",
}


def label(term: str) -> str:
    """A model term's readable name: known terms and their products, an optional "prefix: " kept."""
    prefix, _, name = term.rpartition(": ")
    level = re.fullmatch(r"(\w+)\[(.+)\]", name)  # a category level, e.g. organ[lung]
    if level:
        text = f"{level[1].replace('_', ' ').capitalize()}: {level[2]}"
    elif name in LABELS:
        text = LABELS[name]
    elif ":" in name:
        text = " × ".join(LABELS.get(p, p).split(" (")[0] for p in name.split(":"))
    else:
        text = LABELS.get(name, name.replace("_", " "))
    return f"{prefix}: {text}" if prefix else text


def finite(x: Any) -> bool:
    """A real, finite number (not None, NaN or ±inf)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any, digits: int = 2) -> str:
    """``x`` rounded to ``digits`` with a real minus and no negative zero; "–" when missing or not finite."""
    if not finite(x):
        return "–"
    x = float(x)
    if x != 0 and abs(x) < 0.5 * 10 ** -digits:  # would print as zero
        bound = f"{10 ** -digits:.{digits}f}"
        text = f"< {bound}" if x > 0 else f"> -{bound}"
    else:
        text = f"{x:.{digits}f}"
        if float(text) == 0:
            text = text.lstrip("-")
    return text.replace("-", MINUS)


def ci(est: Any, lo: Any, hi: Any, digits: int = 2) -> str:
    """"0.62 (0.41 to 0.93)"; the estimate alone without a finite interval; "–" without an estimate."""
    if not finite(est):
        return "–"
    if finite(lo) and finite(hi):
        return f"{num(est, digits)} ({num(lo, digits)} to {num(hi, digits)})"
    return num(est, digits)


def pval(p: Any) -> str:
    """"0.03", "0.004", "< 0.001"; "–" when missing."""
    if not finite(p):
        return "–"
    return "< 0.001" if p < 0.001 else num(p, 3) if p < 0.01 else num(p, 2 if p >= 0.1 else 3)


def hr_text(r: dict, what: str = "HR") -> str:
    """"HR 0.62 (0.41 to 0.93), p = 0.03" for a Cox row, or "not estimable: reason"."""
    if not finite(r.get("hr")):
        return f"{what} not estimable: {r.get('not_estimable') or 'no finite estimate'}"
    p = pval(r.get("p"))
    return f"{what} {ci(r['hr'], r.get('lower'), r.get('upper'))}, p {p if p.startswith('<') else '= ' + p}"


def strict_json(obj: Any, reason: str = "") -> Any:
    """``obj`` with every NaN or ±inf replaced by ``null`` and, beside it, ``"<key>_null_reason"`` saying why
    (the row's own ``not_estimable`` / ``reason`` where it has one). Lists holding such values get one reason
    for their null entries. The result passes a strict JSON parser."""
    if isinstance(obj, dict):
        why = obj.get("not_estimable") or obj.get("reason") or obj.get("not_assessed") or reason
        out: dict = {}
        for k, v in obj.items():
            if _bad(v) or (v is None and k in _NUMERIC):
                out[k] = None
                out[f"{k}_null_reason"] = _why(v, why) if why or k not in _KEY_REASONS else _KEY_REASONS[k]
            elif isinstance(v, (list, tuple)) and any(_bad(x) for x in v):
                out[k] = [None if _bad(x) else strict_json(x, why) for x in v]
                out[f"{k}_null_reason"] = _why(next(x for x in v if _bad(x)), why) + " (the null entries)"
            else:
                out[k] = strict_json(v, why)
        return out
    if isinstance(obj, (list, tuple)):
        return [None if _bad(x) else strict_json(x, reason) for x in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalars and arrays
        return strict_json(obj.tolist(), reason)
    return obj


_NUMERIC = {"coef", "se", "hr", "lower", "upper", "p", "p_holm", "p_fdr", "estimate", "median", "logrank_p",
            "min_p", "max_abs_interaction"}
_KEY_REASONS = {"median": "not reached: the Kaplan-Meier curve stays above 50 %",
                "logrank_p": "fewer than two groups with at least 5 patients",
                "max_abs_interaction": "the model has no interaction term",
                "p_holm": "the test has no p-value (not estimable), so it is not adjusted",
                "p_fdr": "the test has no p-value (not estimable), so it is not adjusted"}


def _bad(x: Any) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def _why(x: Any, why: str) -> str:
    if why:
        return f"not estimable: {why}"
    if isinstance(x, float) and math.isinf(x):
        return "unbounded (infinite) value"
    return "not defined for these data (e.g. no patients or pairs to compute it from)"
