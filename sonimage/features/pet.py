"""PET uptake metrics per lesion: SUVmax, SUVmean, SUVpeak (IBSI and PERCIST style), MTV and TLG.

- SUVpeak (IBSI, code VJGA): mean of all image voxels whose centres lie within the 1 cm³ sphere (radius 6.2035 mm)
  around the hottest lesion voxel; with several equally hot voxels, the highest of their sphere means.
- SUVpeak (PERCIST style, code 0F91, IBSI's global intensity peak): the highest 1 cm³ sphere mean over all sphere
  centres on lesion voxels.
- Where the sphere reaches beyond the image (lesion on the border of the field of view or a cropped image), both
  peaks average the voxels that exist: the sphere is truncated, not padded (see :mod:`local_intensity`).
- MTV: voxel count × voxel volume (mL), not the mesh volume. TLG = SUVmean × MTV (mL·g/mL).
- SUL: with ``sul_ratio`` (SUL factor / SUV factor, i.e. lean body mass / body weight) the max, mean, peaks and TLG
  are also given on the SUL scale; without it the SUL rows are omitted.
"""

from __future__ import annotations

from sonimage.features.base import Feature, FeatureSettings, Roi
from sonimage.features.local_intensity import peaks

FAMILY = "pet"


def compute(roi: Roi, settings: FeatureSettings, dims: tuple[str, ...] = ("3D",),
            sul_ratio: float | None = None) -> list[Feature]:
    """PET metrics of a lesion on an SUV image (``dims`` ignored)."""
    x = roi.values
    local, glob = peaks(roi, settings.peak_volume_ml)
    mtv = x.size * roi.voxel_volume / 1000.0
    scales = [("SUV", 1.0)]
    if sul_ratio is not None:
        if not sul_ratio > 0:
            raise ValueError(f"sul_ratio must be positive, got {sul_ratio}")
        scales.append(("SUL", float(sul_ratio)))
    out = [Feature(FAMILY, "MTV (mL)", "", mtv)]
    for unit, k in scales:
        mean = float(x.mean()) * k
        out += [
            Feature(FAMILY, f"{unit}max", "84IY", float(x.max()) * k),
            Feature(FAMILY, f"{unit}mean", "Q4LE", mean),
            Feature(FAMILY, f"{unit}peak", "VJGA", local * k),
            Feature(FAMILY, f"{unit}peak PERCIST", "0F91", glob * k),
            Feature(FAMILY, f"TLG {unit}", "", mean * mtv),
        ]
    return out
