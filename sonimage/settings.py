"""One settings object for a study run: how features are made, how lesions are read, how the analysis is done.

:class:`Settings` groups one frozen dataclass per topic, each named ``<Topic>Settings`` and defined here (pure
parameters with their checks; the science that uses them takes the section, never the whole :class:`Settings`):
``features`` (:class:`sonimage.features.base.FeatureSettings`, the IBSI feature library's own settings),
``fes`` (:class:`FesRuleSettings`: the FES call rule, :func:`sonimage.tables.patients.fes_calls`),
``delineation`` (:class:`DelineationSettings`: MTV methods and SUL formula, :mod:`sonimage.lesions.delineation`),
``fes_reading`` (:class:`FesReadingSettings`: registration threshold, FES evaluability distance, PSF FWHM of the
recovery coefficients, :mod:`sonimage.lesions.fes_reading`), ``study`` and ``statistics`` (the analysis,
:mod:`sonimage.analysis`). This module imports nothing of sonimage above the feature library, so every layer can
take its section from here. The CLI and the flow pass it as JSON (:meth:`Settings.to_json` /
:meth:`Settings.from_json`), every stage takes it, and every output records it (Parquet schema metadata key
``sonimage.settings``; ``settings`` in ``metrics.json``).

To add a setting, add a field with a default to the topic's dataclass (or a new topic dataclass as a field of
:class:`Settings`): serialisation follows the dataclass fields, and JSON written before the field existed still
loads (the default applies). Unknown keys are an error, so a misspelt setting never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonimage.features.base import FeatureSettings

METADATA_KEY = "sonimage.settings"
MIN_NCC = 0.80  # measured on the synthetic study: good rigid registrations reach >= 0.9 (bench/truth.py)


@dataclass(frozen=True)
class Method:
    """One delineation method and its parameter (SUV for ``fixed``, fraction of SUVmax for ``relative``)."""

    kind: str
    value: float = float("nan")
    region: str = "box"
    margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in ("contour", "fixed", "relative", "adaptive", "percist"):
            raise ValueError(f"unknown delineation method {self.kind!r} (contour, fixed, relative, adaptive, "
                             "percist)")
        if self.kind in ("fixed", "relative", "adaptive") and not self.value > 0:
            raise ValueError(f"{self.kind} delineation needs a positive value, got {self.value}")
        if self.kind in ("relative", "adaptive") and not self.value < 1:
            raise ValueError(f"relative threshold is a fraction of SUVmax below 1, got {self.value}")
        if self.region not in ("box", "whole-body"):
            raise ValueError(f"delineation region must be 'box' or 'whole-body', got {self.region!r}")

    @property
    def label(self) -> str:
        """Short name, also the suffix of ``fdg_mtv_ml_<label>`` columns: contour, suv2p5, pct41, a50, percist."""
        if self.kind == "fixed":
            return f"suv{self.value:g}".replace(".", "p")
        if self.kind == "relative":
            return f"pct{100 * self.value:g}".replace(".", "p")
        if self.kind == "adaptive":
            return f"a{100 * self.value:g}".replace(".", "p")
        return self.kind

    @property
    def parameters(self) -> str:
        """Human-readable rule."""
        return {"contour": "reader contour as drawn", "fixed": f"SUV >= {self.value:g}",
                "relative": f">= {100 * self.value:g} % of SUVmax (EANM 2015)",
                "adaptive": f">= background + {100 * self.value:g} % of (SUVmax - background) (Boellaard 2008)",
                "percist": "SUL >= 1.5 x liver SULmean + 2 SD (PERCIST 1.0)"}[self.kind]


LBM_FORMULAS = {"Janmahasatian": "ratio_sul_janma", "James": "ratio_sul_james"}


@dataclass(frozen=True)
class DelineationSettings:
    """Which delineations every FDG lesion gets, where they search, and the SUL scale they report.

    ``method`` names the MTV that also fills ``volume_ml`` (the burden the analyses use): ``rtstruct`` (the reader
    contour) or a method label (``suv2p5``, ``pct41``, ``pct50``, ``a50``, ``percist``). SUL: lean body mass by
    Janmahasatian et al. (Clin Pharmacokinet 2005;44:1051–1065; PERCIST's choice) or James (1976).
    """

    method: str = "rtstruct"
    fixed_suv: tuple[float, ...] = (2.5,)
    relative: tuple[float, ...] = (0.41, 0.50)
    adaptive: tuple[float, ...] = (0.50,)
    percist: bool = True
    region: str = "box"
    margin_mm: float = 10.0
    lbm_formula: str = "Janmahasatian"

    def __post_init__(self) -> None:
        if self.lbm_formula not in LBM_FORMULAS:
            raise ValueError(f"lean-body-mass formula must be one of {', '.join(LBM_FORMULAS)}, "
                             f"got {self.lbm_formula!r}")
        labels = [m.label for m in self.methods]
        if self.method != "rtstruct" and self.method not in labels:
            raise ValueError(f"delineation method {self.method!r} is not computed (choose rtstruct or one of "
                             f"{', '.join(labels[1:])})")

    @property
    def methods(self) -> tuple[Method, ...]:
        """The reader contour first, then every automatic method."""
        auto = [Method("fixed", v, self.region, self.margin_mm) for v in self.fixed_suv]
        auto += [Method("relative", v, self.region, self.margin_mm) for v in self.relative]
        auto += [Method("adaptive", v, self.region, self.margin_mm) for v in self.adaptive]
        auto += [Method("percist", region=self.region, margin_mm=self.margin_mm)] if self.percist else []
        return (Method("contour"), *auto)

    @property
    def sul_ratio_key(self) -> str:
        """The PET store attribute holding lean body mass / body weight for the chosen formula."""
        return LBM_FORMULAS[self.lbm_formula]


@dataclass(frozen=True)
class FesReadingSettings:
    """Settings of the FES reading (:mod:`sonimage.lesions.fes_reading`; written with its outputs).

    ``fwhm_mm``: the reconstructed PET resolution (Gaussian PSF FWHM), used for the recovery coefficients, the
    spill-in estimate and the background shell. The default 7.5 mm is an EARL1 image: with 4 mm voxels the SUVmax
    recovery of the NEMA IEC spheres (10–37 mm) it predicts lies inside the EARL1 accreditation bands (Boellaard et
    al., Eur J Nucl Med Mol Imaging 2015;42:328–354; checked in ``tests/lesions/test_fes_reading.py``), nearer their
    centres than 6.5 mm (which is inside them too). Set it to the scanner's value for EARL2 (sharper)
    reconstructions. ``min_sigma_voxels``: coarser voxels widen the effective PSF to σ ≥ that many voxels.
    """

    min_ncc: float = MIN_NCC  # registration quality (CT NCC) below which a patient's lesions are not evaluable
    hot_suv: float = 2.5  # extra-lesional FES uptake counted as excretion / metabolism
    hot_min_ml: float = 10.0  # smallest such region (smaller hot spots are lesions the reader did not draw)
    hot_distance_mm: float = 12.0  # lesions closer than this to such a region are not evaluable
    fwhm_mm: float = 7.5  # PET resolution (PSF FWHM): recovery coefficients, spill-in, background shell
    min_sigma_voxels: float = 0.5  # the effective PSF is at least this wide (σ, in voxels) on coarse voxels
    contour_margin_voxels: float = 1.0  # RC(d) is taken at the contour's diameter less this many (largest) voxels
    spill_margin_suv: float = 1.0  # how far above the threshold the spill-corrected SUVmax must stay near hot uptake

    def as_dict(self) -> dict[str, float]:
        """Settings as a flat dict (QC tables, metrics.json)."""
        return asdict(self)


@dataclass(frozen=True)
class FesRuleSettings:
    """How a lesion's FES call is made (:func:`sonimage.tables.patients.fes_calls`): its FES ``statistic`` against ``threshold`` (≥ when
    ``inclusive``, else >), focal uptake above the local background for a positive call, and a lesion large enough
    to have shown uptake for a negative one.

    The published rule is SUVmax ≥ 1.5 (Nienhuis et al., J Nucl Med 2018). Sensitivity analyses:
    ``statistic="suvpeak"`` (the IBSI 1 cm³ peak; less sensitive to noise in small, faint lesions) and
    ``statistic="suvmax_pvc"`` (recovery-coefficient partial-volume corrected SUVmax; raises sensitivity at the
    cost of specificity, so never the primary reading: Cysouw et al., Eur J Nucl Med Mol Imaging 2017).

    ``reference_positive_suv``: the FES uptake of an ER-positive lesion the detectability rule asks about, 2.3:
    the geometric-mean FES SUVmax of lymph-node (2.29) and lung (2.23) metastases in Nienhuis et al. 2018 (bone
    2.61), the lower of the sites' typical values. Those are SUVmax measured in lesions mostly ≥ 10 mm, FES-negative
    ones included, so they understate a true ER-positive uptake: a conservative choice that makes a negative call
    need a lesion large enough to have shown even modest uptake.
    """

    threshold: float = 1.5
    inclusive: bool = True
    statistic: str = "suvmax"
    reference_positive_suv: float = 2.3

    def __post_init__(self) -> None:
        if self.statistic not in ("suvmax", "suvpeak", "suvmax_pvc"):
            raise ValueError(f"FES positivity statistic must be suvmax, suvpeak or suvmax_pvc, got {self.statistic!r}")

    def reads_positive(self, value: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
        """Whether values reach the threshold."""
        return value >= self.threshold if self.inclusive else value > self.threshold

    def positive(self, lesions: pd.Series | pd.DataFrame) -> pd.Series:
        """Whether each lesion's ``fes_<statistic>`` reaches the threshold (the uptake alone, no call)."""
        return self.reads_positive(lesions[f"fes_{self.statistic}"])




