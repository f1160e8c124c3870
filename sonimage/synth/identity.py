"""Hospital identities of synthetic patients: names, birth dates, medical record numbers, calendar dates.

These are the protected fields a real PACS export carries; they exist so that keeping them out of every output
can be tested. They only ever go into DICOM headers and the site-private linking file.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

FAMILY = {
    "NL": ("Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
           "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit"),
    "IT": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco"),
    "FR": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"),
    "ES": ("Garcia", "Fernandez", "Gonzalez", "Rodriguez", "Lopez", "Martinez", "Sanchez", "Perez", "Gomez"),
}
GIVEN_F = {
    "NL": ("Maria", "Anna", "Johanna", "Elisabeth", "Cornelia", "Wilhelmina", "Sanne", "Linda", "Marieke", "Ingrid"),
    "IT": ("Giulia", "Francesca", "Chiara", "Maria", "Elena", "Paola", "Anna", "Laura"),
    "FR": ("Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Sophie", "Christine"),
    "ES": ("Maria", "Carmen", "Ana", "Isabel", "Laura", "Cristina", "Lucia"),
}
GIVEN_M = {"NL": ("Jan", "Pieter", "Kees"), "IT": ("Marco", "Luca"), "FR": ("Pierre", "Jean"), "ES": ("Jose", "Juan")}
TRIAL_START = date(2017, 6, 1)
ACCRUAL_DAYS = 1100


@dataclass(frozen=True)
class Identity:
    """What the hospital knows about a trial subject."""

    patient_id: str
    name: str
    birth_date: date
    randomisation: date


def stable_int(*parts: object) -> int:
    """A platform-independent integer from ``parts`` (Python's hash() is salted per process)."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


def patient_rng(seed: int, *parts: object) -> np.random.Generator:
    """The random generator of one patient (or one of its scans), independent of every other patient."""
    return np.random.default_rng([seed, *(stable_int(p) for p in parts)])


def make_identities(seed: int, cohort: str, subjects: list[str], sites: list[str], ages: list[float],
                    sexes: list[str]) -> dict[str, Identity]:
    """One identity per subject: MRNs unique within the cohort, birth date matching the age at randomisation."""
    out: dict[str, Identity] = {}
    used: set[str] = set()
    for subject, site, age, sex in zip(subjects, sites, ages, sexes):
        rng = patient_rng(seed, cohort, subject, "identity")
        country = site[:2] if site[:2] in FAMILY else "NL"
        mrn = int(rng.integers(1_000_000, 9_999_999))
        while str(mrn) in used:
            mrn += 1
        used.add(str(mrn))
        given = GIVEN_M if sex == "M" else GIVEN_F
        name = f"{rng.choice(FAMILY[country])}^{rng.choice(given[country])}"
        randomisation = TRIAL_START + timedelta(days=int(rng.integers(0, ACCRUAL_DAYS)))
        birth = randomisation - timedelta(days=int(age * 365.25) + int(rng.integers(0, 365)))
        out[subject] = Identity(str(mrn), name, birth, randomisation)
    return out
