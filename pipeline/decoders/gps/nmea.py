"""NMEA 0183 text: checksums, and the RMC and GGA sentences (docs/formats.md 6.2).

Parsing happens in two passes so that the decode-stage verdicts (checksum,
no usable sentence) win over field errors of any sentence, whatever the order.
"""

from __future__ import annotations

import re
from datetime import date
from functools import reduce
from operator import xor
from typing import Final

from pipeline.errors import DecodeError, ValidationError
from schemas.gps import GGA_VOID_QUALITY, RMC_VOID_MODES, Gga, Rmc

_HEX: Final = frozenset("0123456789abcdefABCDEF")
_TIME_RE: Final = re.compile(r"(\d\d)(\d\d)(\d\d(?:\.\d+)?)")
_DATE_RE: Final = re.compile(r"(\d\d)(\d\d)(\d\d)")
# Degrees are whatever digits precede the last two before the point (minutes).
_COORD_RE: Final = re.compile(r"(\d+)(\d\d(?:\.\d+)?)")
_DECIMAL_RE: Final = re.compile(r"-?\d+(?:\.\d*)?|-?\.\d+")
_READ: Final = ("RMC", "GGA")
_LAT_SIGNS: Final = {"N": 1.0, "S": -1.0}
_LON_SIGNS: Final = {"E": 1.0, "W": -1.0}
# Field counts including the address field; shorter sentences are padded.
_RMC_FIELDS: Final = 14
_GGA_FIELDS: Final = 10

Fix = tuple[Rmc | None, Gga | None]


def parse_nmea(text: str) -> list[Fix]:
    """RMC/GGA pairs of one message, merged by time of day, in order of appearance.

    Raises ``bad_checksum`` for a sentence whose checksum is missing or wrong,
    ``unknown_format`` for a line that is not a sentence or a message with no
    RMC or GGA, and validation errors for unreadable fields.
    """
    sentences: list[tuple[str, list[str]]] = []
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if line[0] != "$":
            raise DecodeError("unknown_format", f"NMEA line {number} does not start with $")
        fields = _checked_body(line, number).split(",")
        address = fields[0]
        # $ttRMC / $ttGGA with any two-letter talker; other types are ignored.
        if len(address) == 5 and address[2:] in _READ:
            sentences.append((address[2:], fields))
    if not sentences:
        raise DecodeError("unknown_format", "no RMC or GGA sentence in NMEA message")

    merged: dict[int | None, list[Rmc | Gga | None]] = {}
    for kind, fields in sentences:
        sentence: Rmc | Gga = _rmc(fields) if kind == "RMC" else _gga(fields)
        slot = merged.setdefault(sentence.time_of_day_us, [None, None])
        index = 0 if kind == "RMC" else 1
        if slot[index] is None:  # a repeated sentence for the same time adds nothing
            slot[index] = sentence
    out: list[Fix] = []
    for rmc, gga in merged.values():
        assert rmc is None or isinstance(rmc, Rmc)
        assert gga is None or isinstance(gga, Gga)
        out.append((rmc, gga))
    return out


def _checked_body(line: str, number: int) -> str:
    """The text between ``$`` and ``*`` once its XOR checksum is verified."""
    star = line.rfind("*")
    given = line[star + 1 :] if star > 0 else ""
    if len(given) != 2 or not _HEX.issuperset(given):
        raise DecodeError("bad_checksum", f"NMEA line {number} has no checksum")
    body = line[1:star]
    computed = reduce(xor, body.encode(), 0)
    if computed != int(given, 16):
        raise DecodeError(
            "bad_checksum",
            f"NMEA line {number} checksum {given.upper()} does not match computed {computed:02X}",
        )
    return body


def _bad(code: str, kind: str, field: str, problem: str) -> ValidationError:
    return ValidationError(code, f"NMEA {kind} {field}: {problem}")


