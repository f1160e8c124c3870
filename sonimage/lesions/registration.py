"""Bring lesion masks drawn on the FDG scan onto the FES scan: rigid registration of the two low-dose CTs.

The patient lies differently on the two scan days. The FES CT is registered to the FDG CT with a rigid transform
(rotation + translation, SimpleITK ``Euler3DTransform`` about the image centre, initialised by the centres of mass
of the body masks; mean squares of CT in HU clipped to soft tissue and bone, in-plane resolution halved, on a random
sample of the fixed body (CT > -150 HU) only: the air around the patient carries no signal. Three levels (shrink 4,
2, 1; 20, 10 and 5 % of the voxels sampled), the classical coarse-to-fine pyramid of multi-resolution registration
(Thévenaz, Ruttimann & Unser, IEEE Trans Image Process 1998;7:27–41), ending sub-voxel at PET scale. The levels are
not smoothed: SimpleITK reads smoothing sigmas in mm unless told otherwise (its registration guide,
``SetSmoothingSigmasAreSpecifiedInPhysicalUnits``; checked here), so the 2 and 1 mm used before were a quarter and
an eighth of a grid voxel (8 mm at the ``small`` size), with no measurable effect on the result, yet the recursive
Gaussian over both whole CTs at every level was half of the registration's CPU. The metric's gradient is taken at
the sample points (central differences) instead of filtering both whole images at every level: at this sampling that
is 4x less CPU, with the lesion mapping error unchanged on the synthetic study's truth
(``tests/lesions/test_pipeline.py``, ``bench/README.md``). The FDG lesion label map is then resampled onto the FES
PET grid by nearest neighbour, so FES voxel values are never interpolated.

Quality (per patient, written to ``registration.parquet``): after registration the FES CT is resampled onto the FDG
CT and compared inside the FDG body (HU > -500): normalised cross-correlation (NCC, Pearson r of the clipped HU) and
the Dice coefficient of the two body masks, at the CT's resolution (the FES CT is resampled only within the box that
holds the FDG body and every voxel the moved FES body can reach: the same values as over the whole grid, at about
half the CPU). Below :data:`sonimage.settings.MIN_NCC` the registration is not trusted and the patient's lesions are
not FES-evaluable (reason "registration below quality threshold").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from sonimage.volumes.volume import Volume

BODY_HU = -500.0


@dataclass(frozen=True)
class Rigid:
    """A rigid transform mapping fixed (FDG CT) points onto moving (FES CT) points, with its quality.

    ``parameters`` are SimpleITK's Euler3D parameters (rotation about x, y, z in radians, then translation in
    mm) about ``centre`` (LPS mm).
    """

    parameters: tuple[float, float, float, float, float, float]
    centre: tuple[float, float, float]
    ncc: float = float("nan")
    body_dice: float = float("nan")

    def transform(self) -> sitk.Euler3DTransform:
        """The SimpleITK transform (fixed → moving points)."""
        t = sitk.Euler3DTransform()
        t.SetCenter(self.centre)
        t.SetParameters(self.parameters)
        return t

    def record(self) -> dict[str, float]:
        """Flat QC columns: rotations in degrees about the centre (mm), translation in mm, NCC and body Dice; with
        them :meth:`from_record` rebuilds the transform."""
        rx, ry, rz, tx, ty, tz = self.parameters
        cx, cy, cz = self.centre
        return {"rotation_x_deg": float(np.degrees(rx)), "rotation_y_deg": float(np.degrees(ry)),
                "rotation_z_deg": float(np.degrees(rz)), "shift_x_mm": tx, "shift_y_mm": ty, "shift_z_mm": tz,
                "centre_x_mm": cx, "centre_y_mm": cy, "centre_z_mm": cz, "ncc": self.ncc, "body_dice": self.body_dice}

    @classmethod
    def from_record(cls, record: dict) -> "Rigid":
        """The transform of a ``registration.parquet`` row."""
        angles = tuple(float(np.radians(record[f"rotation_{a}_deg"])) for a in "xyz")
        shift = tuple(float(record[f"shift_{a}_mm"]) for a in "xyz")
        return cls(angles + shift, tuple(float(record[f"centre_{a}_mm"]) for a in "xyz"),  # type: ignore[arg-type]
                   float(record["ncc"]), float(record["body_dice"]))


GRID_SHRINK = [2, 2, 1]  # the registration grid: every second CT voxel in-plane (the PET's voxel size)


def _ct_image(ct: Volume) -> sitk.Image:
    """The CT in HU clipped to soft tissue and bone (-200 to 1000), float32."""
    clipped = np.asarray(ct.array).astype(np.float32)
    np.clip(clipped, -200.0, 1000.0, out=clipped)
    return Volume(clipped, ct.spacing, ct.origin, ct.direction).to_sitk()


_ITK_THREADS = threading.Lock()  # guards ITK's process-wide thread count (:func:`_one_itk_thread`)


@contextmanager
def _one_itk_thread() -> Iterator[None]:
    """ITK on one thread meanwhile: its metric and optimiser-scale estimates split their sums over ITK's threads
    (by default one per core), so the transform would depend on the machine (from the 9th digit between 1 and 4
    threads). The setting is global to the process, so registrations in threads of one process take turns
    (:data:`_ITK_THREADS`): one could otherwise restore another's setting mid-run, or leave it at 1."""
    with _ITK_THREADS:
        before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def register_rigid(fixed_ct: Volume, moving_ct: Volume) -> Rigid:
    """Rigid transform (fixed FDG CT → moving FES CT points) and its quality (:func:`registration_quality`), the
    same on any machine (:func:`_one_itk_thread`)."""
    with _one_itk_thread():
        return _register_rigid(fixed_ct, moving_ct)


