"""Figures of the study report, drawn for a clinician: large labels, few colours, numbers at risk under KM plots.

Each function returns the figure as PNG bytes (matplotlib, Agg backend, no display needed).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sonimage.report.text import ci, finite  # noqa: E402

COLOURS = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#5f4b8b", "#66a182")
plt.rcParams.update({"font.size": 11, "axes.spines.top": False, "axes.spines.right": False})


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def km_plot(curves: dict[str, dict], title: str, logrank_p: float | None, ticks_every: float = 6.0,
            max_time: float | None = None) -> bytes:
    """Kaplan–Meier curves with a numbers-at-risk table under them, one labelled row per group;
    ``curves[g]`` has time, survival, n, median, follow_up."""
    k = len(curves)
    fig, (ax, tab) = plt.subplots(2, 1, figsize=(7.5, 4.4 + 0.32 * k), sharex=True,
                                  gridspec_kw={"height_ratios": [4.0, 0.45 + 0.32 * k], "hspace": 0.5})
    tmax = max_time or max((max(c["follow_up"]) for c in curves.values()), default=1.0)  # no curve: empty axes
    ticks = np.arange(0, tmax + 1e-9, ticks_every)
    for (name, c), colour in zip(curves.items(), COLOURS):
        t = np.r_[0.0, c["time"]]
        s = np.r_[1.0, c["survival"]]
        label = f"{name} (n = {c['n']}, median {c['median']:.1f} months)" if c.get("median") else \
            f"{name} (n = {c['n']}, median not reached)"
        ax.step(np.r_[t, tmax], np.r_[s, s[-1]], where="post", color=colour, lw=2, label=label)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, tmax)
    ax.set_ylabel("Progression-free (PFS1)")
    ptxt = f"log-rank p = {logrank_p:.2g}" if logrank_p is not None and np.isfinite(logrank_p) else ""
    ax.set_title(f"{title}   {ptxt}", loc="left", fontsize=12)
    if curves:
        ax.legend(loc="upper right", frameon=False, fontsize=9.5)
    ax.grid(alpha=0.25)
    ax.tick_params(labelbottom=True)
    ax.set_xticks(ticks)
    ax.set_xlabel("Months since randomisation")
    tab.set_ylim(-0.6, k - 0.4)
    for side in ("top", "right", "bottom", "left"):
        tab.spines[side].set_visible(False)
    tab.tick_params(length=0, labelbottom=False)
    tab.tick_params(axis="y", pad=16)  # clear of the counts at time 0
    tab.set_yticks(range(k))
    tab.set_yticklabels(list(curves)[::-1], fontsize=9.5)
    for lab, colour in zip(tab.get_yticklabels(), COLOURS[:k][::-1]):
        lab.set_color(colour)
    tab.set_title("Number at risk", loc="left", fontsize=10, fontweight="bold")
    for i, (c, colour) in enumerate(zip(curves.values(), COLOURS)):
        fu = np.asarray(c["follow_up"])
        for tk in ticks:
            tab.text(tk, k - 1 - i, str(int((fu >= tk).sum())), ha="center", va="center", color=colour,
                     fontsize=10)
    return _png(fig)


def _y_range(curves: dict[str, dict], treat_all: list[float]) -> tuple[float, float]:
    """Net-benefit axis showing every model curve, treat-none (0) and treat-all down to where the model curves
    end (a treat-all line falling far below them is drawn to the axis edge, not hidden)."""
    model = np.concatenate([np.asarray(c["model"], float) for c in curves.values()])
    values = np.r_[model[np.isfinite(model)], 0.0, np.asarray(treat_all, float)[:1]]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * max(hi - lo, 0.05)
    return lo - pad, hi + pad


def forest_plot(rows: list[dict], title: str, xlabel: str = "Hazard ratio (95 % CI), log scale") -> bytes:
    """Horizontal forest plot of hazard ratios; rows have label, hr, lower, upper (and optionally n). Rows without
    a finite estimate are left out (the report's table names them)."""
    rows = [r for r in rows if finite(r.get("hr")) and finite(r.get("lower")) and finite(r.get("upper"))]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        ax.plot([r["lower"], r["upper"]], [yi, yi], color="#333", lw=1.6)
        ax.plot(r["hr"], yi, "s", color=COLOURS[0], ms=7)
        ax.text(1.02, yi, ci(r["hr"], r["lower"], r["upper"]), transform=ax.get_yaxis_transform(),
                va="center", fontsize=10)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['label']}" + (f"  (n={r['n']})" if "n" in r else "") for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=12)
    lo = max(min((r["lower"] for r in rows), default=0.5) / 1.3, 0.02)  # no estimable row: empty axes
    hi = min(max((r["upper"] for r in rows), default=2.0) * 1.3, 50)
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 10, 25) if lo <= t <= hi]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    return _png(fig)