def _time_of_day(value: str, kind: str) -> int | None:
    if not value:
        return None
    m = _TIME_RE.fullmatch(value)
    if m is None:
        raise _bad("invalid_value", kind, "time", f"{value[:20]!r} is not hhmmss.ss")
    hours, minutes, seconds = int(m[1]), int(m[2]), float(m[3])
    if hours > 23 or minutes > 59 or seconds >= 60:
        raise _bad("invalid_value", kind, "time", f"{value!r} is not a time of day")
    return (hours * 3600 + minutes * 60) * 1_000_000 + round(seconds * 1_000_000)


def _date(value: str) -> date | None:
    if not value:
        return None
    m = _DATE_RE.fullmatch(value)
    try:
        if m is None:
            raise ValueError(value)
        return date(2000 + int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        raise _bad("invalid_value", "RMC", "date", f"{value[:20]!r} is not ddmmyy") from None


def _coordinate(value: str, hemisphere: str, kind: str, axis: str) -> float | None:
    """``ddmm.mmmm`` / ``dddmm.mmmm`` with its hemisphere; empty is no position."""
    if not value:
        return None
    m = _COORD_RE.fullmatch(value)
    if m is None:
        raise _bad("invalid_value", kind, axis, f"{value[:20]!r} is not degrees and minutes")
    minutes = float(m[2])
    if minutes >= 60:
        raise _bad("value_out_of_range", kind, axis, f"minutes {m[2]} are 60 or more")
    degrees = int(m[1]) + minutes / 60
    sign = (_LAT_SIGNS if axis == "latitude" else _LON_SIGNS).get(hemisphere)
    if sign is None:
        raise _bad("invalid_value", kind, axis, f"hemisphere {hemisphere[:5]!r}")
    return sign * degrees


def _decimal(value: str, kind: str, field: str) -> float | None:
    if not value:
        return None
    # float() would also take "nan", "inf" and "1_0"; NMEA has plain decimals only.
    if _DECIMAL_RE.fullmatch(value) is None:
        raise _bad("invalid_value", kind, field, f"{value[:20]!r} is not a number")
    return float(value)


def _integer(value: str, kind: str, field: str) -> int | None:
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        raise _bad("invalid_value", kind, field, f"{value[:20]!r} is not an integer")
    return int(value)


def _rmc(fields: list[str]) -> Rmc:
    f = fields + [""] * (_RMC_FIELDS - len(fields))
    status = f[2]
    if status not in ("A", "V", ""):
        raise _bad("invalid_value", "RMC", "status", f"{status[:5]!r} is neither A nor V")
    mode = f[12] or None
    time_of_day = _time_of_day(f[1], "RMC")
    # A void sentence carries no usable fields; whatever it has left is not read.
    # Receivers without a fix leave the status empty; NMEA 4.1 adds a navigational
    # status (field 13) whose V also says the fix is not valid.
    if status in ("V", "") or mode in RMC_VOID_MODES or f[13] == "V":
        return Rmc(time_of_day, False, None, None, None, None, None, mode)
    return Rmc(
        time_of_day_us=time_of_day,
        valid=True,
        lat=_coordinate(f[3], f[4], "RMC", "latitude"),
        lon=_coordinate(f[5], f[6], "RMC", "longitude"),
        speed_knots=_decimal(f[7], "RMC", "speed"),
        course=_decimal(f[8], "RMC", "course"),
        day=_date(f[9]),
        mode=mode,
    )


def _gga(fields: list[str]) -> Gga:
    f = fields + [""] * (_GGA_FIELDS - len(fields))
    quality = _integer(f[6], "GGA", "quality")
    time_of_day = _time_of_day(f[1], "GGA")
    if quality in GGA_VOID_QUALITY:
        return Gga(time_of_day, None, None, quality, None, None, None)
    return Gga(
        time_of_day_us=time_of_day,
        lat=_coordinate(f[2], f[3], "GGA", "latitude"),
        lon=_coordinate(f[4], f[5], "GGA", "longitude"),
        quality=quality,
        satellites=_integer(f[7], "GGA", "satellites"),
        hdop=_decimal(f[8], "GGA", "HDOP"),
        altitude_m=_decimal(f[9], "GGA", "altitude"),
    )