@dataclass(frozen=True)
class StudySettings:
    """Pre-specified choices of the analysis (written into the report and metrics)."""

    horizon_months: float = 12.0
    benefit_horizons: tuple[float, ...] = (12.0, 24.0)
    fes_thresholds: tuple[float, ...] = (1.5, 1.8, 2.0)
    # log-spaced over five decades (survival.internal.log_penalty_path), 0 = unpenalised in front
    penalizers: tuple[float, ...] = (0.0, 0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0, 31.6, 100.0)
    folds: int = 5
    n_boot_internal: int = 200
    n_boot_external: int = 200
    seed: int = 0
    prognostic_formula: str = "age + ecog + de_novo + visceral + prior_endocrine + fes_positive_fraction"
    # PATH effect model: every risk-model covariate and each modifier's main effect, then the interactions
    effect_formula: str = ("age + ecog + de_novo + visceral + prior_endocrine + fes_positive_fraction"
                           " + cdk46i*(fes_positive_fraction + ecog + visceral)")
    development: str = "sonia"


@dataclass(frozen=True)
class StatisticsSettings:
    """What the study can show (sample size, power), benefit validation by cohort design, sensitivity analyses."""

    anticipated_c: float = 0.65  # planning C for Riley's sample size (a PFS model in metastatic breast cancer)
    power_simulations: int = 500
    planned_ratio: float = 2.0  # ratio of hazard ratios of the interaction to plan for
    power_sizes: tuple[int, ...] = (100,)  # sizes besides the cohort's own at which power is simulated
    n_boot_benefit: int = 200  # bootstrap replicates for benefit CIs and propensity-weighted estimates
    # "cohort=design", design randomised / observational / single-arm (strings keep the settings hashable)
    cohort_designs: tuple[str, ...] = ("sonia=randomised", "impact=observational", "transcan=single-arm")
    weighting: str = "overlap"  # propensity weights in observational cohorts: overlap or iptw
    imputations: int = 5  # multiple imputations in the "patients without FES imputed" sensitivity analysis
    sensitivity: bool = True  # run the sensitivity table (objectives 1, 2, 4, 5 under alternative choices)

    def designs(self) -> dict[str, str]:
        """Cohort → randomised, observational or single-arm."""
        return dict(d.split("=", 1) for d in self.cohort_designs)

    def design(self, cohort: str) -> str:
        """The cohort's design (unknown cohorts: observational, the cautious choice)."""
        return self.designs().get(cohort, "observational")