def _register_rigid(fixed_ct: Volume, moving_ct: Volume) -> Rigid:
    moving_clipped = _ct_image(moving_ct)  # also what the quality resamples
    fixed, moving = sitk.Shrink(_ct_image(fixed_ct), GRID_SHRINK), sitk.Shrink(moving_clipped, GRID_SHRINK)
    fixed_body = fixed > -150
    init = sitk.CenteredTransformInitializer(sitk.Cast(fixed_body, sitk.sitkFloat32),
                                             sitk.Cast(moving > -150, sitk.sitkFloat32), sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    transform = sitk.Euler3DTransform(init)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricFixedMask(sitk.Cast(fixed_body, sitk.sitkUInt8))
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel([0.2, 0.1, 0.05], seed=1)
    reg.MetricUseFixedImageGradientFilterOff()
    reg.MetricUseMovingImageGradientFilterOff()
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.02, numberOfIterations=100)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([0.0, 0.0, 0.0])
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    found = Rigid(tuple(float(v) for v in transform.GetParameters()),  # type: ignore[arg-type]
                  tuple(float(v) for v in transform.GetCenter()))  # type: ignore[arg-type]
    ncc, dice = registration_quality(fixed_ct, moving_ct, found, moving_clipped)
    return Rigid(found.parameters, found.centre, ncc, dice)


def _box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last index (z, y, x) of a mask's voxels (an empty box when there are none)."""
    idx = [np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    if any(i.size == 0 for i in idx):
        return np.zeros(3, int), np.zeros(3, int)
    return np.array([int(i[0]) for i in idx]), np.array([int(i[-1]) + 1 for i in idx])


def _moved_body_box(fixed_ct: Volume, moving_ct: Volume, body_m: np.ndarray, rigid: Rigid
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-grid box (z, y, x) holding every fixed voxel the moving body can reach through ``rigid``: the
    moving body's box (to its voxels' edges) mapped onto the fixed grid, its hull grown by a voxel."""
    lo, hi = _box(body_m)
    if not (hi > lo).all():
        return lo, hi
    corners = np.array([np.where(np.array(pick) == 0, lo - 0.5, hi - 0.5) for pick in np.ndindex(2, 2, 2)])
    inverse = rigid.transform().GetInverse()  # moving points onto fixed points
    points = np.array([inverse.TransformPoint(tuple(float(v) for v in p))
                       for p in moving_ct.index_to_physical(corners)])
    index = fixed_ct.physical_to_index(points)
    return np.floor(index.min(axis=0)).astype(int) - 1, np.ceil(index.max(axis=0)).astype(int) + 2


def registration_quality(fixed_ct: Volume, moving_ct: Volume, rigid: Rigid,
                         moving: sitk.Image | None = None) -> tuple[float, float]:
    """(NCC inside the fixed body, Dice of the body masks) after mapping the moving CT onto the fixed CT at the
    CT's resolution (``moving``: the moving CT clipped, when already made).

    Both are computed over the voxels that can count only: the moving CT is resampled onto the fixed grid within
    the box holding the fixed body and every voxel the moved body can reach (outside it the moved CT is air); the
    values are those of resampling the whole grid."""
    moving = _ct_image(moving_ct) if moving is None else moving
    fixed_hu = np.asarray(fixed_ct.array)
    body_f = fixed_hu > BODY_HU
    body_moving = np.asarray(moving_ct.array) > BODY_HU
    f_lo, f_hi = _box(body_f)
    m_lo, m_hi = _moved_body_box(fixed_ct, moving_ct, body_moving, rigid)
    lo = np.clip(np.minimum(f_lo, m_lo), 0, fixed_hu.shape)
    hi = np.clip(np.maximum(f_hi, m_hi), lo, fixed_hu.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    ref = Volume(np.zeros(tuple(int(v) for v in hi - lo), np.uint8), fixed_ct.spacing,
                 tuple(float(v) for v in fixed_ct.index_to_physical(lo[None].astype(float))[0]),
                 fixed_ct.direction).to_sitk()
    transform = rigid.transform()
    moved_image = sitk.Resample(moving, ref, transform, sitk.sitkLinear, -200.0, sitk.sitkFloat32)
    moved_body = sitk.Resample(moving_ct.to_sitk(), ref, transform, sitk.sitkNearestNeighbor, -1000.0)
    moved = sitk.GetArrayViewFromImage(moved_image)  # views: their images stay referenced meanwhile
    body_m = sitk.GetArrayViewFromImage(moved_body) > BODY_HU
    inside = body_f[box]
    a = np.clip(fixed_hu[box][inside], -200.0, 1000.0).astype(np.float32).astype(np.float64)
    b = moved[inside].astype(np.float64)
    ncc = float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else float("nan")
    both = np.count_nonzero(inside & body_m)
    dice = float(2.0 * both / max(np.count_nonzero(body_f) + np.count_nonzero(body_m), 1))
    return ncc, dice


def map_labels(labels: Volume, target: Volume, rigid: Rigid) -> Volume:
    """The label map (on the fixed grid) resampled by nearest neighbour onto ``target``'s grid.

    ``rigid`` maps fixed points to moving (target) points, so a target voxel takes the label found at the
    inverse-mapped position.
    """
    ref = Volume(np.zeros(target.array.shape, np.uint8), target.spacing, target.origin, target.direction).to_sitk()
    moved = sitk.Resample(labels.to_sitk(), ref, rigid.transform().GetInverse(), sitk.sitkNearestNeighbor, 0)
    return Volume.from_sitk(moved, attrs=dict(labels.attrs))
