"""The ``alerts.alarm`` decoder (docs/formats.md 1): alarm receiver traffic,
as a raw SIA DC-09 frame or in the receiver's JSON envelope (which may also
carry a 16-digit Contact ID string from a phone-line receiver), becomes new
alerts, patches on open alerts, or account-activity rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipeline.decoders.alarm.build import (
    Event,
    Origin,
    cid_event,
    event_intents,
    heartbeat_intents,
    sia_event,
    telemetry_row,
)
from pipeline.decoders.alarm.codes import TEXT
from pipeline.decoders.alarm.dc09 import (
    Block,
    Frame,
    decrypt_rest,
    frame_stamp,
    parse_frame,
    split_rest,
)
from pipeline.decoders.alarm.dc09_data import (
    Cid16,
    is_cid16,
    parse_cid16,
    parse_contact_id,
    parse_sia,
    read_xdata,
)
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    check_no_nul,
    envelope,
    parse_json,
    parse_timestamp,
    to_text,
)
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import AlarmAccount, AlarmSettings
from schemas.intents import Discard, Intent, StoreTelemetry
from schemas.records import RawRecord

MAX_RECEIVER_CHARS: Final = 100
_UTF8_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class _Opened:
    """A DC-09 frame and its clear part (decrypted when it came encrypted)."""

    frame: Frame
    block: Block


@dataclass(frozen=True, slots=True)
class _Inbound:
    """A message that passed the decode stage: one frame or one 16-digit string."""

    receiver: str | None
    received_at: datetime
    raw_payload: dict[str, Any]
    message: _Opened | Cid16


def decode_alarm(
    record: RawRecord,
    settings: AlarmSettings,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[Intent]:
    """Decode one ``alerts.alarm`` record into intents; ``now`` is the pipeline clock.

    Raises :class:`pipeline.errors.DecodeError` / ``ValidationError`` for input
    that must be dead-lettered.
    """
    value = envelope(record, max_bytes)
    if isinstance(value, Discard):
        return [value]
    inbound = _read(value, record, settings)
    if isinstance(inbound.message, Cid16):
        return _from_cid16(inbound.message, inbound, settings, record, now)
    return _from_frame(inbound.message, inbound, settings, record, now)


def _is_envelope(value: bytes) -> bool:
    head = value.removeprefix(_UTF8_BOM)
    return head.lstrip(b" \t\r\n").startswith(b"{")


def _read(value: bytes, record: RawRecord, settings: AlarmSettings) -> _Inbound:
    """Decode stage first (frame, CRC, decryption), then the envelope fields."""
    if not _is_envelope(value):
        opened = _open(parse_frame(value), settings)
        raw = {"format": "dc09", "frame": opened.frame.text, "receiver": None}
        return _Inbound(None, record.kafka_time, raw, opened)
    obj = parse_json(to_text(value))
    if not isinstance(obj, dict):
        raise DecodeError("unknown_format", "alarm JSON must be a receiver envelope object")
    text = _frame_field(obj)
    message: _Opened | Cid16
    if is_cid16(text.strip()):
        message = parse_cid16(text.strip())
        shown, fmt = text.strip(), "cid16"
    else:
        message = _open(_parse_text_frame(text), settings)
        shown, fmt = message.frame.text, "dc09"
    receiver = _receiver(obj)
    received_at = _received_at(obj)
    check_no_nul(obj, "alarm envelope")
    # Unknown envelope fields are kept; the documented keys describe the frame.
    raw = {**obj, "format": fmt, "frame": shown, "receiver": receiver}
    return _Inbound(receiver, received_at, raw, message)


def _frame_field(obj: dict[str, Any]) -> str:
    text = obj.get("frame")
    if text is None or text == "":
        raise ValidationError("missing_field", "envelope.frame is required")
    if not isinstance(text, str):
        raise ValidationError("invalid_value", "envelope.frame must be a string")
    return text


def _receiver(obj: dict[str, Any]) -> str:
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


def _received_at(obj: dict[str, Any]) -> datetime:
    value = obj.get("received_at")
    if value is None or value == "":
        raise ValidationError("missing_field", "envelope.received_at is required")
    return parse_timestamp(value, "envelope.received_at")


def _parse_text_frame(text: str) -> Frame:
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


def _entry(settings: AlarmSettings, name: str) -> AlarmAccount | None:
    entry = settings.accounts.get(name)
    if entry is None:
        upper = name.upper()
        entry = next((v for k, v in settings.accounts.items() if k.upper() == upper), None)
    return entry


def _entries(settings: AlarmSettings, line: str | None, account: str) -> list[AlarmAccount]:
    """Configured entries for an account, the line-specific one first."""
    names = [f"L{line}#{account}"] if line else []
    names.append(account)
    return [e for e in (_entry(settings, n) for n in names) if e is not None]


def _open(frame: Frame, settings: AlarmSettings) -> _Opened:
    """Split the clear part of a frame, decrypting it with the account's key."""
    if frame.encrypted:
        account = frame.account
        entries = _entries(settings, frame.line, account) if account else []
        key = next((e.key for e in entries if e.key is not None), None)
        if key is None:
            who = f"from account {account}" if account else "without an account"
            raise DecodeError("encrypted_no_key", f"encrypted DC-09 frame {who}, no key configured")
        block = split_rest(decrypt_rest(frame.rest, key.get_secret_value()), encrypted=True)
    else:
        block = split_rest(frame.rest, encrypted=False)
    # NUL is a validation failure, but only the decrypted block can show it.
    check_no_nul(frame.text, "DC-09 frame")
    check_no_nul([block.data, *(v for _, v in block.xdata)], "DC-09 data")
    return _Opened(frame, block)


