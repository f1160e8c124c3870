"""Group indexed instances into series and check that each image series makes one regular volume."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from sonimage.dicom.index import Instance, Rejected

IMAGE_MODALITIES = ("PT", "CT")
OBJECT_MODALITIES = ("RTSTRUCT", "SEG")
GAP_FACTOR = 1.5  # a step longer than this many median spacings is a missing slice
JITTER = 0.1  # steps within this fraction of the median spacing are tolerated (bed junctions)


class SeriesError(ValueError):
    """A series that cannot become a volume; the message says why."""


@dataclass(frozen=True)
class SeriesPlan:
    """A validated series: its files in slice order and its grid."""

    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    patient_id: str
    modality: str
    slices: tuple[Instance, ...]
    slice_positions: tuple[float, ...]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    @property
    def files(self) -> tuple[str, ...]:
        """The slices' files (relative to the DICOM root), in slice order."""
        return tuple(s.path for s in self.slices)


@dataclass(frozen=True)
class ObjectSeries:
    """A non-image series kept for later stages (RTSTRUCT, SEG) and the image series it refers to."""

    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    files: tuple[str, ...]
    referenced_series: str


def _unique(values: list, what: str) -> object:
    distinct = set(values)
    if len(distinct) != 1:
        raise SeriesError(f"mixed instances: {len(distinct)} different {what} in one series")
    return values[0]


def _drop_copies(items: list[Instance]) -> tuple[list[Instance], list[Rejected]]:
    """Exact re-exports of one instance (same UID, position and size) are set aside as duplicates; other clashes fail."""
    seen: dict[str, Instance] = {}
    keep: list[Instance] = []
    copies: list[Rejected] = []
    for it in items:
        first = seen.get(it.sop_instance_uid)
        if first is None:
            seen[it.sop_instance_uid] = it
            keep.append(it)
        elif first.position == it.position and first.size == it.size:
            copies.append(Rejected(it.shown, f"duplicate copy of {first.shown}", 1, it.series_uid))
        else:
            raise SeriesError(f"SOPInstanceUID repeated with different content in {first.shown} and {it.shown}")
    return keep, copies


def _extra_slice(depth: np.ndarray, med: float) -> int | None:
    """The one slice (index into the sorted ``depth``) whose removal leaves regular steps, if there is exactly one."""
    steps = np.diff(depth)
    odd = np.nonzero(np.abs(steps - med) > JITTER * med)[0]
    candidates = {int(k) for k in odd} | {int(k) + 1 for k in odd}
    regular = [k for k in sorted(candidates)
               if len(depth) > 2 and np.abs(np.diff(np.delete(depth, k)) - med).max() <= JITTER * med]
    return regular[0] if len(regular) == 1 else None


def plan_image_series(items: list[Instance]) -> SeriesPlan:
    """Order a series' slices along the slice normal and check the grid; :class:`SeriesError` says what is wrong."""
    if any(it.frames > 1 for it in items):
        raise SeriesError("multi-frame images are not supported (expected one slice per file)")
    if len(items) < 2:
        raise SeriesError("a single slice is not a volume")
    for what, get in (("modalities", lambda i: i.modality), ("studies", lambda i: i.study_uid),
                      ("patients", lambda i: i.patient_id), ("SOP classes", lambda i: i.sop_class_uid),
                      ("image sizes", lambda i: (i.rows, i.columns))):
        _unique([get(i) for i in items], what)
    if any(i.position is None or i.orientation is None or i.pixel_spacing is None for i in items):
        bad = next(i.shown for i in items if i.position is None or i.orientation is None or i.pixel_spacing is None)
        raise SeriesError(f"missing ImagePositionPatient, ImageOrientationPatient or PixelSpacing in {bad}")
    iop = np.array([i.orientation for i in items])
    if np.abs(iop - iop[0]).max() > 1e-4:
        raise SeriesError("inconsistent ImageOrientationPatient across slices")
    spacing_px = np.array([i.pixel_spacing for i in items])
    if np.abs(spacing_px - spacing_px[0]).max() > 1e-4:
        raise SeriesError("inconsistent PixelSpacing across slices")
    row, col = np.array(iop[0][:3]), np.array(iop[0][3:])
    normal = np.cross(row, col)
    depth = np.array([float(np.dot(i.position, normal)) for i in items])
    order = np.argsort(depth, kind="stable")
    depth = depth[order]
    steps = np.diff(depth)
    if np.any(steps < 1e-3):
        k = int(np.argmin(steps))
        raise SeriesError(f"two instances at one slice position ({depth[k]:.2f} mm along the normal): "
                          f"{items[order[k]].shown} and {items[order[k + 1]].shown}")
    med = float(np.median(steps))
    extra = _extra_slice(depth, med)
    if extra is not None and np.abs(steps - med).max() > JITTER * med:
        raise SeriesError(f"extra slice {items[order[extra]].shown} at {depth[extra]:.2f} mm breaks the regular "
                          f"{med:.2f} mm spacing (the series is regular without it)")
    if steps.max() > GAP_FACTOR * med:
        k = int(np.argmax(steps))
        raise SeriesError(f"gap in slice positions between {depth[k]:.2f} and {depth[k + 1]:.2f} mm "
                          f"(expected a step of {med:.2f} mm)")
    if np.abs(steps - med).max() > JITTER * med:
        raise SeriesError(f"irregular slice spacing: steps from {steps.min():.2f} to {steps.max():.2f} mm")
    first = items[order[0]]
    direction = np.column_stack([row, col, normal]).ravel()
    return SeriesPlan(
        series_uid=first.series_uid,
        study_uid=first.study_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        patient_id=first.patient_id,
        modality=first.modality,
        slices=tuple(items[k] for k in order),
        slice_positions=tuple(float(d) for d in depth),
        origin=tuple(float(v) for v in first.position),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction),
        spacing=(med, float(first.pixel_spacing[0]), float(first.pixel_spacing[1])),  # type: ignore[index]
        shape=(len(items), first.rows, first.columns),
    )


def group_series(instances: list[Instance]) -> tuple[list[SeriesPlan], list[ObjectSeries], list[Rejected]]:
    """Image series with their plans, object series (RTSTRUCT, SEG), and what was rejected (by series or by file)."""
    by_uid: dict[str, list[Instance]] = defaultdict(list)
    for it in instances:
        by_uid[it.series_uid].append(it)
    plans: list[SeriesPlan] = []
    objects: list[ObjectSeries] = []
    rejected: list[Rejected] = []
    for uid, items in sorted(by_uid.items()):
        items.sort(key=lambda i: i.path)
        modality = items[0].modality
        try:
            if modality in OBJECT_MODALITIES:
                objects.append(ObjectSeries(uid, items[0].study_uid, items[0].patient_id, modality,
                                            tuple(i.path for i in items), items[0].referenced_series))
                continue
            if modality not in IMAGE_MODALITIES:
                raise SeriesError(f"modality {modality or '(missing)'} is not converted (PT and CT are)")
            keep, copies = _drop_copies(items)
            plans.append(plan_image_series(keep))
            rejected.extend(copies)
        except SeriesError as exc:
            rejected.append(Rejected(items[0].shown.rsplit("/", 1)[0] if "/" in items[0].shown else ".", str(exc),
                                     len(items), uid))
    return plans, objects, rejected
