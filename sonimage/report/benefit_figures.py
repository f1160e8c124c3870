"""Figures for predicted treatment benefit: calibration of benefit and treatment-selection decision curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sonimage.report.figures import COLOURS, _png, _y_range


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, legend_size: float) -> bytes:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=12)
    ax.legend(frameon=False, fontsize=legend_size, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.grid(alpha=0.25)
    return _png(fig)


def benefit_calibration_plot(curves: dict[str, dict], horizon: float, title: str) -> bytes:
    """Observed vs predicted benefit (percentage points): groups with 95 % CIs and the smoothed curve."""
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    lo_all, hi_all = [0.0], [0.0]
    for (name, c), colour in zip(curves.items(), COLOURS):
        g = c["groups"]
        x = 100 * np.array([r["predicted_benefit"] for r in g])
        y = 100 * np.array([r["observed_benefit"] for r in g])
        lo = 100 * np.array([r["lower"] for r in g])
        hi = 100 * np.array([r["upper"] for r in g])
        err = np.vstack([np.where(np.isfinite(lo), y - lo, 0), np.where(np.isfinite(hi), hi - y, 0)])
        ax.errorbar(x, y, yerr=err, fmt="o", color=colour, capsize=3, label=f"{name}: groups (95 % CI)")
        sm = c.get("smooth")
        if sm and len(sm["predicted"]):
            ax.plot(100 * np.asarray(sm["predicted"]), 100 * np.asarray(sm["observed"], float), color=colour,
                    lw=1.6, alpha=0.8, label=f"{name}: smoothed (matched pairs)")
        lo_all += [np.nanmin(np.r_[x, lo])]
        hi_all += [np.nanmax(np.r_[x, hi])]
    lim = (min(lo_all) - 5, max(hi_all) + 5)
    ax.plot(lim, lim, color="#888", lw=1, ls="--", label="ideal")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    return _finish(fig, ax, f"Predicted gain in PFS1 at {horizon:g} months (points)",
                   "Observed gain, KM CDK4/6i − no CDK4/6i (points)", title, 8.5)


def treatment_decision_curve(curves: dict[str, dict], horizon: float, title: str) -> bytes:
    """Net benefit (events avoided per patient) of treating by predicted benefit > threshold, treat all, none."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    first = next(iter(curves.values()))
    th = 100 * np.asarray(first["thresholds"])
    ax.plot(th, first["treat_all"], color="#888", lw=1.5, ls="--", label="treat all with CDK4/6i")
    ax.plot(th, np.zeros_like(th), color="black", lw=1.2, label="treat none")
    for (name, c), colour in zip(curves.items(), COLOURS):
        ax.plot(100 * np.asarray(c["thresholds"]), np.asarray(c["model"], float), color=colour, lw=2.2,
                label=f"{name}: treat if predicted benefit > threshold")
    ax.set_ylim(*_y_range(curves, first["treat_all"]))
    return _finish(fig, ax, f"Smallest gain in PFS1 at {horizon:g} months worth treating (points)",
                   "Net benefit (progressions avoided per patient)", title, 9)
