"""IBSI 1 compliance on the CT radiomics phantom: the pass table of configurations A to E.

One command: ``python bench/ibsi1.py`` reads the phantom from ../shared/data/ibsi-2/ibsi_2_ct_radiomics_phantom
(the same image as IBSI 1's CT phantom; CC BY-NC, read, never copied), computes every configuration with
:mod:`sonimage.features.compliance`, scores it against tests/features/data/ibsi1_ct_phantom_reference.csv (IBSI's rule:
3 significant digits, |value - reference| <= tolerance), prints passes per configuration and family, lists any
failure, and writes bench/results/ibsi1.json. Also the CPU seconds per configuration (load noted).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from machine import describe, load, load_line
from sonimage.features.base import Roi
from sonimage.features.compliance import CONFIGURATIONS, configuration_values, feature_key, score

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))
REFERENCE = REPO / "tests" / "features" / "data" / "ibsi1_ct_phantom_reference.csv"
RESULTS = REPO / "bench" / "results"


def read_phantom(folder: Path) -> Roi:
    """The CT phantom image (HU) and its GTV mask."""
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))) > 0
    return Roi(sitk.GetArrayFromImage(image).astype(np.float64), mask, tuple(reversed(image.GetSpacing())))


def family_of(tag: str) -> str:
    key = feature_key(tag)
    return "diagnostics" if key is None else key[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantom", type=Path, default=SHARED / "ibsi-2" / "ibsi_2_ct_radiomics_phantom" / "nifti")
    args = parser.parse_args()
    before = load()
    roi = read_phantom(args.phantom)
    reference = pd.read_csv(REFERENCE)
    tables, cpu = [], {}
    for name in CONFIGURATIONS:
        rows = reference[reference.configuration == name]
        start = time.process_time()
        values = configuration_values(roi, name, rows.tag)
        cpu[name] = time.process_time() - start
        result = score(values, rows).assign(configuration=name)
        tables.append(result.assign(family=[family_of(t) for t in result.tag]))
    table = pd.concat(tables)
    counts = table.groupby(["family", "configuration"]).passed.agg(["sum", "size"])
    grid = counts.apply(lambda r: f"{r['sum']}/{r['size']}", axis=1).unstack("configuration").fillna("")
    totals = table.groupby("configuration").passed.agg(["sum", "size"])
    grid.loc["total"] = [f"{totals.loc[c, 'sum']}/{totals.loc[c, 'size']}" for c in grid.columns]
    grid.loc["CPU s"] = [f"{cpu[c]:.2f}" for c in grid.columns]
    print("IBSI 1 CT phantom, configurations A-E: reference values passing (3 significant digits, within tolerance)")
    print(grid.to_string())
    failures = table[~table.passed]
    print("failures: none" if failures.empty else f"failures:\n{failures.to_string()}")
    print(load_line(before, load()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"machine": describe() | before, "passed": {c: int(totals.loc[c, "sum"]) for c in totals.index},
           "rows": {c: int(totals.loc[c, "size"]) for c in totals.index}, "cpu_s": cpu,
           "failures": failures.to_dict("records")}
    (RESULTS / "ibsi1.json").write_text(json.dumps(out, indent=2))
    print(f"written: {RESULTS / 'ibsi1.json'}")


if __name__ == "__main__":
    main()
