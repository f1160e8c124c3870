"""The IBSI 2 benchmark: every phase-1 response-map test and phase-2 feature configuration, and phase 2's image
processing.

Settings transcribed from the IBSI 2 reference manual (Depeursinge, Andrearczyk, Whybra et al.,
arXiv:2006.05470, phase 1 table of response-map tests; phase 2 tables of configurations), cross-checked with
MIRP's public IBSI 2 tests. Axis-wise settings (Laws kernels, wavelet sets, Riesz orders) are in x, y, z order.

Phase 2 runs on the CT radiomics phantom: configuration A is 2D (slice-wise filters) on the original grid;
configuration B is 3D on a 1 mm isotropic grid (image: tricubic spline, rounded to integers; mask: trilinear,
partial-volume threshold 0.5). Both re-segment the mask to [-1000, 400] HU of the unfiltered image, filter with
mirror boundaries (Simoncelli: periodic, its FFT's own, on the whole image, as the reference values were made) and
take the intensity statistics of the response inside the 3D mask.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from sonimage.features import statistics
from sonimage.features.base import FeatureSettings, Roi
from sonimage.features.families import crop
from sonimage.features.filters import FilterSpec, filtered_statistics

PI = np.pi
_ = FilterSpec.of

# test id -> (digital phantom, filter)
PHASE1: dict[str, tuple[str, FilterSpec]] = {
    "1_a_1": ("checkerboard", _("mean", support=15, boundary="zero")),
    "1_a_2": ("checkerboard", _("mean", support=15, boundary="nearest")),
    "1_a_3": ("checkerboard", _("mean", support=15, boundary="periodic")),
    "1_a_4": ("checkerboard", _("mean", support=15, boundary="mirror")),
    "1_b_1": ("impulse", _("mean", support=15, boundary="zero", dims="2D")),
    "2_a": ("impulse", _("log", sigma_mm=3.0, truncate=4.0, boundary="zero")),
    "2_b": ("checkerboard", _("log", sigma_mm=5.0, truncate=4.0, boundary="mirror")),
    "2_c": ("checkerboard", _("log", sigma_mm=5.0, truncate=4.0, boundary="mirror", dims="2D")),
    "3_a_1": ("impulse", _("laws", kernel="E5L5S5", boundary="zero")),
    "3_a_2": ("impulse", _("laws", kernel="E5L5S5", boundary="zero", rotation_invariant=True, pooling="max")),
    "3_a_3": ("impulse", _("laws", kernel="E5L5S5", boundary="zero", rotation_invariant=True, pooling="max",
                           energy_distance=7)),
    "3_b_1": ("checkerboard", _("laws", kernel="E3W5R5", boundary="mirror")),
    "3_b_2": ("checkerboard", _("laws", kernel="E3W5R5", boundary="mirror", rotation_invariant=True,
                                pooling="max")),
    "3_b_3": ("checkerboard", _("laws", kernel="E3W5R5", boundary="mirror", rotation_invariant=True,
                                pooling="max", energy_distance=7)),
    "3_c_1": ("checkerboard", _("laws", kernel="L5S5", boundary="mirror", dims="2D")),
    "3_c_2": ("checkerboard", _("laws", kernel="L5S5", boundary="mirror", dims="2D", rotation_invariant=True,
                                pooling="max")),
    "3_c_3": ("checkerboard", _("laws", kernel="L5S5", boundary="mirror", dims="2D", rotation_invariant=True,
                                pooling="max", energy_distance=7)),
    "4_a_1": ("impulse", _("gabor", sigma_mm=10.0, lambda_mm=4.0, gamma=0.5, theta=PI / 3, boundary="zero",
                           dims="2D")),
    "4_a_2": ("impulse", _("gabor", sigma_mm=10.0, lambda_mm=4.0, gamma=0.5, boundary="zero", dims="3D",
                           rotation_invariant=True, delta_theta=PI / 4, pooling="average")),
    "4_b_1": ("sphere", _("gabor", sigma_mm=20.0, lambda_mm=8.0, gamma=2.5, theta=5 * PI / 4, boundary="mirror",
                          dims="2D")),
    "4_b_2": ("sphere", _("gabor", sigma_mm=20.0, lambda_mm=8.0, gamma=2.5, boundary="mirror", dims="3D",
                          rotation_invariant=True, delta_theta=PI / 8, pooling="average")),
    "5_a_1": ("impulse", _("wavelet", wavelet="db2", bands="LHL", level=1, boundary="zero")),
    "5_a_2": ("impulse", _("wavelet", wavelet="db2", bands="LHL", level=1, boundary="zero",
                           rotation_invariant=True, pooling="average")),
    "6_a_1": ("sphere", _("wavelet", wavelet="coif1", bands="HHL", level=1, boundary="periodic")),
    "6_a_2": ("sphere", _("wavelet", wavelet="coif1", bands="HHL", level=1, boundary="periodic",
                          rotation_invariant=True, pooling="average")),
    "7_a_1": ("checkerboard", _("wavelet", wavelet="haar", bands="LLL", level=2, boundary="mirror",
                                rotation_invariant=True, pooling="average")),
    "7_a_2": ("checkerboard", _("wavelet", wavelet="haar", bands="HHH", level=2, boundary="mirror",
                                rotation_invariant=True, pooling="average")),
    "8_a_1": ("checkerboard", _("simoncelli", level=1, boundary="periodic")),
    "8_a_2": ("checkerboard", _("simoncelli", level=2, boundary="periodic")),
    "8_a_3": ("checkerboard", _("simoncelli", level=3, boundary="periodic")),
    "9_a": ("impulse", _("riesz", base="log", sigma_mm=3.0, truncate=4.0, order=(1, 0, 0), boundary="zero")),
    "9_b_1": ("sphere", _("riesz", base="log", sigma_mm=3.0, truncate=4.0, order=(0, 2, 0), boundary="zero")),
    "10_b_1": ("pattern_1", _("riesz", base="simoncelli", level=1, order=(0, 2, 0), boundary="nearest")),
}


def _pair(kind: str, a: dict, b: dict | None = None, **common: object) -> dict[str, FilterSpec]:
    """Configurations A (2D) and B (3D) of one filter; mirror boundaries unless ``a`` says otherwise."""
    a = {"boundary": "mirror", **a}
    return {"A": _(kind, dims="2D", **common, **a), "B": _(kind, dims="3D", **common, **(a if b is None else {**a, **b}))}


_PHASE2_FILTERS: dict[int, dict[str, FilterSpec] | None] = {
    1: None,
    2: _pair("mean", {}, support=5),
    3: _pair("log", {}, sigma_mm=1.5, truncate=4.0),
    4: _pair("laws", {"kernel": "L5E5"}, {"kernel": "L5E5E5"}, rotation_invariant=True, pooling="max",
             energy_distance=7),
    5: _pair("gabor", {}, sigma_mm=5.0, lambda_mm=2.0, gamma=1.5, rotation_invariant=True, delta_theta=PI / 8,
             pooling="average"),
    6: _pair("wavelet", {"bands": "LH"}, {"bands": "LLH"}, wavelet="db3", level=1, rotation_invariant=True,
             pooling="average"),
    7: _pair("wavelet", {"bands": "HH"}, {"bands": "HHH"}, wavelet="db3", level=2, rotation_invariant=True,
             pooling="average"),
    8: _pair("simoncelli", {"boundary": "periodic"}, level=1),
    9: _pair("simoncelli", {"boundary": "periodic"}, level=2),
}
# configuration id ("1.A" ... "9.B") -> filter (None: the unfiltered image)
PHASE2: dict[str, FilterSpec | None] = {f"{n}.{c}": (None if pair is None else pair[c])
                                        for n, pair in _PHASE2_FILTERS.items() for c in "AB"}
RESEGMENTATION_HU = (-1000.0, 400.0)


def resample(array: np.ndarray, spacing: tuple[float, float, float], new_spacing: float, order: int) -> np.ndarray:
    """``array`` on an isotropic grid of ``new_spacing`` mm whose centre is the original grid's centre
    (IBSI 1 grid alignment), by spline interpolation of ``order`` (3: tricubic, 1: trilinear)."""
    shape = [int(np.ceil(n * s / new_spacing)) for n, s in zip(array.shape, spacing)]
    coords = [((np.arange(m) - (m - 1) / 2) * new_spacing / s + (n - 1) / 2)
              for m, n, s in zip(shape, array.shape, spacing)]
    grid = np.meshgrid(*coords, indexing="ij")
    return ndimage.map_coordinates(np.asarray(array, dtype=np.float64), grid, order=order, mode="nearest")


def phase2_roi(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float], configuration: str) -> Roi:
    """The CT phantom's lesion processed as phase 2 ``configuration`` ("A" or "B") prescribes."""
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask) > 0
    if configuration == "B":
        image = np.round(resample(image, spacing, 1.0, 3))
        mask = resample(mask.astype(np.float64), spacing, 1.0, 1) >= 0.5
        spacing = (1.0, 1.0, 1.0)
    elif configuration != "A":
        raise ValueError(f"phase 2 configuration must be 'A' or 'B', got {configuration!r}")
    lo, hi = RESEGMENTATION_HU
    return Roi(image, mask & (image >= lo) & (image <= hi), tuple(float(s) for s in spacing))


