"""DICOM date and time values (DA, TM, DT) as Python datetimes."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta


def parse_tm(value: object) -> time | None:
    """A DICOM TM ('HHMMSS.FFFFFF', parts optional, colons tolerated) as a time; None when empty."""
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    whole, _, frac = text.partition(".")
    whole = whole.ljust(6, "0")
    micro = int((frac + "000000")[:6]) if frac else 0
    return time(int(whole[0:2]), int(whole[2:4]), int(whole[4:6]), micro)


def parse_da(value: object) -> date | None:
    """A DICOM DA ('YYYYMMDD') as a date; None when empty."""
    text = str(value or "").strip().replace("-", "").replace(".", "")
    if not text:
        return None
    return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))


def parse_dt(value: object) -> datetime | None:
    """A DICOM DT ('YYYYMMDDHHMMSS.FFFFFF&ZZXX') as a naive datetime (any UTC offset is dropped)."""
    text = str(value or "").strip()
    if not text:
        return None
    for sign in "+-":
        head, sep, _ = text.partition(sign)
        if sep and len(head) >= 8:
            text = head
    day = parse_da(text[:8])
    clock = parse_tm(text[8:]) or time(0)
    return datetime.combine(day, clock)


def combine(day: object, clock: object) -> datetime | None:
    """A DA and a TM value as one datetime; None when either is missing."""
    d, t = parse_da(day), parse_tm(clock)
    return datetime.combine(d, t) if d and t else None


def seconds_between(start: datetime, end: datetime) -> float:
    """Seconds from ``start`` to ``end``."""
    return (end - start) / timedelta(seconds=1)
