"""A minimal DICOM header reader for the index: only the tags the index needs, read straight from the bytes.

pydicom builds a whole dataset (every element and every sequence item) per file, which made the header index
2-3x slower than GDCM's scanner (SimpleITK's ``ImageSeriesReader``). The index needs ~25 top-level values, so
this reader walks the elements of a Part 10 file with ``struct``, decodes only those values, skips everything
else by its length (sequences of undefined length by their delimiters) and stops at the pixel data, whose
offset and length it records.

It handles the common case only: a 'DICM' preamble and a little-endian dataset (implicit or explicit VR). For
anything else it returns None and the caller reads the file with pydicom, so records and rejection reasons
stay pydicom's: big-endian or deflated transfer syntaxes, a needed value that is not plain ASCII (another
character set), a multi-valued scalar, a needed value with an unexpected VR, a header cut short, an
unknown VR. Values come back as pydicom would give them: text with trailing spaces and NULs removed,
multi-valued text as a list of str, US as int.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

IMPLICIT_LE = "1.2.840.10008.1.2"
FALLBACK_SYNTAXES = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflated
FIRST_READ = 64 * 1024  # bytes read first; the rest of the file only when the header is longer
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
TRANSFER_SYNTAX = 0x00020010
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH",
             b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
TEXT_VRS = {b"AE", b"AS", b"CS", b"DA", b"DS", b"DT", b"IS", b"LO", b"PN", b"SH", b"TM", b"UI"}

# tag → (keyword, kind): "text" one string, "multi" a list of strings, "us" an unsigned short
NEEDED: dict[int, tuple[str, str]] = {
    0x00080016: ("SOPClassUID", "text"),
    0x00080018: ("SOPInstanceUID", "text"),
    0x00080022: ("AcquisitionDate", "text"),
    0x0008002A: ("AcquisitionDateTime", "text"),
    0x00080032: ("AcquisitionTime", "text"),
    0x00080060: ("Modality", "text"),
    0x00100010: ("PatientName", "text"),  # name and birth date: only to keep them out of shown paths
    0x00100020: ("PatientID", "text"),
    0x00100030: ("PatientBirthDate", "text"),
    0x00181242: ("ActualFrameDuration", "text"),
    0x0020000D: ("StudyInstanceUID", "text"),
    0x0020000E: ("SeriesInstanceUID", "text"),
    0x00200032: ("ImagePositionPatient", "multi"),
    0x00200037: ("ImageOrientationPatient", "multi"),
    0x00200052: ("FrameOfReferenceUID", "text"),
    0x00280002: ("SamplesPerPixel", "us"),
    0x00280008: ("NumberOfFrames", "text"),
    0x00280010: ("Rows", "us"),
    0x00280011: ("Columns", "us"),
    0x00280030: ("PixelSpacing", "multi"),
    0x00280100: ("BitsAllocated", "us"),
    0x00280103: ("PixelRepresentation", "us"),
    0x00281052: ("RescaleIntercept", "text"),
    0x00281053: ("RescaleSlope", "text"),
    0x00541300: ("FrameReferenceTime", "text"),
}

_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


class _Unsupported(Exception):
    """The file is outside what this reader handles: pydicom reads it instead."""


class _Short(Exception):
    """The bytes read so far end inside the header."""


def _element(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR or None, value length, value offset) of the element starting at ``pos``."""
    if pos + 8 > len(buf):
        raise _Short
    group, element, length = _IMPLICIT.unpack_from(buf, pos)
    tag = group << 16 | element
    if implicit or group == 0xFFFE:  # items and delimiters have no VR in any syntax
        return tag, None, length, pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr in SHORT_VRS:
        return tag, vr, length >> 16, pos + 8
    if vr in LONG_VRS:
        if pos + 12 > len(buf):
            raise _Short
        return tag, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
    raise _Unsupported(f"unknown VR {vr!r}")


def _skip_sequence(buf: bytes, pos: int, implicit: bool) -> int:
    """Offset just past a sequence of undefined length whose items start at ``pos``."""
    while True:
        tag, _, length, pos = _element(buf, pos, True)
        if tag == SEQUENCE_END:
            return pos
        if tag != ITEM:
            raise _Unsupported("malformed sequence")
        pos = pos + length if length != UNDEFINED else _walk(buf, pos, implicit, False, None)[0]