def calibration_plot(curves: dict[str, dict], horizon: float, title: str = "Calibration") -> bytes:
    """Flexible calibration curves (Austin 2020) of several cohorts, predicted vs observed risk by the horizon."""
    fig, ax = plt.subplots(figsize=(5.6, 5.4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for (name, c), colour in zip(curves.items(), COLOURS):
        ax.plot(c["predicted"], c["observed"], color=colour, lw=2.2, label=name)
        if c.get("grouped") is not None:
            g = c["grouped"]
            ax.plot(g["predicted"], g["observed"], "o", color=colour, ms=6, alpha=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"Predicted risk of progression by {horizon:g} months")
    ax.set_ylabel(f"Observed risk by {horizon:g} months")
    ax.set_title(f"{title} (line: flexible; dots: fifths)", loc="left", fontsize=12)
    ax.legend(frameon=False, fontsize=9.5, loc="upper left")
    ax.grid(alpha=0.25)
    return _png(fig)


def benefit_histogram(values: dict[str, np.ndarray], horizon: float) -> bytes:
    """Distribution of predicted absolute benefit (percentage points of PFS at the horizon)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    allv = np.concatenate([np.asarray(v) for v in values.values()]) * 100
    bins = np.linspace(min(allv.min(), 0), allv.max() + 1e-9, 25)
    for (name, v), colour in zip(values.items(), COLOURS):
        ax.hist(np.asarray(v) * 100, bins=bins, alpha=0.55, color=colour, label=name)
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_xlabel(f"Predicted gain in PFS1 at {horizon:g} months from adding CDK4/6i (percentage points)")
    ax.set_ylabel("Patients")
    ax.set_title("Who is predicted to benefit, and how much", loc="left", fontsize=12)
    ax.legend(frameon=False)
    return _png(fig)


def decision_curve(curves: dict[str, dict], horizon: float, title: str = "Decision curve") -> bytes:
    """Net benefit against threshold risk for models, treat-all and treat-none."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    first = next(iter(curves.values()))
    th = np.asarray(first["thresholds"])
    ax.plot(th, first["treat_all"], color="#888", lw=1.5, ls="--", label="treat all")
    ax.plot(th, np.zeros_like(th), color="black", lw=1.2, label="treat none")
    for (name, c), colour in zip(curves.items(), COLOURS):
        ax.plot(c["thresholds"], np.asarray(c["model"], float), color=colour, lw=2.2, label=name)
    ax.set_ylim(*_y_range(curves, first["treat_all"]))
    ax.set_xlabel(f"Threshold risk of progression by {horizon:g} months")
    ax.set_ylabel("Net benefit")
    ax.set_title(title, loc="left", fontsize=12)
    ax.legend(frameon=False, fontsize=9.5)
    ax.grid(alpha=0.25)
    return _png(fig)


def response_plot(points: dict) -> bytes:
    """Lesion size change at follow-up against baseline FES SUV, by arm."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    x = np.exp(np.asarray(points["log_fes_suv"]))
    y = np.asarray(points["response_pct"])
    arm = np.asarray(points["cdk46i"])
    for a, label, colour in ((0, "AI", COLOURS[1]), (1, "AI + CDK4/6i", COLOURS[0])):
        m = arm == a
        ax.scatter(x[m], y[m], s=9, alpha=0.45, color=colour, label=label)
    ax.axhline(-30, color="grey", ls=":", lw=1)
    ax.axhline(20, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("Baseline FES SUVmax of the lesion (log scale)")
    ax.set_ylabel("Change in lesion size at follow-up (%)")
    ax.set_title("Lesion response (dotted: −30 % PR, +20 % PD)", loc="left", fontsize=12)
    ax.legend(frameon=False, markerscale=2)
    return _png(fig)
