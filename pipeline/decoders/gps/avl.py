"""JSON AVL fixes on ``gps.raw`` (docs/formats.md 6.1): an object or an array of objects."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from pipeline.decoders import json_fast
from pipeline.decoders.envelope import (
    check_no_nul,
    parse_timestamp,
)
from pipeline.decoders.gps.fields import (
    Context,
    check_position,
    checked_accuracy,
    checked_heading,
    checked_speed,
)
from pipeline.errors import DecodeError, ValidationError
from schemas.canonical import LocationFix
from schemas.gps import (
    CANONICAL_UUID_RE,
    DEFAULT_SOURCE,
    MAX_HEADING_DEG,
    MAX_IDENTIFIER,
    MAX_SOURCE,
    MAX_SPEED_MPS,
    NULL_ISLAND_DEG,
)


def avl_fixes(text: str, ctx: Context, data: bytes | None = None) -> list[LocationFix]:
    """The fixes of one message; ``data`` is ``text`` as received, when at hand."""
    obj = json_fast.loads(text, data)
    items: list[Any]
    if type(obj) is dict:
        items = [obj]
    elif type(obj) is list and obj and all(type(x) is dict for x in obj):
        items = obj
    else:
        raise DecodeError("unknown_format", "expected an AVL object or an array of objects")
    if "\\u0000" in text:
        check_no_nul(obj)
    single = len(items) == 1
    return [avl_fix(item, ctx, "fix" if single else f"fix {i}") for i, item in enumerate(items)]


#: a NamedTuple built as a plain tuple, without its Python-level constructor
_tuple: Final = tuple.__new__
#: below this, an int converts to a float without overflow
_EXACT_INT: Final = 2**53

# A fleet's resource ids repeat from fix to fix: the verdict of the UUID
# pattern is remembered, bounded like the telemetry device cache.
_CACHE_LIMIT: Final = 100_000
_resource_ids: dict[str, str] = {}


def _avl_ref(obj: dict[str, Any], ctx: Context, what: str) -> str:
    rid = obj.get("resource_id")
    if rid is not None and rid != "":
        if type(rid) is str:
            known = _resource_ids.get(rid)
            if known is not None:
                return known
        if type(rid) is not str or CANONICAL_UUID_RE.fullmatch(rid) is None:
            raise ValidationError("invalid_value", f"{what}.resource_id: not a UUID")
        if len(_resource_ids) >= _CACHE_LIMIT:
            _resource_ids.clear()
        known = _resource_ids[rid] = rid.lower()
        return known
    ident = obj.get("identifier")
    if ident is not None and ident != "":
        if type(ident) is not str:
            raise ValidationError("invalid_value", f"{what}.identifier: expected a string")
        if len(ident) > MAX_IDENTIFIER:
            raise ValidationError(
                "value_out_of_range", f"{what}.identifier: longer than {MAX_IDENTIFIER} chars"
            )
        return ident
    return ctx.key_ref(what)


def _json_number(obj: dict[str, Any], field: str, what: str) -> float | None:
    """An optional JSON number; a wrong type is refused, a huge one is left to the range checks."""
    value = obj.get(field)
    if value is None:
        return None
    if type(value) is float:
        return float(value)
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf
    raise ValidationError("invalid_value", f"{what}.{field}: expected a number")


def avl_fix(obj: dict[str, Any], ctx: Context, what: str) -> LocationFix:
    """One fix of a parsed AVL message; ``what`` names it in errors."""
    # The per-fix path of the busiest GPS format: a field that is a float in
    # range (the usual case) is taken as it is; anything else goes through the
    # field rules in pipeline.decoders.gps.fields, which decide and explain.
    get = obj.get
    ref = _avl_ref(obj, ctx, what)
    lat = get("lat")
    lon = get("lon")
    if type(lat) is not float or type(lon) is not float:
        lat = _json_number(obj, "lat", what)
        lon = _json_number(obj, "lon", what)
        if lat is None or lon is None:
            raise ValidationError("missing_field", f"{what}: lat and lon are required")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (
        abs(lat) < NULL_ISLAND_DEG and abs(lon) < NULL_ISLAND_DEG
    ):
        check_position(lat, lon, what)  # raises, saying which rule

    raw_time = get("time")
    when: datetime | None = None
    if type(raw_time) is str:
        try:
            when = datetime.fromisoformat(raw_time)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not UTC:
            when = None  # no offset, or another one: parse_timestamp decides
    if when is None:
        if raw_time is None or raw_time == "":
            raise ValidationError("missing_field", f"{what}.time is required")
        when = parse_timestamp(raw_time, f"{what}.time")
    if not (ctx.lo <= when <= ctx.hi):
        ctx.in_window(when, what)  # raises

    flags: list[str] = []
    # many devices send whole numbers: a small int in range is taken as a float
    speed = get("speed")
    if speed is not None and not (type(speed) is float and 0.0 <= speed <= MAX_SPEED_MPS):
        if type(speed) is int and 0 <= speed <= MAX_SPEED_MPS:
            speed = float(speed)
        else:
            speed = checked_speed(_json_number(obj, "speed", what), flags)
    heading = get("heading")
    if heading is not None and not (type(heading) is float and 0.0 <= heading < MAX_HEADING_DEG):
        if type(heading) is int and 0 <= heading < MAX_HEADING_DEG:
            heading = float(heading)
        else:
            heading = checked_heading(_json_number(obj, "heading", what), flags)
    accuracy = get("accuracy")
    if accuracy is not None and not (type(accuracy) is float and 0.0 <= accuracy < math.inf):
        if type(accuracy) is int and 0 <= accuracy < _EXACT_INT:
            accuracy = float(accuracy)
        else:
            accuracy = checked_accuracy(_json_number(obj, "accuracy", what), flags)
    altitude = get("altitude")
    if altitude is not None and type(altitude) is not float:
        altitude = _json_number(obj, "altitude", what)
    if altitude is not None and not math.isfinite(altitude):
        altitude = None
        flags.append("bad_altitude")
    source = get("source")
    if source is None or source == "":
        source = DEFAULT_SOURCE
    elif type(source) is not str:
        raise ValidationError("invalid_value", f"{what}.source: expected a string")
    elif len(source) > MAX_SOURCE:
        raise ValidationError(
            "value_out_of_range", f"{what}.source: longer than {MAX_SOURCE} chars"
        )

    if accuracy is not None and accuracy > ctx.settings.max_accuracy_m:
        flags.append("low_accuracy")
    metadata: dict[str, Any] = {"format": "avl"}
    if altitude is not None:
        metadata["altitude_m"] = altitude
    metadata["received_at"] = ctx.received_at
    return _tuple(
        LocationFix, (when, ref, lat, lon, speed, heading, accuracy, source, metadata, flags)
    )


# --- NMEA 0183 ----------------------------------------------------------------