def _null_account(data: str) -> str | None:
    """A NULL frame may repeat the account in its (otherwise empty) data block."""
    if data.startswith("#"):
        acct = data[1:].split("|", 1)[0]
        if 3 <= len(acct) <= 16 and all(c in "0123456789abcdefABCDEF" for c in acct):
            return acct.upper()
    return None


def _origin(
    *,
    settings: AlarmSettings,
    inbound: _Inbound,
    record: RawRecord,
    now: datetime,
    account: str,
    line: str | None,
    seq: str | None,
    stamp: datetime | None,
    xdata_blocks: tuple[tuple[str, str], ...],
    format_meta: dict[str, Any],
) -> Origin:
    entries = _entries(settings, line, account)
    site = next((e.site.strip() for e in entries if e.site and e.site.strip()), account.upper())
    site_entry = _entry(settings, site)
    if site_entry is not None:
        entries.append(site_entry)
    xdata = read_xdata(xdata_blocks)
    source_time = xdata.occurred_at or stamp
    t_event = source_time or inbound.received_at
    if seq is None:
        # Phone-line strings carry no sequence number: the id is per minute.
        prefix, bucket = f"cid16:{account}:", f"{inbound.received_at:%Y%m%d%H%M}"
    else:
        prefix = f"dc09:{site}:{seq}:"
        bucket = f"{t_event:%Y%m%d%H%M}" if seq == "0000" else f"{t_event:%Y%m%d%H}"
    return Origin(
        site=site,
        account=account,
        receiver=inbound.receiver,
        received_at=inbound.received_at,
        processed_at=now,
        t_event=t_event,
        from_source=source_time is not None,
        seq=seq,
        id_prefix=prefix,
        bucket=bucket,
        xdata=xdata,
        location=xdata.location or next((e.location for e in entries if e.location), None),
        address=next((e.address for e in entries if e.address is not None), None),
        raw_payload=inbound.raw_payload,
        ingest=record.ingest_ref(),
        format_meta=format_meta,
    )


def _dc09_meta(frame: Frame, stamp: datetime | None, received_at: datetime) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "token": frame.protocol,
        "seq": frame.seq,
        "rcvr": frame.rcvr,
        "line": frame.line,
        "encrypted": frame.encrypted,
    }
    if frame.length_mismatch:
        meta["length_mismatch"] = True
    if stamp is not None:
        meta["clock_skew_s"] = round((stamp - received_at).total_seconds(), 3)
    return {"dc09": meta}


def _from_frame(
    opened: _Opened,
    inbound: _Inbound,
    settings: AlarmSettings,
    record: RawRecord,
    now: datetime,
) -> list[Intent]:
    frame, block = opened.frame, opened.block
    stamp = frame_stamp(block.stamp) if block.stamp else None
    event: Event | None = None
    text: str | None = None
    if frame.protocol == "NULL":
        account = _null_account(block.data) or frame.account
        if account is None:
            return [Discard("heartbeat_no_account")]
    elif frame.protocol == "SIA-DCS":
        sia = parse_sia(block.data)
        account = sia.account or frame.account
        if sia.code is None:
            text = sia.text or ""
        else:
            event = sia_event(sia, sia.code)
    else:
        cid = parse_contact_id(block.data)
        account = cid.account or frame.account
        event = cid_event(cid)
    if account is None:
        raise ValidationError("missing_field", "DC-09 frame names no account")
    origin = _origin(
        settings=settings,
        inbound=inbound,
        record=record,
        now=now,
        account=account,
        line=frame.line,
        seq=frame.seq,
        stamp=stamp,
        xdata_blocks=block.xdata,
        format_meta=_dc09_meta(frame, stamp, inbound.received_at),
    )
    if event is not None:
        return event_intents(event, origin, open_close_as_alerts=settings.open_close_as_alerts)
    if text is not None:
        row = telemetry_row(
            origin,
            TEXT,
            value=None,
            text=None,
            external=origin.external_id("text"),
            area=None,
            extra={"text": text},
        )
        return [StoreTelemetry((row,))]
    return heartbeat_intents(origin)


def _from_cid16(
    cid16: Cid16, inbound: _Inbound, settings: AlarmSettings, record: RawRecord, now: datetime
) -> list[Intent]:
    origin = _origin(
        settings=settings,
        inbound=inbound,
        record=record,
        now=now,
        account=cid16.account,
        line=None,
        seq=None,
        stamp=None,
        xdata_blocks=(),
        format_meta={"cid16": {"message_type": cid16.message_type}},
    )
    event = cid_event(cid16.event, id_prefix="")
    return event_intents(event, origin, open_close_as_alerts=settings.open_close_as_alerts)