def _walk(buf: bytes, pos: int, implicit: bool, complete: bool, values: dict[str, object] | None
          ) -> tuple[int, tuple[int, int] | None]:
    """Walk the elements from ``pos``: the dataset (``values`` given: the needed values are put there) up to the
    pixel data or the end of a ``complete`` file, returning the pixel data's (offset, length) if any; or an item
    of undefined length (``values`` None) up to its delimiter, returning the offset past it.

    :func:`_element` is inlined: this loop runs for every element of every file indexed (the call was a third of
    the parse)."""
    end, unpack, needed, short_vrs = len(buf), _IMPLICIT.unpack_from, NEEDED.get, SHORT_VRS
    while True:
        if complete and pos == end:
            return pos, None
        if pos + 8 > end:
            raise _Short
        group, element, length = unpack(buf, pos)
        tag = group << 16 | element
        if implicit or group == 0xFFFE:  # items and delimiters have no VR in any syntax
            vr, value = None, pos + 8
        else:
            vr = buf[pos + 4:pos + 6]
            if vr in short_vrs:
                length, value = length >> 16, pos + 8
            else:
                tag, vr, length, value = _element(buf, pos, False)
        if values is None:
            if tag == ITEM_END:
                return value, None
        elif tag >= PIXEL_DATA:
            return value, ((value, length) if tag == PIXEL_DATA and length != UNDEFINED else None)
        if length == UNDEFINED:
            pos = _skip_sequence(buf, value, implicit or vr == b"UN")
            continue
        pos = value + length
        if values is not None:
            if pos > end:
                raise _Short
            need = needed(tag)
            if need is not None:
                values[need[0]] = _decode(buf[value:pos], need[1], vr)


def _decode(raw: bytes, kind: str, vr: bytes | None) -> str | list[str] | int | None:
    if kind == "us":
        if vr not in (None, b"US") or len(raw) not in (0, 2):
            raise _Unsupported("unexpected US value")
        return _U16.unpack(raw)[0] if raw else None
    if vr is not None and vr not in TEXT_VRS:
        raise _Unsupported(f"unexpected VR {vr!r}")
    if not raw.isascii() or b"\x1b" in raw:
        raise _Unsupported("text outside plain ASCII")
    items = raw.decode("ascii").rstrip(" \x00").split("\\")
    if kind == "multi":
        return items if items != [""] else []
    if len(items) != 1:
        raise _Unsupported("multi-valued scalar")
    return items[0]


def _parse(buf: bytes, complete: bool) -> tuple[dict[str, object], str, tuple[int, int] | None]:
    """Needed values, transfer syntax and (offset, length) of the pixel data of a Part 10 file in ``buf``."""
    if buf[128:132] != b"DICM":
        raise _Unsupported("no DICM preamble")
    pos, syntax = 132, ""
    while True:  # file meta information: explicit VR little endian, group 0002
        if pos + 4 > len(buf):
            raise _Short
        if _U16.unpack_from(buf, pos)[0] != 0x0002:
            break
        tag, vr, length, value = _element(buf, pos, False)
        if tag == TRANSFER_SYNTAX:
            syntax = buf[value:value + length].decode("ascii", "replace").rstrip(" \x00")
        pos = value + length
    if not syntax or syntax in FALLBACK_SYNTAXES:
        raise _Unsupported(f"transfer syntax {syntax or '(none)'}")
    values: dict[str, object] = {}
    pixels = _walk(buf, pos, syntax == IMPLICIT_LE, complete, values)[1]
    return values, syntax, pixels


def read_header(path: Path) -> tuple[dict[str, object], str, tuple[int, int] | None, int] | None:
    """(needed values by keyword, transfer syntax UID, pixel data (offset, length) or None, file size) of a
    DICOM file, or None when the file is outside what this reader handles (then read it with pydicom)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = fh.read(FIRST_READ)
            try:
                return (*_parse(buf, len(buf) == size), size)
            except _Short:
                if len(buf) == size:
                    return None  # cut short: pydicom says how
                buf += fh.read()
            return (*_parse(buf, True), size)
    except (_Unsupported, _Short, struct.error, UnicodeDecodeError):
        return None
