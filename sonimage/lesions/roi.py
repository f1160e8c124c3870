"""The reader's ROI-name rule, defined once: ``L<n>_<organ>`` (``L07_bone``), ``<n>`` the lesion number of the
clinical record form (the identifier the clinic's lesion rows and the synthetic truth use; an ROI's position in
the RTSTRUCT is not one) and ``<organ>`` the site. Readers also write ``Lesion 7`` or ``l7-liver``: the number is
read from those too, and the organ when it follows the number to the end of the name."""

from __future__ import annotations

import re

ROI_NAME = re.compile(r"^\s*L(?:esion)?[ _-]?0*(?P<n>\d+)(?=[\W_]|$)(?:[ _-](?P<organ>[a-z_][a-z_ ]*?)\s*$)?",
                      re.IGNORECASE)


def roi_name(lesion: int, organ: str) -> str:
    """The ROI name of lesion ``lesion`` in ``organ`` (``L07_bone``)."""
    return f"L{int(lesion):02d}_{organ}"


def lesion_number(roi: str) -> float:
    """The lesion number in an ROI name (``L07_bone``, ``Lesion 7``, ``L7-liver`` → 7); NaN when it has none."""
    m = ROI_NAME.match(str(roi))
    return float(m.group("n")) if m else float("nan")


def organ_of(roi: str) -> str:
    """The organ in an ROI name (``L07_bone`` → bone, ``L3 lymph node`` → lymph_node), else 'unknown'."""
    m = ROI_NAME.match(str(roi))
    organ = m.group("organ") if m else None
    return organ.lower().replace(" ", "_") if organ else "unknown"
