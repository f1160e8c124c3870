"""Benchmark: Harrell bootstrap internal validation (whole pipeline refitted, penalty tuning included).

B = 200 and 1,000 replicates on n = 100 and n = 1,000 simulated SONIA patients, serial and on a 2-worker Dask
LocalCluster (processes), side by side with the same pipeline fitted by lifelines' CoxPHFitter (what a user
would otherwise write; B = 200 only, it is slow). Prints a table and writes bench/results/survival.json.

    .venv/bin/python bench/survival.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sonimage.survival.internal import EffectModel, bootstrap_optimism
from sonimage.synth.tables import simulate_cohort_tables

FORMULA = "cdk46i*(fes_positive_fraction + ecog + visceral)"
GRID = (0.0, 0.05, 0.2, 1.0)
FOLDS = 5


@dataclass(frozen=True)
class LifelinesEffectModel(EffectModel):
    """The same recipe with every fit done by lifelines' CoxPHFitter (baseline for comparison)."""

    def fit(self, df: pd.DataFrame):
        from lifelines import CoxPHFitter

        from sonimage.survival.cox import FrozenCox, breslow_baseline
        from sonimage.survival.data import make_design

        design = make_design(df, self.formula)
        x = design.matrix(df)
        t, e = df[self.time].to_numpy(float), df[self.event].to_numpy(int)
        pen_mask = np.array([":" in c for c in x.columns], float)
        fold = np.random.default_rng(self.seed).permutation(len(df)) % self.folds
        from sonimage.survival.cox import partial_log_likelihood

        def lfit(rows, pen):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = CoxPHFitter(penalizer=pen * pen_mask if pen else 0.0)
                c.fit(x[rows].assign(_t=t[rows], _e=e[rows]), "_t", "_e")
            return c.params_.to_numpy()

        scores = []
        for pen in self.penalizers:
            cvl = 0.0
            for k in range(self.folds):
                tr = fold != k
                lp = x.to_numpy() @ lfit(tr, pen)
                cvl += partial_log_likelihood(t, e, lp) - partial_log_likelihood(t[tr], e[tr], lp[tr])
            scores.append(cvl)
        beta = lfit(np.ones(len(df), bool), self.penalizers[int(np.argmax(scores))])
        centre = x.mean().to_numpy()
        bt, bh = breslow_baseline(t, e, (x.to_numpy() - centre) @ beta)
        return FrozenCox(self.formula, design.terms, design.levels, dict(zip(x.columns, beta)), {},
                         dict(zip(x.columns, centre)), tuple(bt), tuple(bh))


def _warm_up() -> None:
    importlib.import_module("sonimage.survival.internal")


def _time(pipeline, df, b, executor=None) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = bootstrap_optimism(pipeline, df, n_boot=b, executor=executor)
    return time.perf_counter() - t0, res


def _write(out: Path, rows: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"pipeline": {"formula": FORMULA, "penalizer_grid": GRID, "folds": FOLDS,
                                            "fits_per_replicate": len(GRID) * FOLDS + 1},
                               "machine_cores": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                               "rows": rows}, indent=1))
    os.replace(tmp, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n x B = 100x20, 1000x20, 100x50, 1000x50 (smoke run)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "survival.json"))
    args = ap.parse_args()
    # cheapest first; the results file is rewritten after every row, so a long run can be read while it goes
    configs = [(100, 20), (1000, 20), (100, 50), (1000, 50)] if args.quick else \
        [(100, 200), (1000, 200), (100, 1000), (1000, 1000)]
    baseline_b = configs[0][1]
    from distributed import Client

    from sonimage.cluster import local_cluster

    out = Path(args.out)
    rows: list[dict] = []
    with local_cluster(2) as cluster, Client(cluster) as client:
        # a long-lived cluster has its workers warm: import the library there before timing
        client.run(_warm_up)
        for n, b in configs:
            df = simulate_cohort_tables("sonia", n, seed=0).patients
            ours = EffectModel(FORMULA, "pfs1_months", "pfs1_event", penalizers=GRID, folds=FOLDS)
            runs = {"sonimage serial": lambda: _time(ours, df, b),
                    "sonimage dask 2 workers": lambda: _time(ours, df, b, client)}
            if b == baseline_b:
                ll = LifelinesEffectModel(FORMULA, "pfs1_months", "pfs1_event", penalizers=GRID, folds=FOLDS)
                runs["lifelines serial"] = lambda: _time(ll, df, b)
            for name, run in runs.items():
                secs, res = run()
                rows.append({"n": n, "B": b, "engine": name, "seconds": round(secs, 2),
                             "ms_per_replicate": round(1000 * secs / b, 1),
                             "corrected_c": round(res["corrected"]["harrell_c"], 4),
                             "shrinkage": round(res["shrinkage"], 4), "load_average_1min": os.getloadavg()[0]})
                print(rows[-1], flush=True)
                _write(out, rows)
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
