"""Bring lesion masks drawn on the FDG scan onto the FES scan: rigid registration of the two low-dose CTs.

The patient lies slightly differently on the two scan days. The FES CT is registered to the FDG CT (translation,
mean squares on a 10 % sample, in-plane resolution halved then two levels: sub-voxel at PET scale; CT in HU clipped
to soft tissue and bone); the FDG lesion label map is then resampled
onto the FES PET grid by nearest neighbour, so FES voxel values are never interpolated.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from sonimage.volume import Volume


def _ct_image(ct: Volume) -> sitk.Image:
    clipped = np.clip(ct.array.astype(np.float32), -200.0, 1000.0)
    return Volume(clipped, ct.spacing, ct.origin, ct.direction).to_sitk()


def register_translation(fixed_ct: Volume, moving_ct: Volume) -> tuple[float, float, float]:
    """Translation (x, y, z mm, LPS) that maps points of the fixed (FDG) CT onto the moving (FES) CT."""
    fixed = sitk.Shrink(_ct_image(fixed_ct), [2, 2, 1])
    moving = sitk.Shrink(_ct_image(moving_ct), [2, 2, 1])
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.1, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.05, numberOfIterations=60)
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    translation = sitk.TranslationTransform(3)
    reg.SetInitialTransform(translation, inPlace=True)
    reg.Execute(fixed, moving)
    return tuple(float(v) for v in translation.GetOffset())  # type: ignore[return-value]


def map_labels(labels: Volume, target: Volume, translation: tuple[float, float, float]) -> Volume:
    """The label map (on the fixed grid) resampled by nearest neighbour onto ``target``'s grid.

    ``translation`` maps fixed points to moving (target) points, so a target voxel takes the label found at its
    position minus the translation.
    """
    inverse = sitk.TranslationTransform(3, tuple(-t for t in translation))
    ref = Volume(np.zeros(target.array.shape, np.uint8), target.spacing, target.origin, target.direction).to_sitk()
    moved = sitk.Resample(labels.to_sitk(), ref, inverse, sitk.sitkNearestNeighbor, 0)
    return Volume.from_sitk(moved, attrs=dict(labels.attrs))
