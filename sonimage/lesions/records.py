"""The records the lesion stage passes between its steps: a patient's scans (store names) and volumes, one
lesion's job, one lesion's reading, and what a patient's stage hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sonimage.features.table import LesionFeatures
from sonimage.volumes.volume import Volume


@dataclass(frozen=True)
class PatientScans:
    """The stores of one patient's baseline scans (paths relative to the output root)."""

    cohort: str
    patient: str
    labels: str
    fdg_pet: str
    fdg_ct: str | None
    fes_pet: str | None
    fes_ct: str | None

    @property
    def label(self) -> str:
        """Cohort and patient pseudonym, for task names and logs."""
        return f"{self.cohort}-{self.patient}"


@dataclass(frozen=True)
class LesionJob:
    """One lesion on one tracer's PET: where the image and labels are, which label, and its bounding box."""

    cohort: str
    patient: str
    tracer: str
    lesion: int
    roi: str
    image: str
    labels: str
    box: tuple[int, int, int, int, int, int]
    percist_threshold_suv: float = float("nan")  # from the scan's automatic liver VOI (FDG jobs)


@dataclass(frozen=True)
class LesionReading(LesionFeatures):
    """A lesion's features plus its delineation rows (FDG lesions)."""

    delineations: tuple[dict, ...] = ()


@dataclass(frozen=True)
class PatientVolumes:
    """One patient's scans in memory (read once by the extract stage, :mod:`sonimage.stages.extract`): the lesion
    label map on the FDG PET, the FDG PET and, where there are, the FDG CT, the FES PET and the FES CT."""

    labels: Volume
    fdg_pet: Volume
    fdg_ct: Volume | None = None
    fes_pet: Volume | None = None
    fes_ct: Volume | None = None


class PatientLesions(NamedTuple):
    """What one patient's lesion stage hands back, ~1 % of its readings pickled (2–7 kB against 0.1–1 MB for
    10–84 lesion readings of real-size patients): where its readings are kept (relative to the output root; None
    when the stage failed), its record (registration and FES reading QC, or the failure) and whether an earlier
    run's results were reused."""

    results: str | None
    record: dict
    reused: bool
