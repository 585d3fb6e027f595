"""JSON AVL fixes on ``gps.raw`` (docs/formats.md 6.1): an object or an array of objects."""

from __future__ import annotations

import math
from typing import Any

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
    MAX_IDENTIFIER,
    MAX_SOURCE,
)


def avl_fixes(text: str, ctx: Context) -> list[LocationFix]:
    obj = json_fast.loads(text)
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
    return [_avl_fix(item, ctx, "fix" if single else f"fix {i}") for i, item in enumerate(items)]


def _avl_ref(obj: dict[str, Any], ctx: Context, what: str) -> str:
    rid = obj.get("resource_id")
    if rid is not None and rid != "":
        if type(rid) is not str or CANONICAL_UUID_RE.fullmatch(rid) is None:
            raise ValidationError("invalid_value", f"{what}.resource_id: not a UUID")
        return rid.lower()
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


def _avl_fix(obj: dict[str, Any], ctx: Context, what: str) -> LocationFix:
    ref = _avl_ref(obj, ctx, what)
    lat = _json_number(obj, "lat", what)
    lon = _json_number(obj, "lon", what)
    if lat is None or lon is None:
        raise ValidationError("missing_field", f"{what}: lat and lon are required")
    check_position(lat, lon, what)
    if obj.get("time") is None or obj["time"] == "":
        raise ValidationError("missing_field", f"{what}.time is required")
    when = ctx.in_window(parse_timestamp(obj["time"], f"{what}.time"), what)

    flags: list[str] = []
    speed = checked_speed(_json_number(obj, "speed", what), flags)
    heading = checked_heading(_json_number(obj, "heading", what), flags)
    accuracy = checked_accuracy(_json_number(obj, "accuracy", what), flags)
    altitude = _json_number(obj, "altitude", what)
    if altitude is not None and not math.isfinite(altitude):
        altitude = None
        flags.append("bad_altitude")
    source = obj.get("source")
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
    return LocationFix(when, ref, lat, lon, speed, heading, accuracy, source, metadata, flags)


# --- NMEA 0183 ----------------------------------------------------------------
