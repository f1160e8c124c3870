"""Pseudonyms: original patient identifiers and UIDs never reach an output, a path or a task.

A patient gets the trial pseudonym (and cohort) from a site-kept linking table when one is given, otherwise a keyed
hash (HMAC-SHA256) of the original PatientID; the cohort comes from the linking table's ``cohort`` column or the
run's ``--cohort``, never from folder names. UIDs become keyed hashes too, and so do path components that hold an
identifying header value. The key is a secret of the site: it comes from a key file named by the user,
``$SONIMAGE_PSEUDONYM_KEY``, or a key file created once under ``$SONIMAGE_HOME`` (default ``~/.sonimage``); it is
never written into outputs and never shipped to a task: a conversion task gets only a key derived for its one
store (:meth:`Pseudonymiser.content_key`), with which it can digest that store's input files and nothing else.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sonimage.io import private_dir

SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")


def safe_component(value: str, what: str) -> str:
    """``value`` when it can be one folder name of an output path (letters, digits, '.', '_', '-'; not empty, no
    '..', not a hidden name); a ValueError naming ``what`` (e.g. the linking-table row) otherwise."""
    if not SAFE_COMPONENT.fullmatch(value) or ".." in value or value.startswith("."):
        raise ValueError(f"{what}: {value!r} cannot be a folder name of an output path (use only letters, digits, "
                         "'.', '_' and '-', not empty, no '..', not starting with '.')")
    return value


def default_key_file() -> Path:
    """The site key file: $SONIMAGE_HOME/pseudonym.key."""
    return Path(os.environ.get("SONIMAGE_HOME", Path.home() / ".sonimage")) / "pseudonym.key"


def load_key(key_file: Path | None = None) -> bytes:
    """The pseudonymisation key: ``key_file`` when given, else $SONIMAGE_PSEUDONYM_KEY, else the site key file
    (created once with a random key)."""
    if key_file is not None:
        if not Path(key_file).is_file():
            raise FileNotFoundError(f"pseudonymisation key file {key_file} does not exist")
        return Path(key_file).read_text().strip().encode()
    env = os.environ.get("SONIMAGE_PSEUDONYM_KEY")
    if env:
        return env.encode()
    path = default_key_file()
    if not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Linking:
    """The site linking table: original PatientID → trial pseudonym (``subject_id``) and, when given, cohort."""

    subjects: dict[str, str] = field(default_factory=dict, repr=False)
    cohorts: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:  # read_linking names the row; this guards tables built in code
        for what, values in (("subject_id", self.subjects), ("cohort", self.cohorts)):
            for value in values.values():
                safe_component(value, f"linking table {what}")


def read_linking(path: Path) -> Linking:
    """A site linking table: CSV with columns PatientID and subject_id, optionally cohort.

    ``subject_id`` and ``cohort`` become folder names of the outputs, so each is checked
    (:func:`safe_component`); an error names the file, the row (as a spreadsheet shows it, header = row 1) and
    the column, never the PatientID.
    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        if not {"PatientID", "subject_id"} <= columns:
            raise ValueError(f"{path}: a linking table needs columns PatientID and subject_id (optional: cohort); "
                             f"found {sorted(columns)}")
        subjects: dict[str, str] = {}
        cohorts: dict[str, str] = {}
        for row_number, row in enumerate(reader, start=2):
            where = f"{path} row {row_number}"
            patient = (row["PatientID"] or "").strip()
            if not patient:
                raise ValueError(f"{where}: PatientID is empty")
            if patient in subjects:
                raise ValueError(f"{where}: the PatientID of this row is also on an earlier row")
            subjects[patient] = safe_component((row["subject_id"] or "").strip(), f"{where}, column subject_id")
            if "cohort" in columns:
                cohorts[patient] = safe_component((row["cohort"] or "").strip(), f"{where}, column cohort")
    return Linking(subjects, cohorts)


def content_digest(key: bytes, paths: Iterable[Path]) -> str:
    """Keyed HMAC-SHA256 over the bytes of ``paths`` in order (each length-prefixed): what a conversion read.

    Keyed so that a digest recorded in an output cannot confirm, without the site key, that a known file
    was ingested (a plain SHA-256 would be a fingerprint of the file).
    """
    return contents_digest(key, (Path(path).read_bytes() for path in paths))


def contents_digest(key: bytes, contents: Iterable[bytes]) -> str:
    """:func:`content_digest` of files already read (their bytes, in order)."""
    digest = hmac.new(key, b"content:", hashlib.sha256)
    for data in contents:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Pseudonymiser:
    """Maps original identifiers to pseudonyms and cohorts. It holds the site key and the linking table, so it
    stays in the process that plans a run: tasks get pseudonymised records and a per-store digest key only."""

    key: bytes = field(repr=False)
    linking: Linking = field(default_factory=Linking, repr=False)
    cohort_name: str = ""  # the run's --cohort: the cohort of every patient the linking table gives none

    def __post_init__(self) -> None:
        if self.cohort_name:
            safe_component(self.cohort_name, "--cohort")

    def _digest(self, kind: str, value: str, n: int) -> str:
        return hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:n]

    def patient(self, patient_id: str) -> str:
        """The trial pseudonym of ``patient_id`` from the linking table, else 'P-' and a keyed hash."""
        return self.linking.subjects.get(patient_id.strip()) or f"P-{self._digest('patient', patient_id.strip(), 12)}"

    def cohort(self, patient_id: str) -> str:
        """The cohort of ``patient_id``: the linking table's, else the run's ``--cohort``, else ''."""
        return self.linking.cohorts.get(patient_id.strip()) or self.cohort_name

    def uid(self, uid: str) -> str:
        """A stable, non-reversible key for a DICOM UID."""
        return self._digest("uid", uid, 16)

    def hidden(self, name: str) -> str:
        """A stable, non-reversible stand-in for a folder or file name that holds an identifying value."""
        return f"x-{self._digest('name', name, 10)}"

    def content_key(self, store: str) -> bytes:
        """The digest key of one output store (an HMAC of the site key): what its conversion task is given."""
        return hmac.new(self.key, f"content-key:{store}".encode(), hashlib.sha256).digest()

    def check_cohorts(self) -> None:
        """A ValueError unless every patient can get a cohort from the linking table or the run's --cohort."""
        if not self.cohort_name and not self.linking.cohorts:
            raise ValueError("no cohort given: pass --cohort NAME, or a linking table (--linking) with a cohort "
                             "column (cohorts are never taken from folder names)")


def site_pseudonymiser(key_file: str | Path | None = None, linking: str | Path | None = None,
                       cohort: str | None = None) -> Pseudonymiser:
    """The pseudonymiser of a run: the site key (``key_file`` or the default), the linking table when given, and
    the run's cohort name."""
    return Pseudonymiser(load_key(Path(key_file) if key_file else None),
                         read_linking(Path(linking)) if linking else Linking(), cohort or "")
