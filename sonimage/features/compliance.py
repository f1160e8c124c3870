"""IBSI 1 compliance on the CT radiomics phantom: configurations A to E and the matching of reference values.

The IBSI 1 reference manual (Zwanenburg et al., arXiv:1612.07003, chapter 5, table "configurations") defines five
image processing configurations for the CT phantom (a lung tumour, GTV-1):

====  ====  ========================  =================  ==========  ===================  ============
conf  dims  interpolation (to 2 mm)   re-segmentation    outliers    texture / histogram  IVH
====  ====  ========================  =================  ==========  ===================  ============
A     2D    none                      [-500, 400] HU     none        bin size 25 HU       none (1 HU)
B     2D    bilinear, in-plane        [-500, 400] HU     none        32 bins              none (1 HU)
C     3D    trilinear                 [-1000, 400] HU    none        bin size 25 HU       bin size 2.5
D     3D    trilinear                 none               mean ± 3 SD 32 bins              none (1 HU)
E     3D    tricubic spline           [-1000, 400] HU    mean ± 3 SD 32 bins              1000 bins
====  ====  ========================  =================  ==========  ===================  ============

With interpolation the image is rounded to integers and the mask interpolated trilinearly at partial volume 0.5;
fixed bin sizes start at the re-segmentation minimum. Reference values are keyed by the feature tags of the IBSI
submission table (as MIRP names them, e.g. ``cm_joint_max_3D_avg``); :func:`feature_key` maps each to a sonimage
feature. The IVH column is as the reference values require (A, B, D: raw HU; E: bin numbers of 1000 bins).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.families import ALL_FAMILIES, TEXTURE, extract_features
from sonimage.features.processing import process

_CT = dict(round_intensities=True, voxel_size=2.0)
CONFIGURATIONS: dict[str, tuple[FeatureSettings, tuple[str, ...]]] = {
    "A": (FeatureSettings(bin_width=25.0, resegment_min=-500.0, resegment_max=400.0), ("2D",)),
    "B": (FeatureSettings(bin_count=32, resegment_min=-500.0, resegment_max=400.0,
                          interpolate_in_plane=True, **_CT), ("2D",)),
    "C": (FeatureSettings(bin_width=25.0, ivh_bin_width=2.5, resegment_min=-1000.0, resegment_max=400.0, **_CT),
          ("3D",)),
    "D": (FeatureSettings(bin_count=32, outlier_sd=3.0, **_CT), ("3D",)),
    "E": (FeatureSettings(bin_count=32, ivh_bin_count=1000, resegment_min=-1000.0, resegment_max=400.0,
                          outlier_sd=3.0, interpolation="cubic", **_CT), ("3D",)),
}

# Tag prefix -> (family, IBSI code) per family, in IBSI order.
_FAMILY_TAGS = {
    "morphology": ("morph", "volume RNU0 vol_approx YEKZ area_mesh C0JK av 2PR5 comp_1 SKGS comp_2 BQWJ "
                   "sph_dispr KRCK sphericity QCFX asphericity 25C7 com KLMA diam L0JK pca_maj_axis TDIC "
                   "pca_min_axis P9VJ pca_least_axis 7J51 pca_elongation Q3CK pca_flatness N17B vol_dens_aabb PBX1 "
                   "area_dens_aabb R59B vol_dens_aee 6BDE area_dens_aee RDD2 vol_dens_conv_hull R3ER "
                   "area_dens_conv_hull 7T7F integ_int 99N0 moran_i N365 geary_c NPT7"),
    "local_intensity": ("loc", "peak_loc VJGA peak_glob 0F91"),
    "statistics": ("stat", "mean Q4LE var ECT3 skew KE2A kurt IPH6 median Y12H min 1GSF p10 QG58 p90 8DWT max 84IY "
                   "iqr SALO range 2OJQ mad 4FUA rmad 1128 medad N72L cov 7TET qcod 9S40 energy N8CA rms 5ZWQ"),
    "histogram": ("ih", "mean X6K6 var CH89 skew 88K1 kurt C3I7 median WIFQ min 1PR8 p10 GPMT p90 OZ0C max 3NCY "
                  "mode AMMC iqr WR0O range 5Z3W mad D2ZX rmad WRZB medad 4RNL cov CWYJ qcod SLWD entropy TLU2 "
                  "uniformity BJ5W max_grad 12CE max_grad_g 8E6O min_grad VQB3 min_grad_g RHQZ"),
    "glcm": ("cm", "joint_max GYBY joint_avg 60VM joint_var UR99 joint_entr TU9B diff_avg TF7R diff_var D3YU "
             "diff_entr NTRS sum_avg ZGXS sum_var OEEB sum_entr P6QZ energy 8ZQL contrast ACUI dissimilarity 8S9J "
             "inv_diff IB1Z inv_diff_norm NDRX inv_diff_mom WF0Z inv_diff_mom_norm 1QCO inv_var E8JP corr NI2N "
             "auto_corr QWB0 clust_tend DG8W clust_shade 7NFM clust_prom AE86 info_corr1 R8DG info_corr2 JN9H"),
    "glrlm": ("rlm", "sre 22OV lre W4KF lgre V3SW hgre G3QZ srlge HTZT srhge GD3A lrlge IVPO lrhge 3KUM glnu R5YN "
              "glnu_norm OVBL rlnu W92Y rlnu_norm IC23 r_perc 9ZK5 gl_var 8CE5 rl_var SXLW rl_entr HJ9O"),
    "glszm": ("szm", "sze 5QRC lze 48P8 lgze XMSY hgze 5GN9 szlge 5RAI szhge HW1V lzlge YH51 lzhge J17V glnu JNSA "
              "glnu_norm Y1RO zsnu 4JP3 zsnu_norm VB3A z_perc P30P gl_var BYLV zs_var 3NSA zs_entr GU8N"),
    "gldzm": ("dzm", "sde 0GBI lde MB4I lgze S1RA hgze K26C sdlge RUVG sdhge DKNJ ldlge A7WM ldhge KLTH glnu VFT7 "
              "glnu_norm 7HP3 zdnu V294 zdnu_norm IATH z_perc VIWW gl_var QK93 zd_var 7WT1 zd_entr GBDU"),
    "ngtdm": ("ngt", "coarseness QCDE contrast 65HE busyness NQ30 complexity HDEZ strength 1X9X"),
    "ngldm": ("ngl", "lde SODN hde IMOQ lgce TL9H hgce OAE7 ldlge EQ3F ldhge JA6D hdlge NBZI hdhge 9QMG glnu FP8K "
              "glnu_norm 5SPA dcnu Z87G dcnu_norm OKJI dc_perc 6XV8 gl_var 1PFV dc_var DNX2 dc_entr FCBV "
              "dc_energy CAS9"),
}
# IVH features share a code per kind (V_x: BC2M, I_x: GBPN): matched by name.
_IVH = {"ivh_v10": "Volume at 10% intensity fraction", "ivh_v90": "Volume at 90% intensity fraction",
        "ivh_i10": "Intensity at 10% volume fraction", "ivh_i90": "Intensity at 90% volume fraction",
        "ivh_diff_v10_v90": "Volume fraction difference between 10% and 90% intensity fractions",
        "ivh_diff_i10_i90": "Intensity fraction difference between 10% and 90% volume fractions"}
_AGGREGATIONS = {"_2D_avg": "2D, averaged", "_2D_comb": "2D, slice-merged", "_3D_avg": "3D, averaged",
                 "_3D_comb": "3D, merged", "_2D": "2D", "_3D": "3D"}
IBSI_FAMILIES = tuple(f for f in ALL_FAMILIES if f != "pet")


def feature_key(tag: str) -> tuple[str, str, str] | None:
    """(family, IBSI code or name, aggregation) of a reference tag; None for a diagnostic tag."""
    if tag in _IVH:
        return "ivh", _IVH[tag], ""
    for family, (prefix, spec) in _FAMILY_TAGS.items():
        if not tag.startswith(prefix + "_"):
            continue
        rest, aggregation = tag[len(prefix) + 1:], ""
        if family in TEXTURE:
            suffix = next(s for s in _AGGREGATIONS if rest.endswith(s))
            rest, aggregation = rest[: -len(suffix)], _AGGREGATIONS[suffix]
        words = spec.split()
        codes = dict(zip(words[::2], words[1::2]))
        return (family, codes[rest], aggregation) if rest in codes else None
    return None


def round_sig(x: float, digits: int = 3) -> float:
    """IBSI's rounding: ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def score(values: dict[str, float], reference: pd.DataFrame) -> pd.DataFrame:
    """Reference rows (tag, value, tolerance) with the computed value (3 significant digits) and ``passed``."""
    out = reference[["tag", "value", "tolerance"]].copy()
    out["computed"] = [round_sig(values.get(t, float("nan"))) for t in out.tag]
    out["passed"] = (out.computed - out.value).abs() <= out.tolerance
    return out


