"""What the alarm decoder reads around the events: the receiver envelope's
fields (docs/formats.md 1.1), the configured account entries, and which
account a frame counts for (data block, header, placeholders).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipeline.decoders.alarm.dc09 import Frame, parse_frame
from pipeline.decoders.envelope import parse_timestamp
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import AlarmAccount, AlarmSettings
from schemas.canonical import GeoPoint

MAX_RECEIVER_CHARS: Final = 100


def frame_field(obj: dict[str, Any]) -> str:
    text = obj.get("frame")
    if text is None or text == "":
        raise ValidationError("missing_field", "envelope.frame is required")
    if not isinstance(text, str):
        raise ValidationError("invalid_value", "envelope.frame must be a string")
    return text


def receiver_field(obj: dict[str, Any]) -> str:
    receiver = obj.get("receiver")
    if receiver is None or (isinstance(receiver, str) and not receiver.strip()):
        raise ValidationError("missing_field", "envelope.receiver is required")
    if not isinstance(receiver, str):
        raise ValidationError("invalid_value", "envelope.receiver must be a string")
    if len(receiver) > MAX_RECEIVER_CHARS:
        raise ValidationError(
            "value_out_of_range", f"envelope.receiver longer than {MAX_RECEIVER_CHARS} chars"
        )
    return receiver


def received_at_field(obj: dict[str, Any]) -> datetime:
    value = obj.get("received_at")
    if value is None or value == "":
        raise ValidationError("missing_field", "envelope.received_at is required")
    return parse_timestamp(value, "envelope.received_at")


def parse_text_frame(text: str) -> Frame:
    """A frame that arrived as a JSON string; its CRC was computed by the panel
    over bytes we no longer see, so a non-ASCII text is tried as UTF-8 and then
    as Windows-1252."""
    utf8 = text.encode("utf-8")
    try:
        return parse_frame(utf8)
    except DecodeError as exc:
        if exc.error_code != "bad_checksum":
            raise
        try:
            legacy = text.encode("cp1252")
        except UnicodeEncodeError:
            raise exc from None
        if legacy == utf8:
            raise
        try:
            return parse_frame(legacy)
        except DecodeError:
            raise exc from None


def entry(settings: AlarmSettings, name: str) -> AlarmAccount | None:
    """``alarm.accounts[name]``, the name compared without regard to case."""
    found = settings.accounts.get(name)
    if found is None:
        upper = name.upper()
        found = next((v for k, v in settings.accounts.items() if k.upper() == upper), None)
    return found


def entries(settings: AlarmSettings, line: str | None, account: str) -> list[AlarmAccount]:
    """Configured entries for an account, the line-specific one first; a frame
    without an ``L`` field is on line 0."""
    names = [f"L{line or '0'}#{account}", account]
    return [e for e in (entry(settings, n) for n in names) if e is not None]


def null_account(data: str) -> str | None:
    """A NULL frame may repeat the account in its (otherwise empty) data block;
    all zeros (``#0000``) is a placeholder some transmitters write, not an account."""
    if data.startswith("#"):
        acct = data[1:].split("|", 1)[0]
        if 3 <= len(acct) <= 16 and all(c in "0123456789abcdefABCDEF" for c in acct):
            return None if is_placeholder_account(acct) else acct.upper()
    return None


def data_account(data: str | None, header: str | None) -> str | None:
    """The data-block account wins over the header's, unless it is a placeholder."""
    if data is not None and header is not None and is_placeholder_account(data):
        return header
    return data or header


def is_placeholder_account(account: str) -> bool:
    """An account of zeros only, which transmitters send when none is configured."""
    return account.strip("0") == ""


@dataclass(frozen=True, slots=True)
class Place:
    """Where an account's alarms are: its site and the configured location and address."""

    site: str
    location: GeoPoint | None
    address: dict[str, Any] | None


def place(settings: AlarmSettings, line: str | None, account: str) -> Place:
    """``alarm.accounts[...].site`` if configured, else the account (upper case);
    location and address from the account's entries, then the site's."""
    found = entries(settings, line, account)
    site = next((e.site.strip() for e in found if e.site and e.site.strip()), account.upper())
    site_entry = entry(settings, site)
    if site_entry is not None:
        found.append(site_entry)
    return Place(
        site=site,
        location=next((e.location for e in found if e.location), None),
        address=next((e.address for e in found if e.address is not None), None),
    )
