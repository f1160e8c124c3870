"""One settings object for a study run: how features are made, how lesions are read, how the analysis is done.

:class:`Settings` groups one frozen dataclass per topic (``features``, ``fes`` (the call rule: threshold, statistic,
reference ER-positive uptake of the detectability rule: :class:`sonimage.tables.patients.FesRule`),
``delineation`` (MTV methods and SUL formula, :mod:`sonimage.lesions.delineation`), ``fes_reading`` (registration
threshold, FES evaluability distance, PSF FWHM of the recovery coefficients: :mod:`sonimage.lesions.fes_reading`),
``study``). The
CLI and the flow pass it as JSON (:meth:`Settings.to_json` / :meth:`Settings.from_json`), every stage takes it, and
every output records it (Parquet schema metadata key ``sonimage.settings``; ``settings`` in ``metrics.json``).

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

from sonimage.features.base import FeatureSettings
from sonimage.lesions.delineation import DelineationSettings
from sonimage.lesions.fes_reading import FesReading
from sonimage.tables.patients import FesRule

METADATA_KEY = "sonimage.settings"


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
    fes: FesRule = field(default_factory=FesRule)
    delineation: DelineationSettings = field(default_factory=DelineationSettings)
    fes_reading: FesReading = field(default_factory=FesReading)
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