def tag_values(features: Iterable[Feature], tags: Iterable[str]) -> dict[str, float]:
    """Computed value per reference tag (features matched by family, code or name, and aggregation)."""
    index: dict[tuple[str, str, str], float] = {}
    for f in features:
        index[(f.family, f.code, f.aggregation)] = f.value
        index[(f.family, f.name, f.aggregation)] = f.value
    out = {}
    for tag in tags:
        key = feature_key(tag)
        if key is not None and key in index:
            out[tag] = index[key]
    return out


def diagnostics(roi: Roi, settings: FeatureSettings) -> dict[str, float]:
    """IBSI's diagnostic values of the processed ROI: mask voxel counts, intensity mask mean, minimum, maximum."""
    processed = process(roi, settings)
    x = processed.image[processed.mask]
    morph = float(processed.shape_mask.sum())
    return {"morph_mask_vox_count_interp_roi": morph, "morph_mask_vox_count_reseg_roi": morph,
            "int_mask_vox_count_reseg_roi": float(x.size), "int_mask_mean_int_reseg_roi": float(x.mean()),
            "int_mask_min_int_reseg_roi": float(x.min()), "int_mask_max_int_reseg_roi": float(x.max())}


def configuration_values(roi: Roi, name: str, tags: Iterable[str]) -> dict[str, float]:
    """Diagnostics and features of ``roi`` under IBSI configuration ``name``, per reference tag."""
    settings, dims = CONFIGURATIONS[name]
    tags = list(tags)
    features = extract_features(roi, settings, IBSI_FAMILIES, dims)
    return {**diagnostics(roi, settings), **tag_values(features, tags)}
