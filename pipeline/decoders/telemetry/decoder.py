"""``telemetry.raw``: device measurements as ``telemetry`` rows (docs/formats.md 5).

A message is either a SenML pack (RFC 8428) or the simple JSON format, and is
atomic: one bad record sends the whole message to the dead-letter topic.
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import Any, Final

from pipeline.decoders import json_fast
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    check_no_nul,
    envelope,
    parse_timestamp,
    to_text,
)
from pipeline.decoders.telemetry.fields import (
    MessageContext,
    device,
    location,
    number,
    required_text,
    text,
    valid_name,
)
from pipeline.decoders.telemetry.senml import check_senml_pack, senml_rows
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import TelemetrySettings
from schemas.canonical import TelemetryRow
from schemas.intents import Discard, StoreTelemetry
from schemas.records import RawRecord
from schemas.telemetry import (
    MAX_DEVICE_ID,
    MAX_DEVICE_TYPE,
    MAX_METRIC_NAME,
    MAX_METRIC_TEXT,
    MAX_UNIT,
    PIPELINE_METADATA_KEYS,
    SENML_DEVICE_TYPE,
)

_ONLY_OBJECTS: Final = {dict}
#: a NamedTuple built as a plain tuple: the same row without the Python-level constructor
_row: Final = tuple.__new__


def decode_telemetry(
    record: RawRecord,
    settings: TelemetrySettings,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> StoreTelemetry | Discard:
    """Decode one ``telemetry.raw`` record into rows, or raise an input error.

    ``now`` is the pipeline clock for the time window; SenML relative times
    count from the Kafka record timestamp instead, so a replay gives the same rows.
    """
    value = envelope(record, max_bytes)
    if isinstance(value, Discard):
        return value
    raw = to_text(value)
    obj = json_fast.loads(raw, value)

    pack: list[dict[str, Any]]
    if type(obj) is dict:
        if "device_id" not in obj:
            raise DecodeError("unknown_format", "object without device_id is not telemetry")
        pack, simple = [obj], True
    elif type(obj) is list and obj and set(map(type, obj)) == _ONLY_OBJECTS:
        pack = obj
        simple = any("device_id" in r for r in pack)
        if not simple and not check_senml_pack(pack):
            raise DecodeError("unknown_format", "array uses neither SenML labels nor device_id")
    else:
        raise DecodeError("unknown_format", "expected a SenML pack or simple telemetry JSON")

    # A NUL can only arrive as an escape: raw control characters are not JSON.
    if "\\u0000" in raw:
        check_no_nul(obj)

    ctx = MessageContext(record, settings, now)
    if simple:
        rows, duplicates = _simple_rows(pack, ctx)
    else:
        rows, duplicates = senml_rows(pack, ctx, _header_device_type(record))
    return StoreTelemetry(tuple(rows), duplicates)


def _header_device_type(record: RawRecord) -> str:
    raw = record.header("device_type")
    if not raw:
        return SENML_DEVICE_TYPE
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("invalid_value", "header device_type is not UTF-8") from None
    if "\x00" in value:
        raise ValidationError("nul_in_text", "NUL character in header device_type")
    if len(value) > MAX_DEVICE_TYPE:
        raise ValidationError(
            "value_out_of_range", f"header device_type longer than {MAX_DEVICE_TYPE} chars"
        )
    return value


def _simple_rows(pack: list[dict[str, Any]], ctx: MessageContext) -> tuple[list[TelemetryRow], int]:
    rows: list[TelemetryRow] = []
    seen: set[tuple[int, str, datetime]] = set()
    times: dict[Any, datetime] = {}
    duplicates = 0
    for i, obj in enumerate(pack):
        row = _simple_row(obj, ctx, times, i if len(pack) > 1 else None)
        key = (row.device_id.int, row.metric_name, row.time)  # int: UUID hashes in Python
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append(row)
    return rows, duplicates


def _simple_row(
    obj: dict[str, Any], ctx: MessageContext, times: dict[Any, datetime], index: int | None
) -> TelemetryRow:
    """One measurement of the simple format (docs/formats.md 5.2)."""
    what = "message" if index is None else f"record {index}"
    # a text field that is a non-empty string within its limit (the usual case)
    # is taken as it is; required_text explains what is wrong with any other
    ref = obj.get("device_id")
    if type(ref) is not str or not ref or len(ref) > MAX_DEVICE_ID:
        ref = required_text(obj, "device_id", MAX_DEVICE_ID, what)
    device_type = obj.get("device_type")
    if type(device_type) is not str or not device_type or len(device_type) > MAX_DEVICE_TYPE:
        device_type = required_text(obj, "device_type", MAX_DEVICE_TYPE, what)
    raw_time = obj.get("time")
    if raw_time is None or raw_time == "":
        raise ValidationError("missing_field", f"{what}.time is required")
    # Records of one message usually share their time text; parse it once.
    at = times.get(raw_time) if type(raw_time) is not list and type(raw_time) is not dict else None
    if at is None:
        at = ctx.check_window(parse_timestamp(raw_time, f"{what}.time"), what)
        if type(raw_time) is str:
            times[raw_time] = at
    metric = obj.get("metric")
    if type(metric) is not str or not metric or len(metric) > MAX_METRIC_NAME:
        metric = required_text(obj, "metric", MAX_METRIC_NAME, what)
    if not valid_name(metric):
        raise ValidationError(
            "invalid_value", f"{what}.metric: {metric[:60]!r} is not a valid name"
        )

    raw_value = obj.get("value")
    raw_text = obj.get("text")
    if raw_value is not None and raw_text is not None:
        raise ValidationError("invalid_value", f"{what}: both value and text given")
    metric_value: float | None = None
    metric_text: str | None = None
    kind: str | None = None
    if type(raw_value) is bool:
        metric_value = 1.0 if raw_value else 0.0
        kind = "bool"
    elif type(raw_value) is float and isfinite(raw_value):
        metric_value = raw_value
    elif raw_value is not None:
        metric_value = number(raw_value, what, ".value")
    elif raw_text is not None:
        metric_text = text(raw_text, MAX_METRIC_TEXT, what, ".text")
        kind = "string"
    else:
        raise ValidationError("missing_field", f"{what}: one of value or text is required")

    unit = obj.get("unit")
    if unit is not None:
        unit = text(unit, MAX_UNIT, what, ".unit")
    loc = obj.get("location")
    point = None if loc is None else location(loc, f"{what}.location")
    extra = obj.get("metadata")
    if extra is not None and type(extra) is not dict:
        raise ValidationError("invalid_value", f"{what}.metadata: expected an object")

    uid, device_ref = device(ref, "device_id")
    meta: dict[str, Any] = {}
    if extra:
        meta.update((k, v) for k, v in extra.items() if k not in PIPELINE_METADATA_KEYS)
    if unit is not None:
        meta["unit"] = unit
    if kind is not None:
        meta["kind"] = kind
    if device_ref is not None:
        meta["device_ref"] = device_ref
    meta["received_at"] = ctx.received_at
    return _row(
        TelemetryRow, (at, uid, device_type, metric, metric_value, metric_text, point, meta)
    )
