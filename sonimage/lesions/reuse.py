"""The incremental lesion stage: a patient's results are reused when nothing they are computed from has changed.

A patient's lesion stage (:func:`sonimage.stages.extract.extract_patient`) depends only on its input stores, the
run's settings and sonimage's code. Each store records the keyed digest of the DICOM bytes it was converted from
(``content_hmac_sha256``, :mod:`sonimage.dicom.conversion`); the patient's *input key* is the SHA-256 of those
digests (with the stores' paths), the settings as JSON and sonimage's version. The results are kept under
``OUT/features/reuse/<cohort>/<patient>.pickle``, written atomically by the worker that computed them: first
the key and the patient's record, then the readings. The stage's gather reads each patient's readings from there,
one patient at a time, so no worker holds a group's results and the flow process never holds the whole study's
(:func:`sonimage.stages.extract.write_feature_tables`). A later run whose key is the same takes the record and the
path without computing, so a nightly ingest that adds one patient computes that patient only, and the tables
(assembled from the same results) are byte-identical to a run from scratch. The files are the run's own outputs,
read back by the same software (pickle: exact floats, no conversion).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict
from pathlib import Path

from sonimage import __version__
from sonimage.io import write_bytes_atomic, write_json_atomic
from sonimage.lesions.records import LesionReading, PatientScans
from sonimage.settings import Settings

REUSE = Path("features") / "reuse"
# The results file's layout (:func:`keep`): its head names it, so that a file of another layout (before 2: one
# pickled dict holding the readings too) is computed again, never misread, though its key may match.
LAYOUT = 2
DIGEST = "content_hmac_sha256"


def _store_digest(out: Path, store: str) -> str:
    """The digest a store recorded of its DICOM (empty when it has none: such a store is never reused)."""
    meta = json.loads((Path(out) / store / "zarr.json").read_text())
    return str(meta.get("attributes", {}).get(DIGEST, ""))


def input_key(scans: PatientScans, out: Path, settings: Settings) -> str | None:
    """SHA-256 of what the patient's lesion stage reads: each store's recorded digest, the settings, the code
    version; None when a store recorded no digest (computed every time)."""
    stores = {role: path for role, path in asdict(scans).items() if role not in ("cohort", "patient") and path}
    digests = {role: (path, _store_digest(out, path)) for role, path in sorted(stores.items())}
    if not all(d for _, d in digests.values()):
        return None
    text = json.dumps({"stores": digests, "settings": settings.to_json(), "sonimage": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def results_path(scans: PatientScans) -> Path:
    """Where a patient's lesion results are kept, relative to the output root."""
    return REUSE / scans.cohort / f"{scans.patient}.pickle"


def reused(scans: PatientScans, out: Path, key: str | None) -> dict | None:
    """The patient's record of an earlier run with the same input ``key`` (:func:`input_key`) in this
    :data:`LAYOUT`, else None. Only the file's head (layout, key, record) is read, not the readings."""
    path = Path(out) / results_path(scans)
    if key is None or not path.is_file():
        return None
    with path.open("rb") as fh:
        head = pickle.load(fh)
    return head["record"] if head.get("layout") == LAYOUT and head["key"] == key else None


def keep(scans: PatientScans, out: Path, key: str | None, readings: list[LesionReading], record: dict) -> str:
    """Write the patient's results (head: :data:`LAYOUT`, input ``key``, record; then the readings) atomically,
    for the gather and for later runs (never reused when the key is None); their path relative to ``out``."""
    path = results_path(scans)
    head = pickle.dumps({"layout": LAYOUT, "key": key, "record": record}, protocol=pickle.HIGHEST_PROTOCOL)
    write_bytes_atomic(Path(out) / path, head + pickle.dumps(readings, protocol=pickle.HIGHEST_PROTOCOL))
    return str(path)


def load_readings(out: Path, path: str) -> list[LesionReading]:
    """The readings a patient's results file holds (:func:`keep`)."""
    with (Path(out) / path).open("rb") as fh:
        pickle.load(fh)
        return pickle.load(fh)


def write_reuse_summary(out: Path, reused: list[bool]) -> Path:
    """``OUT/features/reuse/summary.json``: how many patients' lesion stages were computed and how many reused."""
    counts = {"computed": reused.count(False), "reused": reused.count(True)}
    return write_json_atomic(counts, Path(out) / REUSE / "summary.json")


def read_reuse_summary(out: Path) -> dict[str, int]:
    """What the last feature stage over ``out`` computed and reused (:func:`write_reuse_summary`)."""
    return json.loads((Path(out) / REUSE / "summary.json").read_text())
