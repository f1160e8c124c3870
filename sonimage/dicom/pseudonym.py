"""Pseudonyms: original patient identifiers and UIDs never leave the reader.

A patient gets the trial pseudonym from a site-kept linking table when one is given, otherwise a keyed hash
(HMAC-SHA256) of the original PatientID. UIDs become keyed hashes too, and so does the content digest of a series' input files. The key is a secret of the site: it comes
from a key file named by the user, ``$SONIMAGE_PSEUDONYM_KEY``, or a key file created once under ``$SONIMAGE_HOME``
(default ``~/.sonimage``); it is never written into outputs.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sonimage.io import private_dir


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


def read_linking(path: Path) -> dict[str, str]:
    """A site linking table (CSV with columns PatientID and subject_id) as a dict."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"PatientID", "subject_id"} <= set(rows[0]):
        raise ValueError(f"{path}: a linking table needs columns PatientID and subject_id")
    return {r["PatientID"].strip(): r["subject_id"].strip() for r in rows}


@dataclass(frozen=True)
class Pseudonymiser:
    """Maps original identifiers to pseudonyms; picklable, so Dask workers can use it."""

    key: bytes = field(repr=False)
    linking: dict[str, str] = field(default_factory=dict, repr=False)

    def _digest(self, kind: str, value: str, n: int) -> str:
        return hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:n]

    def patient(self, patient_id: str) -> str:
        """The trial pseudonym of ``patient_id`` from the linking table, else 'P-' and a keyed hash."""
        return self.linking.get(patient_id.strip()) or f"P-{self._digest('patient', patient_id.strip(), 12)}"

    def uid(self, uid: str) -> str:
        """A stable, non-reversible key for a DICOM UID."""
        return self._digest("uid", uid, 16)

    def content_digest(self, paths: Iterable[Path]) -> str:
        """Keyed HMAC-SHA256 over the bytes of ``paths`` in order (each length-prefixed): what a conversion read.

        Keyed so that a digest recorded in an output cannot confirm, without the site key, that a known file
        was ingested (a plain SHA-256 would be a fingerprint of the file).
        """
        digest = hmac.new(self.key, b"content:", hashlib.sha256)
        for path in paths:
            data = Path(path).read_bytes()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.hexdigest()
