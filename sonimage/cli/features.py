"""`sonimage features`: IBSI lesion features of one image and its lesion mask(s), one row per lesion.

The image is a NIfTI file, a DICOM series folder (PET read as SUVbw) or a sonimage Zarr store; the mask a NIfTI
label map, a DICOM RTSTRUCT (every ROI, one row each, unless ``--roi`` picks some), a DICOM SEG or a Zarr label
store. A lesion that cannot be computed (empty mask, NaN inside, mask off the grid) gets a row with its ``error``
and no values; the exit code is then 1, while the table is still written.

``--filter KIND:KEY=VALUE,...`` (repeatable) adds the 18 intensity statistics of an IBSI-2 filter's response map
(kinds mean, log, laws, gabor, wavelet, simoncelli, riesz; e.g. ``log:sigma_mm=1.5`` or
``wavelet:wavelet=db3,bands=LLH,rotation_invariant=true``; angles in radians, ``pi/8`` allowed; Riesz orders as
``0/2/0``). Their columns end in ``__filter_<kind>_<settings>``, and the feature dictionary's aggregation holds
every setting of the filter. Filters work on the image grid as given (sizes in voxels, sigma and lambda in mm).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sonimage.features.base import FeatureSettings
from sonimage.features.families import ALL_FAMILIES
from sonimage.features.filters import FilterSpec
from sonimage.stages.scan import scan_lesions
from sonimage.features.table import feature_table, write_table


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _filter(text: str) -> FilterSpec:
    try:
        return FilterSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ratio(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `features` sub-command."""
    p = sub.add_parser("features", help="IBSI lesion features to Parquet/CSV, one row per lesion",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, type=Path, help="NIfTI file, DICOM series folder or Zarr store")
    p.add_argument("--mask", required=True, type=Path, help="NIfTI label map, RTSTRUCT, SEG or Zarr label store")
    p.add_argument("--roi", action="append", help="RTSTRUCT ROI or SEG segment name (repeatable; default all)")
    p.add_argument("--label", type=int, default=1, help="label value in a label map, SEG segment number (default 1)")
    binning = p.add_mutually_exclusive_group()
    binning.add_argument("--bin-width", type=float, help="fixed bin size, in image units (e.g. 0.5 SUV)")
    binning.add_argument("--bin-count", type=int, help="fixed bin number")
    p.add_argument("--bin-lower-bound", type=float, help="lower bound of the first bin (fixed bin size only)")
    ivh = p.add_mutually_exclusive_group()
    ivh.add_argument("--ivh-bin-width", type=float, help="bin width of the intensity-volume histogram")
    ivh.add_argument("--ivh-bin-count", type=int, help="bin number of the intensity-volume histogram")
    processing = p.add_argument_group("IBSI image processing (off by default)")
    processing.add_argument("--voxel-size", type=float, help="interpolate to isotropic voxels of this size (mm)")
    processing.add_argument("--interpolation", choices=["linear", "cubic"], default="linear",
                            help="image interpolation: trilinear or tricubic spline (mask: trilinear, kept at "
                            "partial volume >= 0.5)")
    processing.add_argument("--in-plane", action="store_true", help="interpolate in-plane only (2D analyses)")
    processing.add_argument("--round-intensities", action="store_true",
                            help="round interpolated intensities to integers (CT)")
    processing.add_argument("--resegment", nargs=2, type=float, metavar=("MIN", "MAX"),
                            help="keep voxels with intensities in [MIN, MAX] (use -inf/inf for one side)")
    processing.add_argument("--outlier-sd", type=float, help="keep voxels within mean ± k SD (IBSI: 3)")
    p.add_argument("--families", nargs="+", default=list(ALL_FAMILIES), choices=ALL_FAMILIES, metavar="FAMILY",
                   help=f"feature families (default all: {' '.join(ALL_FAMILIES)})")
    p.add_argument("--dims", nargs="+", default=["3D"], choices=["2D", "2.5D", "3D"],
                   help="texture aggregations (default 3D)")
    p.add_argument("--filter", action="append", type=_filter, default=[], metavar="KIND:KEY=VALUE,...",
                   help="IBSI-2 filter whose response's intensity statistics to add (repeatable), e.g. "
                   "log:sigma_mm=1.5,boundary=mirror")
    p.add_argument("--sul-ratio", type=_ratio, help="SUL/SUV factor ratio (lean body mass / body weight), or 'auto' to take "
                   "the image's Janmahasatian ratio; SUL rows are omitted without it")
    p.add_argument("--id", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="identifying column for every row (e.g. patient=P0001 tracer=FDG); repeatable")
    p.add_argument("--out", required=True, type=Path, help="output table (.parquet or .csv)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute and write the table; exit code 1 when any lesion has an error."""
    if args.bin_lower_bound is not None and args.bin_width is None:
        raise ValueError("--bin-lower-bound needs --bin-width")
    if args.out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"{args.out}: output must end in .parquet or .csv")
    low, high = args.resegment or (None, None)
    settings = FeatureSettings(bin_width=args.bin_width, bin_lower_bound=args.bin_lower_bound,
                               bin_count=args.bin_count, ivh_bin_width=args.ivh_bin_width,
                               ivh_bin_count=args.ivh_bin_count, voxel_size=args.voxel_size,
                               interpolation=args.interpolation, interpolate_in_plane=args.in_plane,
                               round_intensities=args.round_intensities, outlier_sd=args.outlier_sd,
                               resegment_min=low if low is not None and np.isfinite(low) else None,
                               resegment_max=high if high is not None and np.isfinite(high) else None)
    lesions = scan_lesions(args.image, args.mask, settings, tuple(args.families), tuple(args.dims),
                           tuple(args.roi) if args.roi else None, args.label, args.sul_ratio, dict(args.id),
                           tuple(args.filter))
    table, dictionary = feature_table(lesions, settings)
    write_table(table, dictionary, args.out)
    failed = [lesion for lesion in lesions if lesion.error]
    for lesion in failed:
        print(f"sonimage features: lesion {lesion.ids['roi']!r}: {lesion.error}", file=sys.stderr)
    print(f"{len(lesions) - len(failed)} of {len(lesions)} lesions, {table.shape[1]} columns -> {args.out}")
    return 1 if failed else 0
