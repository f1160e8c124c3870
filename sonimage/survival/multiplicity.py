"""Multiplicity control for the families of tests a report prints.

Holm's step-down (Holm, Scand J Stat 1979) controls the family-wise error rate; Benjamini–Hochberg's step-up
(J R Stat Soc B 1995) controls the false discovery rate. Both return adjusted p-values (as R's ``p.adjust``).
Each objective has one pre-specified primary test; every other test of a family is exploratory.
"""

from __future__ import annotations

import numpy as np


def _finite_order(p: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p as floats, an all-NaN output, and the indices of the finite p-values sorted ascending."""
    p = np.asarray(p, float)
    ok = np.flatnonzero(np.isfinite(p))
    return p, np.full(p.shape, np.nan), ok[np.argsort(p[ok], kind="stable")]


def holm(p: list[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (R ``p.adjust(method = "holm")``); NaN stays NaN and does not count."""
    p, out, order = _finite_order(p)
    m = order.size
    if m:
        out[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return out


def benjamini_hochberg(p: list[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg FDR-adjusted p-values (R ``p.adjust(method = "BH")``); NaN stays NaN."""
    p, out, order = _finite_order(p)
    m = order.size
    if m:
        desc = order[::-1]  # largest first
        out[desc] = np.minimum(np.minimum.accumulate(m / np.arange(m, 0, -1) * p[desc]), 1.0)
    return out


def adjust_family(rows: list[dict], primary: str | None = None, key: str = "p", label: str = "term") -> list[dict]:
    """Rows of one family of tests with ``p_holm``, ``p_fdr`` and ``role`` (``primary`` or ``exploratory``).

    ``primary`` names the row (by ``label``) pre-specified as the family's primary analysis; its unadjusted p is
    the confirmatory one, the adjusted values say what the whole family can claim. A row without a p-value (not
    estimable) is not counted and gets ``None``.
    """
    p = [np.nan if r.get(key) is None else r[key] for r in rows]
    ph, pf = holm(p), benjamini_hochberg(p)
    return [{**r, "p_holm": float(h) if np.isfinite(h) else None, "p_fdr": float(f) if np.isfinite(f) else None,
             "role": "primary" if primary is not None and r.get(label) == primary else "exploratory"}
            for r, h, f in zip(rows, ph, pf)]