# statistics.SPECS key -> the reference table's feature_tag
TAGS = {"mean": "stat_mean", "variance": "stat_var", "skewness": "stat_skew", "kurtosis": "stat_kurt",
        "median": "stat_median", "minimum": "stat_min", "p10": "stat_p10", "p90": "stat_p90",
        "maximum": "stat_max", "iqr": "stat_iqr", "range": "stat_range", "mad": "stat_mad", "rmad": "stat_rmad",
        "medad": "stat_medad", "cov": "stat_cov", "qcod": "stat_qcod", "energy": "stat_energy", "rms": "stat_rms"}


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A NIfTI volume as a (z, y, x) float64 array and its (z, y, x) spacing."""
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image).astype(np.float64), tuple(float(s) for s in image.GetSpacing()[::-1])


def phantom_path(root: Path, phantom: str) -> Path:
    """The digital phantom image ``phantom`` under the IBSI 2 data folder ``root``."""
    return Path(root) / "ibsi_2_digital_phantom" / "nifti" / phantom / "image" / f"{phantom}.nii.gz"


def reference_map_path(root: Path, test: str) -> Path:
    """The reference response map of phase-1 ``test`` under ``root``."""
    return Path(root) / "reference" / "reference_response_maps" / f"{test}-ValidCRM.nii"


def phase1_check(root: Path, test: str) -> tuple[dict[str, object], np.ndarray]:
    """Phase-1 ``test``'s row (max |error| as % of the reference map's range, pass at <= 1 %, CPU seconds) and
    the response map."""
    phantom, spec = PHASE1[test]
    image, spacing = read_nifti(phantom_path(root, phantom))
    reference, _ = read_nifti(reference_map_path(root, test))
    clock = time.process_time()
    response = spec.apply(image, spacing)
    cpu = time.process_time() - clock
    error = float(np.max(np.abs(response - reference)) / (reference.max() - reference.min()))
    return ({"test": test, "phantom": phantom, "filter": spec.text, "max_error_pct": 100 * error,
             "passed": error <= 0.01, "cpu_s": cpu}, response)


def phase2_check(root: Path, configurations: tuple[str, ...] = tuple(PHASE2)) -> list[dict[str, object]]:
    """One row per configuration and intensity statistic: value, consensus, tolerance, pass (|value - consensus|
    <= tolerance; a row whose consensus is not a number has none to meet), CPU seconds of the configuration."""
    root = Path(root)
    image, spacing = read_nifti(root / "ibsi_2_ct_radiomics_phantom" / "nifti" / "image" / "phantom.nii.gz")
    mask, _ = read_nifti(root / "ibsi_2_ct_radiomics_phantom" / "nifti" / "mask" / "mask.nii.gz")
    reference = pd.read_csv(root / "reference" / "reference_feature_values" / "reference_values.csv", sep=";")
    reference = reference.set_index(["filter_id", "feature_tag"])
    rois = {c: phase2_roi(image, mask, spacing, c) for c in sorted({c[-1] for c in configurations})}
    rows = []
    for configuration in configurations:
        spec, roi = PHASE2[configuration], rois[configuration[-1]]
        clock = time.process_time()
        if spec is None:
            features = statistics.compute(crop(roi, (0, 0, 0)), FeatureSettings())
        else:
            features = filtered_statistics(crop(roi, spec.reach(roi.spacing)), spec)
        cpu = time.process_time() - clock
        for (key, _, _), f in zip(statistics.SPECS, features):
            consensus, tolerance = reference.loc[(configuration, TAGS[key]), ["consensus_value", "tolerance"]]
            checkable = bool(np.isfinite(consensus) and np.isfinite(tolerance))
            rows.append({"configuration": configuration, "feature": TAGS[key], "value": f.value,
                         "consensus": consensus, "tolerance": tolerance, "checkable": checkable,
                         "passed": checkable and abs(f.value - consensus) <= tolerance,
                         "filter": "none" if spec is None else spec.text, "cpu_s": cpu})
    return rows
