"""IBSI-2 convolutional filters, one module per filter kind, and the filtered intensity statistics of a lesion.

Kinds: ``mean``, ``log`` (Laplacian of Gaussian), ``laws``, ``gabor``, ``wavelet`` (separable, undecimated),
``simoncelli`` (non-separable wavelet) and ``riesz`` (Riesz-transformed LoG or Simoncelli). Each module has
``apply(image, spacing, **settings)`` on a (z, y, x) array and ``reach(spacing, **settings)``, the voxels per axis
a response depends on. A :class:`FilterSpec` names a kind and its settings and prints them as one line, e.g.
``log:sigma_mm=1.5,truncate=4,boundary=mirror,dims=3D``; that line travels with every filtered feature.

Reference: Depeursinge, Andrearczyk, Whybra et al., "Standardised convolutional filtering for radiomics",
IBSI 2 reference manual, arXiv:2006.05470.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np

from sonimage.features import statistics
from sonimage.features.base import Feature, FeatureSettings, Roi

KINDS = ("mean", "log", "laws", "gabor", "wavelet", "simoncelli", "riesz")
_PI = re.compile(r"^([0-9.]*)\*?pi(?:/([0-9.]+))?$")


def module(kind: str) -> ModuleType:
    """The module of filter ``kind`` (``sonimage.features.filters.<kind>``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown filter {kind!r}; choose from {', '.join(KINDS)}")
    return importlib.import_module(f"sonimage.features.filters.{kind}")


def _value(text: str) -> Any:
    """A setting's value from text: integers, numbers (``5pi/4`` for angles), true/false, ``0/2/0`` orders."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if (m := _PI.match(low)) is not None:
        return float(m.group(1) or 1) * np.pi / float(m.group(2) or 1)
    if "/" in low:
        return tuple(int(v) for v in low.split("/"))
    for cast in (int, float):
        try:
            return cast(low)
        except ValueError:
            pass
    return text.strip()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


@dataclass(frozen=True)
class FilterSpec:
    """One filter kind with all its settings (defaults filled in), hashable and printable."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, **settings: Any) -> FilterSpec:
        """The spec of ``kind`` with ``settings``; unknown or missing settings raise ValueError."""
        signature = inspect.signature(module(kind).apply)
        names = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = set(settings) - {p.name for p in names}
        if unknown:
            raise ValueError(f"filter {kind}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"settings are {', '.join(p.name for p in names)}")
        full = {}
        for p in names:
            if p.name in settings:
                v = settings[p.name]
                full[p.name] = tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else v
            elif p.default is inspect.Parameter.empty:
                raise ValueError(f"filter {kind}: setting {p.name} is required")
            elif p.default is not None:
                full[p.name] = p.default
        return cls(kind, tuple(full.items()))

    @classmethod
    def parse(cls, text: str) -> FilterSpec:
        """``kind:key=value,key=value`` (as :attr:`text` prints it) to a spec."""
        kind, _, rest = text.strip().partition(":")
        settings = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"filter {text!r}: expected key=value, got {item!r}")
            settings[key.strip()] = _value(value)
        return cls.of(kind.strip().lower(), **settings)

    @property
    def settings(self) -> dict[str, Any]:
        """The settings as a dict."""
        return dict(self.params)

    @property
    def text(self) -> str:
        """One line: ``kind:key=value,...`` with every setting."""
        return f"{self.kind}:" + ",".join(f"{k}={_text(v)}" for k, v in self.params)

    def apply(self, image: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        """The response map of ``image`` (z, y, x) with voxel ``spacing`` (z, y, x) in mm."""
        return module(self.kind).apply(image, tuple(float(s) for s in spacing), **self.settings)

    def reach(self, spacing: tuple[float, float, float]) -> tuple[int, ...]:
        """Voxels per axis (z, y, x) a response depends on: a box this much larger than the lesion gives the
        lesion's responses as on the whole image."""
        return module(self.kind).reach(tuple(float(s) for s in spacing), **self.settings)


def filtered_statistics(roi: Roi, spec: FilterSpec) -> list[Feature]:
    """The 18 IBSI intensity statistics of ``spec``'s response map inside the lesion mask.

    ``roi`` should hold the lesion's box plus :meth:`FilterSpec.reach` (or the whole image). Each feature's
    ``aggregation`` is ``filter <spec text>``: the column name and the feature dictionary carry every setting."""
    response = spec.apply(roi.image, roi.spacing)
    return [replace(f, aggregation=f"filter {spec.text}")
            for f in statistics.compute(Roi(response, roi.mask, roi.spacing), FeatureSettings())]
