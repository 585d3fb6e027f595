"""``gps.raw``: positions as location fixes (docs/formats.md 6.1, 6.2, stateless part of 6.3).

A message is JSON AVL (first byte ``{`` or ``[``) or NMEA 0183 text (``$``).
The decoder checks everything one fix can tell on its own: coordinates, null
island, void fixes, the time window, and the speed/heading/accuracy fields,
which become NULL with a ``bad_<field>`` flag rather than rejecting the fix.
Resource resolution and the checks against earlier fixes are in
:mod:`pipeline.stages.plausibility`.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipeline.decoders import json_fast
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    check_no_nul,
    envelope,
    iso_utc,
    parse_timestamp,
    received_at_iso,
    to_text,
    window,
)
from pipeline.decoders.gps.nmea import parse_nmea
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import GpsSettings
from schemas.canonical import LocationFix
from schemas.gps import (
    CANONICAL_UUID_RE,
    DEFAULT_SOURCE,
    GGA_ESTIMATED_QUALITY,
    GGA_VOID_QUALITY,
    KNOTS_TO_MPS,
    MAX_HEADING_DEG,
    MAX_IDENTIFIER,
    MAX_SOURCE,
    MAX_SPEED_MPS,
    NULL_ISLAND_DEG,
    RMC_ESTIMATED_MODES,
    Gga,
    Rmc,
)
from schemas.intents import Discard
from schemas.records import RawRecord

_DAY_US = 86_400_000_000


class _Context:
    """What every fix of one message shares."""

    __slots__ = ("hi", "lo", "received_at", "record", "settings")

    def __init__(self, record: RawRecord, settings: GpsSettings, now: datetime) -> None:
        self.settings = settings
        self.lo, self.hi, _, _ = window(now, settings.max_age_s, settings.max_future_s)
        self.record = record
        self.received_at = received_at_iso(record.timestamp_ms)

    @property
    def kafka_time(self) -> datetime:
        return self.record.kafka_time

    def in_window(self, when: datetime, what: str) -> datetime:
        if self.lo <= when <= self.hi:
            return when
        raise ValidationError(
            "timestamp_out_of_window",
            f"{what}: time {iso_utc(when)} outside {iso_utc(self.lo)} .. {iso_utc(self.hi)}",
        )

    def key_ref(self, what: str) -> str:
        key = self.record.key_text
        if not key:
            raise ValidationError(
                "missing_field", f"{what}: no resource_id or identifier and no UTF-8 Kafka key"
            )
        return key


def decode_gps(
    record: RawRecord,
    settings: GpsSettings,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[LocationFix] | Discard:
    """Decode one ``gps.raw`` record into fixes in message order, or raise an input error.

    A message whose fixes are all void is discarded as ``void_fix``; void
    fixes next to usable ones are dropped. ``resource_ref`` is the payload's
    ``resource_id`` (lower-cased) or ``identifier``, else the Kafka key.
    """
    value = envelope(record, max_bytes)
    if isinstance(value, Discard):
        return value
    text = to_text(value)
    head = text.lstrip()[:1]
    ctx = _Context(record, settings, now)
    if head in ("{", "["):
        return _avl(text, ctx)
    if head == "$":
        return _nmea(text, ctx)
    raise DecodeError("unknown_format", "neither JSON AVL nor NMEA 0183")


# --- JSON AVL -----------------------------------------------------------------


def _avl(text: str, ctx: _Context) -> list[LocationFix]:
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


def _avl_ref(obj: dict[str, Any], ctx: _Context, what: str) -> str:
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


def _avl_fix(obj: dict[str, Any], ctx: _Context, what: str) -> LocationFix:
    ref = _avl_ref(obj, ctx, what)
    lat = _json_number(obj, "lat", what)
    lon = _json_number(obj, "lon", what)
    if lat is None or lon is None:
        raise ValidationError("missing_field", f"{what}: lat and lon are required")
    _check_position(lat, lon, what)
    if obj.get("time") is None or obj["time"] == "":
        raise ValidationError("missing_field", f"{what}.time is required")
    when = ctx.in_window(parse_timestamp(obj["time"], f"{what}.time"), what)

    flags: list[str] = []
    speed = _speed(_json_number(obj, "speed", what), flags)
    heading = _heading(_json_number(obj, "heading", what), flags)
    accuracy = _accuracy(_json_number(obj, "accuracy", what), flags)
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


def _nmea(text: str, ctx: _Context) -> list[LocationFix] | Discard:
    fixes: list[LocationFix] = []
    void = 0
    for rmc, gga in parse_nmea(text):
        fix = _nmea_fix(rmc, gga, ctx)
        if fix is None:
            void += 1
        else:
            fixes.append(fix)
    if not fixes:
        return Discard("void_fix", {"fixes": void})
    return fixes


def _nmea_fix(rmc: Rmc | None, gga: Gga | None, ctx: _Context) -> LocationFix | None:
    """One fix from an RMC and/or GGA of the same time of day; None when void."""
    if rmc is not None and not rmc.valid:
        return None  # RMC status V or mode N
    if gga is not None and gga.quality in GGA_VOID_QUALITY:
        return None
    lat, lon = (rmc.lat, rmc.lon) if rmc is not None else (None, None)
    if (lat is None or lon is None) and gga is not None:
        lat, lon = gga.lat, gga.lon
    if lat is None or lon is None:
        return None  # empty coordinates
    kind = "RMC" if rmc is not None else "GGA"
    _check_position(lat, lon, f"NMEA {kind}")

    time_of_day = rmc.time_of_day_us if rmc is not None else None
    if time_of_day is None and gga is not None:
        time_of_day = gga.time_of_day_us
    if time_of_day is None:
        raise ValidationError("missing_field", f"NMEA {kind}: no time of day")
    day = rmc.day if rmc is not None else None
    when = _nmea_time(time_of_day, day, ctx.kafka_time)
    ctx.in_window(when, f"NMEA {kind}")

    flags: list[str] = []
    speed = course = None
    if rmc is not None:
        knots = rmc.speed_knots
        # Knots carry 0.1 kn (5 cm/s) at best, so mm/s keeps every real digit.
        speed = _speed(None if knots is None else round(knots * KNOTS_TO_MPS, 3), flags)
        course = _heading(rmc.course, flags)
    estimated = (rmc is not None and rmc.mode in RMC_ESTIMATED_MODES) or (
        gga is not None and gga.quality in GGA_ESTIMATED_QUALITY
    )
    if estimated:
        flags.append("estimated")

    metadata: dict[str, Any] = {"format": "nmea"}
    if gga is not None:
        for name, value in (
            ("fix_quality", gga.quality),
            ("satellites", gga.satellites),
            ("hdop", gga.hdop),
            ("altitude_m", gga.altitude_m),
        ):
            if value is not None:
                metadata[name] = value
        s = ctx.settings
        if (gga.hdop is not None and gga.hdop > s.max_hdop) or (
            gga.satellites is not None and gga.satellites < s.min_satellites
        ):
            flags.append("low_accuracy")
    metadata["received_at"] = ctx.received_at
    ref = ctx.key_ref(f"NMEA {kind}")
    return LocationFix(when, ref, lat, lon, speed, course, None, DEFAULT_SOURCE, metadata, flags)


def _nmea_time(time_of_day_us: int, day: date | None, kafka_time: datetime) -> datetime:
    """UTC instant of an NMEA time; without a date, the day that puts it nearest the Kafka time."""
    offset = timedelta(microseconds=time_of_day_us)
    if day is not None:
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + offset
    midnight = kafka_time.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = (midnight + timedelta(days=d) + offset for d in (-1, 0, 1))
    return min(candidates, key=lambda c: abs(c - kafka_time))


# --- shared field rules (docs/formats.md 6.3) ---------------------------------


def _check_position(lat: float, lon: float, what: str) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationError("value_out_of_range", f"{what}: coordinates out of range")
    if abs(lat) < NULL_ISLAND_DEG and abs(lon) < NULL_ISLAND_DEG:
        raise ValidationError("value_out_of_range", f"{what}: null island (0, 0) position")


def _speed(value: float | None, flags: list[str]) -> float | None:
    if value is None or 0.0 <= value <= MAX_SPEED_MPS:
        return value
    flags.append("bad_speed")
    return None


def _heading(value: float | None, flags: list[str]) -> float | None:
    if value is None:
        return None
    if 0.0 <= value < MAX_HEADING_DEG:
        return value
    if value == MAX_HEADING_DEG:
        return 0.0  # 360 is north, stored as 0
    flags.append("bad_heading")
    return None


def _accuracy(value: float | None, flags: list[str]) -> float | None:
    if value is None or 0.0 <= value < math.inf:
        return value
    flags.append("bad_accuracy")
    return None