PIPELINE_FEATURES = FeatureSettings(bin_width=0.25, bin_lower_bound=0.0)  # fixed bin size in SUV, PET practice


@dataclass(frozen=True)
class Settings:
    """Every choice of a study run, one topic per field."""

    features: FeatureSettings = PIPELINE_FEATURES
    fes: FesRuleSettings = field(default_factory=FesRuleSettings)
    delineation: DelineationSettings = field(default_factory=DelineationSettings)
    fes_reading: FesReadingSettings = field(default_factory=FesReadingSettings)
    study: StudySettings = field(default_factory=StudySettings)
    statistics: StatisticsSettings = field(default_factory=StatisticsSettings)

    def as_dict(self) -> dict[str, Any]:
        """Nested plain dict (tuples as lists once in JSON)."""
        return asdict(self)

    def to_json(self) -> str:
        """The settings as JSON text."""
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Settings:
        """Settings from a (possibly partial) nested dict; missing fields keep their defaults."""
        return _build(cls, data or {})

    @classmethod
    def from_json(cls, text: str | None) -> Settings:
        """Settings from JSON text (None or empty: the defaults)."""
        return cls.from_dict(json.loads(text) if text else {})

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Settings from a JSON file; errors name the file."""
        try:
            return cls.from_json(Path(path).read_text())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a sonimage settings file ({exc})") from exc

    def with_study(self, **changes: Any) -> Settings:
        """These settings with some study settings changed."""
        return dataclasses.replace(self, study=dataclasses.replace(self.study, **changes))

    def metadata(self) -> dict[str, str]:
        """Parquet schema metadata recording these settings."""
        return {METADATA_KEY: self.to_json()}


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value or {})
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
