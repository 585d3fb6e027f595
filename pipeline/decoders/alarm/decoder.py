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
    Origin,
    event_intents,
    heartbeat_intents,
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
from pipeline.decoders.alarm.events import Event, cid_event, sia_event
from pipeline.decoders.alarm.fields import (
    data_account,
    entries,
    frame_field,
    null_account,
    parse_text_frame,
    place,
    received_at_field,
    receiver_field,
)
from pipeline.decoders.alarm.supervision import SUPERVISION_KEY, supervision_intents
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    check_no_nul,
    envelope,
    parse_json,
    to_text,
)
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import AlarmSettings
from schemas.intents import Discard, Intent, StoreTelemetry
from schemas.records import RawRecord

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
    if not _is_envelope(value):
        opened = _open(parse_frame(value), settings)
        raw = {"format": "dc09", "frame": opened.frame.text, "receiver": None}
        inbound = _Inbound(None, record.kafka_time, raw, opened)
    else:
        obj = parse_json(to_text(value))
        if not isinstance(obj, dict):
            raise DecodeError("unknown_format", "alarm JSON must be a receiver envelope object")
        if SUPERVISION_KEY in obj and "frame" not in obj:
            return supervision_intents(obj, record, settings, now)
        inbound = _read_envelope(obj, settings)
    if isinstance(inbound.message, Cid16):
        return _from_cid16(inbound.message, inbound, settings, record, now)
    return _from_frame(inbound.message, inbound, settings, record, now)


def _is_envelope(value: bytes) -> bool:
    head = value.removeprefix(_UTF8_BOM)
    return head.lstrip(b" \t\r\n").startswith(b"{")


def _read_envelope(obj: dict[str, Any], settings: AlarmSettings) -> _Inbound:
    """Decode stage first (frame, CRC, decryption), then the envelope fields."""
    text = frame_field(obj)
    message: _Opened | Cid16
    if is_cid16(text.strip()):
        message = parse_cid16(text.strip())
        shown, fmt = text.strip(), "cid16"
    else:
        message = _open(parse_text_frame(text), settings)
        shown, fmt = message.frame.text, "dc09"
    receiver = receiver_field(obj)
    received_at = received_at_field(obj)
    check_no_nul(obj, "alarm envelope")
    # Unknown envelope fields are kept; the documented keys describe the frame.
    raw = {**obj, "format": fmt, "frame": shown, "receiver": receiver}
    return _Inbound(receiver, received_at, raw, message)


def _open(frame: Frame, settings: AlarmSettings) -> _Opened:
    """Split the clear part of a frame, decrypting it with the account's key."""
    if frame.encrypted:
        account = frame.account
        found = entries(settings, frame.line, account) if account else []
        key = next((e.key for e in found if e.key is not None), None)
        if key is None:
            who = f"from account {account}" if account else "without an account"
            raise DecodeError("encrypted_no_key", f"encrypted DC-09 frame {who}, no key configured")
        clear = decrypt_rest(frame.rest, key.get_secret_value(), null=frame.protocol == "NULL")
        block = split_rest(clear, encrypted=True)
    else:
        block = split_rest(frame.rest, encrypted=False)
    # NUL is a validation failure, but only the decrypted block can show it.
    check_no_nul(frame.text, "DC-09 frame")
    check_no_nul([block.data, *(v for _, v in block.xdata)], "DC-09 data")
    return _Opened(frame, block)


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
    where = place(settings, line, account)
    site = where.site
    xdata = read_xdata(xdata_blocks)
    source_time = xdata.occurred_at or stamp
    t_event = source_time or inbound.received_at
    if seq is None:
        # Phone-line strings carry no sequence number: the id is per minute.
        prefix, bucket = f"cid16:{account}:", f"{inbound.received_at:%Y%m%d%H%M}"
    else:
        # Hex sequence numbers (000A) are kept as sent, in upper case.
        prefix = f"dc09:{site}:{seq.upper()}:"
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
        location=xdata.location or where.location,
        address=where.address,
        raw_payload=inbound.raw_payload,
        ingest=record.ingest_ref(),
        format_meta=format_meta,
    )


def _dc09_meta(frame: Frame, stamp: datetime | None, received_at: datetime) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "token": frame.protocol,
        "seq": frame.seq,
        "rcvr": frame.rcvr.upper() if frame.rcvr else None,
        "line": frame.line.upper() if frame.line else None,
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
        account = null_account(block.data) or frame.account
        if account is None:
            return [Discard("heartbeat_no_account")]
    elif frame.protocol == "SIA-DCS":
        sia = parse_sia(block.data)
        account = data_account(sia.account, frame.account)
        if sia.code is None:
            text = sia.text or ""
        else:
            event = sia_event(sia, sia.code)
    else:
        cid = parse_contact_id(block.data)
        account = data_account(cid.account, frame.account)
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
