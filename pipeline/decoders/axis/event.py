"""Parsing of ``alerts.axis`` messages (docs/formats.md 2.1-2.3) into
:class:`AxisEvent` values: pure, no state. :mod:`pipeline.decoders.axis.decoder`
turns events into alerts and restores.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pydantic

from pipeline.decoders.axis.mapping import (
    AxisMapping,
    map_topic,
    normalise_serial,
    state_item,
    strip_topic,
    truth,
)
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    check_no_nul,
    envelope,
    external_id,
    from_pydantic,
    parse_json,
    parse_timestamp,
    to_text,
)
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import AxisSettings
from schemas.axis import AxisMessage
from schemas.intents import Discard
from schemas.records import RawRecord

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS_THRESHOLD: Final = 10**11
_NUMERIC_RE: Final = re.compile(r"^-?\d+(\.\d+)?$")
_CONNECTION_SUFFIX: Final = "/event/connection"
_OPERATIONS: Final = {op.lower(): op for op in ("Initialized", "Changed", "Deleted")}
_SERIAL_FIELDS: Final = ("serial", "serialNumber", "serial_number")


@dataclass(frozen=True, slots=True)
class AxisEvent:
    """One validated Axis message.

    ``connected`` is set only for liveness messages (the device's MQTT
    connect/last-will); those have no mapping and no state.
    ``source`` holds the source items sorted by key, values as text.
    """

    serial: str
    topic: str
    path: str
    source: tuple[tuple[str, str], ...]
    data: Mapping[str, Any]
    state: bool | None
    timestamp_ms: int
    operation: str | None
    retained: bool
    too_old: bool
    mapping: AxisMapping | None
    payload: Mapping[str, Any]
    received_at: datetime
    ingest: Mapping[str, object]
    connected: bool | None = None

    @property
    def occurred_at(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.timestamp_ms)

    @property
    def source_text(self) -> str:
        """``k=v,k=v`` sorted by key, ``-`` when there are no source items."""
        return ",".join(f"{k}={v}" for k, v in self.source) or "-"

    @property
    def state_field(self) -> str:
        """Field of the Redis hash ``eriop:axis:state:<serial>``; the path is
        compared case-insensitively, so it is stored lower-cased."""
        return f"{self.path.lower()}|{self.source_text}"

    @property
    def match_key(self) -> str:
        """Names one device item across its alerts (for restore and rearm)."""
        return f"{self.serial}|{self.path.lower()}|{self.source_text}"

    @property
    def external_id(self) -> str:
        return external_id(f"axis:{self.serial}:{self.path}:{self.source_text}:{self.timestamp_ms}")

    @property
    def sync_only(self) -> bool:
        """A snapshot of the current state, not a change: record it, alert nothing."""
        return self.operation in ("Initialized", "Deleted") or self.retained or self.too_old


def scalar_text(value: object) -> str:
    """An item value as text: JSON booleans stay lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def device_ms(value: Any) -> int:
    """The device timestamp in epoch milliseconds (µs truncated).

    Integers are epoch ms, or seconds below 10^11 (docs/formats.md 0.1);
    bridges may send the number as text or an ISO time with offset.
    """
    if isinstance(value, str) and _NUMERIC_RE.match(value.strip()):
        text = value.strip()
        value = int(text) if "." not in text else float(text)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError("invalid_value", "timestamp: expected epoch ms or ISO text")
    if isinstance(value, str):
        return (parse_timestamp(value, "timestamp") - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("invalid_value", "timestamp: not a finite number")
    scaled = value if abs(value) >= _EPOCH_MS_THRESHOLD else value * 1000
    ms = math.floor(scaled)
    try:
        _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise ValidationError("value_out_of_range", "timestamp: epoch out of range") from None
    return ms


def _serial_from_key(key: str | None) -> str:
    if key is None or "/event/" not in f"/{key}":
        raise ValidationError(
            "missing_field", "no serial in the payload and no <prefix>/event/ key"
        )
    prefix = f"/{key}".split("/event/", 1)[0]
    return normalise_serial(prefix.rsplit("/", 1)[-1])


def _payload_serial(payload: Mapping[str, Any]) -> str | None:
    for name in _SERIAL_FIELDS:
        value = payload.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationError("invalid_value", f"{name}: expected a string")
        if value.strip():
            return value
    return None


def _operation(value: str | None) -> str | None:
    if value is None:
        return None
    op = _OPERATIONS.get(value.strip().lower())
    if op is None:
        raise ValidationError(
            "invalid_value", f"operation {value[:40]!r} is not Initialized/Changed/Deleted"
        )
    return op


def _is_retained(record: RawRecord) -> bool:
    flag = record.header("mqtt-retain")
    return flag is not None and flag.strip().lower() in (b"1", b"true")


def _is_liveness(key: str | None, payload: Mapping[str, Any]) -> bool:
    return (key is not None and key.endswith(_CONNECTION_SUFFIX)) or isinstance(
        payload.get("connected"), bool
    )


def _liveness(record: RawRecord, payload: dict[str, Any], key: str | None) -> AxisEvent:
    explicit = _payload_serial(payload)
    serial = normalise_serial(explicit) if explicit is not None else _serial_from_key(key)
    flag = payload.get("connected")
    # Any message on the connection topic proves the device talked.
    connected = True if flag is None else truth(flag, "connected")
    ts = payload.get("timestamp")
    timestamp_ms = device_ms(ts) if ts is not None else record.timestamp_ms
    return AxisEvent(
        serial=serial,
        topic="connection",
        path="connection",
        source=(),
        data={},
        state=connected,
        timestamp_ms=timestamp_ms,
        operation=None,
        retained=_is_retained(record),
        too_old=False,
        mapping=None,
        payload=payload,
        received_at=record.kafka_time,
        ingest=record.ingest_ref(),
        connected=connected,
    )


def parse_axis(
    record: RawRecord,
    settings: AxisSettings,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> AxisEvent | Discard:
    """Validate one bridge message; topics that are not alerts are discarded."""
    value = envelope(record, max_bytes)
    if isinstance(value, Discard):
        return value
    payload = parse_json(to_text(value))
    if not isinstance(payload, dict):
        raise DecodeError("unknown_format", "an Axis event must be a JSON object")
    check_no_nul(payload, "Axis event")
    key = record.key_text
    if _is_liveness(key, payload):
        return _liveness(record, payload, key)
    try:
        message = AxisMessage.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "axis") from None

    explicit = _payload_serial(payload)
    serial = normalise_serial(explicit) if explicit is not None else _serial_from_key(key)
    timestamp_ms = device_ms(message.timestamp)
    path = strip_topic(message.topic)
    if not path:
        raise ValidationError("invalid_value", f"topic {message.topic[:80]!r} has no path")
    source = tuple(sorted((k, scalar_text(v)) for k, v in message.message.source.items()))
    operation = _operation(message.operation_name)
    mapping = map_topic(path, serial, dict(source), settings.inputs)
    if mapping is None:
        return Discard("axis_unmapped_topic", {"path": path})
    data = message.message.data
    item = state_item(data)
    occurred_at = _EPOCH + timedelta(milliseconds=timestamp_ms)
    return AxisEvent(
        serial=serial,
        topic=message.topic,
        path=path,
        source=source,
        data=dict(data),
        state=truth(data[item], item) if item is not None else None,
        timestamp_ms=timestamp_ms,
        operation=operation,
        retained=_is_retained(record),
        too_old=occurred_at < now - timedelta(seconds=settings.max_event_age_s),
        mapping=mapping,
        payload=payload,
        received_at=record.kafka_time,
        ingest=record.ingest_ref(),
    )
