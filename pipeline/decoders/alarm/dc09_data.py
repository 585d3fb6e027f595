"""What a DC-09 frame carries (docs/formats.md 1.4-1.6): SIA-DCS events,
Contact ID events (inside DC-09 or as a 16-digit phone-line string) and the
xdata blocks the pipeline uses (time, texts, verification URL, coordinates).

Pure functions; input errors are raised as :mod:`pipeline.errors` codes, with
reasons that never echo the data (it may have been decrypted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pipeline.decoders.alarm.dc09 import parse_stamp
from pipeline.errors import DecodeError, ValidationError
from schemas.canonical import GeoPoint

QUALIFIERS: Final = frozenset({1, 3, 6})
CID16_MESSAGE_TYPES: Final = frozenset({"18", "98"})

_ACCOUNT_PREFIX_RE: Final = re.compile(r"(?:#([0-9A-Fa-f]{3,16}))?\|?")
# Some panels write the phone-line message type first ("18 1 120 01 007",
# "18 1120 01 007"); it says nothing the DC-09 token does not.
_CID_RE: Final = re.compile(
    r"(?:#([0-9A-Fa-f]{3,16}))?\|?(?:[19]8 )?"
    r"([0-9A-Fa-f]) ?([0-9A-Fa-f]{3}) ([0-9A-Fa-f]{2}) ([0-9A-Fa-f]{3})"
)
# A, the value 10 like 0, is written by some receivers in the account and the
# check digit; elsewhere it would stand for a number and is not accepted.
_CID16_RE: Final = re.compile(r"[0-9A-Fa-f]{4}[0-9B-Fb-f]{11}[0-9A-Fa-f]")
_MOD_NUMBER_RE: Final = re.compile(r"[0-9]{1,4}")
_TIME_OF_DAY_RE: Final = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2})?")
_CODE_RE: Final = re.compile(r"[A-Z]{2}")
_NUMBER_RE: Final = re.compile(r"[0-9]{1,5}")
_DECIMAL_DEG_RE: Final = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]+)?")
_DEG_MIN_RE: Final = re.compile(r"([0-9]{1,3})([NSEW])([0-9]{1,2}(?:\.[0-9]+)?)")

#: xdata letters whose values are appended to an alert's description
XDATA_TEXT_LABELS: Final = {"I": "", "L": "Location", "O": "Building", "R": "Room", "S": "Site"}


@dataclass(frozen=True, slots=True)
class SiaEvent:
    """One SIA-DCS data block: an ``N`` event or, with ``code`` None, an ``A`` text."""

    account: str | None
    code: str | None
    number: int | None = None
    ri: int | None = None
    ri_text: str | None = None
    user: int | None = None
    user_text: str | None = None
    ti: str | None = None
    text: str | None = None
    tail: str | None = None


def _caret_text(s: str, i: int) -> tuple[str | None, int]:
    """An optional ``^text^`` at ``i``: the text and the index after it."""
    if i < len(s) and s[i] == "^":
        close = s.find("^", i + 1)
        if close >= 0:
            return s[i + 1 : close], close + 1
    return None, i


def parse_sia(data: str) -> SiaEvent:
    """Read ``["#" acct] ["|"] ("N" event / "A" text)`` in one left-to-right scan.

    Modifiers are lowercase and codes uppercase, so ``ri``, ``id`` and ``ti``
    are recognised in any order, each optionally followed by ``/``.
    """
    prefix = _ACCOUNT_PREFIX_RE.match(data)
    account = prefix[1].upper() if prefix and prefix[1] else None
    i = prefix.end() if prefix else 0
    if i >= len(data):
        raise ValidationError("missing_field", "SIA data block has no event")
    kind = data[i]
    if kind == "A":
        return SiaEvent(account=account, code=None, text=data[i + 1 :])
    if kind != "N":
        raise ValidationError("invalid_value", "SIA data block is neither an N event nor A text")
    i += 1
    ri: int | None = None
    user: int | None = None
    ri_text: str | None = None
    user_text: str | None = None
    ti: str | None = None
    while True:
        two = data[i : i + 2]
        num = _MOD_NUMBER_RE.match(data, i + 2) if two in ("ri", "id") else None
        tod = _TIME_OF_DAY_RE.match(data, i + 2) if two == "ti" else None
        if num is not None:
            text, i = _caret_text(data, num.end())
            if two == "ri":
                ri, ri_text = int(num[0]), text
            else:
                user, user_text = int(num[0]), text
        elif tod is not None:
            ti, i = tod[0], tod.end()
        else:
            break
        if data.startswith("/", i):
            i += 1
    code = _CODE_RE.match(data, i)
    if code is None:
        if data[i:].strip("/ ") == "":
            raise ValidationError("missing_field", "SIA N event has no event code")
        raise ValidationError("invalid_value", "SIA N event code is not two uppercase letters")
    i = code.end()
    number: int | None = None
    if num := _NUMBER_RE.match(data, i):
        number, i = int(num[0]), num.end()
    text, i = _caret_text(data, i)
    return SiaEvent(
        account=account,
        code=code[0],
        number=number,
        ri=ri,
        ri_text=ri_text,
        user=user,
        user_text=user_text,
        ti=ti,
        text=text,
        tail=data[i:] or None,
    )


@dataclass(frozen=True, slots=True)
class ContactId:
    """Qualifier, event code XYZ, partition GG (00 = none), zone or user CCC (000 = none)."""

    qualifier: int
    code: str
    partition: str
    zone: str
    account: str | None = None


def _checked_qualifier(digit: str) -> int:
    q = int(digit, 16)
    if q not in QUALIFIERS:
        raise ValidationError("value_out_of_range", f"Contact ID qualifier {q} is not 1, 3 or 6")
    return q


def parse_contact_id(data: str) -> ContactId:
    """Read the ADM-CID data block ``["#" acct] ["|"] Q XYZ SP GG SP CCC``."""
    m = _CID_RE.fullmatch(data)
    if m is None:
        prefix = _ACCOUNT_PREFIX_RE.match(data)
        if prefix is not None and prefix.end() == len(data):
            raise ValidationError("missing_field", "ADM-CID data block has no event")
        raise ValidationError("invalid_value", "ADM-CID data block is not 'Q XYZ GG CCC'")
    return ContactId(
        qualifier=_checked_qualifier(m[2]),
        code=m[3].upper(),
        partition=m[4].upper(),
        zone=m[5].upper(),
        account=m[1].upper() if m[1] else None,
    )


def _cid16_value(digit: str) -> int:
    # On the phone line the digit 0 is sent as the tenth tone, so it weighs 10,
    # as does A (hex 10), the name some receivers give that tone.
    return 10 if digit == "0" else int(digit, 16)


def cid16_checksum_ok(digits: str) -> bool:
    """All 16 digit values (0 and A counted as 10) add up to a multiple of 15."""
    return sum(_cid16_value(d) for d in digits) % 15 == 0


def cid16_check_digit(first15: str) -> str:
    """The digit S a sender appends: 15 - (sum mod 15), written F for 15 and 0 for 10."""
    s = 15 - sum(_cid16_value(d) for d in first15) % 15
    return "0" if s == 10 else f"{s:X}"


def is_cid16(text: str) -> bool:
    """Shape of a phone-line Contact ID string: 16 digits from 0-9 and B-F
    (A also in the account and the check digit)."""
    return _CID16_RE.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Cid16:
    """``ACCT MT Q XYZ GG CCC S`` from a phone-line receiver."""

    account: str
    message_type: str
    event: ContactId


def parse_cid16(text: str) -> Cid16:
    """Checksum first (a corrupted string), then message type and qualifier."""
    digits = text.upper()
    if not is_cid16(digits):
        raise DecodeError("unknown_format", "not a 16-digit Contact ID string")
    if not cid16_checksum_ok(digits):
        raise DecodeError("bad_checksum", "Contact ID digit sum is not a multiple of 15")
    mt = digits[4:6]
    if mt not in CID16_MESSAGE_TYPES:
        raise ValidationError("value_out_of_range", f"Contact ID message type {mt} is not 18/98")
    event = ContactId(
        qualifier=_checked_qualifier(digits[6]),
        code=digits[7:10],
        partition=digits[10:12],
        zone=digits[12:15],
        account=digits[:4],
    )
    return Cid16(account=digits[:4], message_type=mt, event=event)


def parse_coordinate(value: str, axis: str) -> float | None:
    """xdata X (longitude) or Y (latitude): decimal degrees or degrees,
    hemisphere and decimal minutes (``60N10.1712``). None when unusable."""
    text = value.strip()
    limit = 180.0 if axis == "X" else 90.0
    result: float
    if _DECIMAL_DEG_RE.fullmatch(text):
        result = float(text)
    elif m := _DEG_MIN_RE.fullmatch(text):
        hemisphere = m[2]
        if hemisphere not in ("EW" if axis == "X" else "NS"):
            return None
        minutes = float(m[3])
        if minutes >= 60:
            return None
        result = int(m[1]) + minutes / 60
        if hemisphere in "SW":
            result = -result
    else:
        return None
    return result if -limit <= result <= limit else None


@dataclass(frozen=True, slots=True)
class XData:
    """The xdata blocks of one frame and what the pipeline reads from them."""

    blocks: dict[str, str]
    occurred_at: datetime | None
    location: GeoPoint | None
    verification_url: str | None
    texts: tuple[tuple[str, str], ...]


def read_xdata(blocks: Sequence[tuple[str, str]]) -> XData:
    """The first block of each letter counts; a bad coordinate or time is ignored."""
    first: dict[str, str] = {}
    for letter, value in blocks:
        first.setdefault(letter, value)
    lon = parse_coordinate(first["X"], "X") if "X" in first else None
    lat = parse_coordinate(first["Y"], "Y") if "Y" in first else None
    return XData(
        blocks=first,
        occurred_at=parse_stamp(first["H"]) if "H" in first else None,
        location=GeoPoint(lon, lat) if lon is not None and lat is not None else None,
        verification_url=first.get("V") or None,
        texts=tuple((k, v) for k, v in blocks if k in XDATA_TEXT_LABELS and v.strip()),
    )
