"""``gps.raw``: positions as location fixes (docs/formats.md 6.1, 6.2, stateless part of 6.3).

A message is JSON AVL (first byte ``{`` or ``[``) or NMEA 0183 text (``$``).
The decoder checks everything one fix can tell on its own: coordinates, null
island, void fixes, the time window, and the speed/heading/accuracy fields,
which become NULL with a ``bad_<field>`` flag rather than rejecting the fix.
Resource resolution and the checks against earlier fixes are in
:mod:`pipeline.stages.plausibility`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from pipeline.decoders import json_fast
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    envelope,
    to_text,
)
from pipeline.decoders.gps.avl import avl_fix, avl_fixes
from pipeline.decoders.gps.fields import Context, check_position, checked_heading, checked_speed
from pipeline.decoders.gps.nmea import parse_nmea
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import GpsSettings
from schemas.canonical import LocationFix
from schemas.gps import (
    DEFAULT_SOURCE,
    GGA_ESTIMATED_QUALITY,
    GGA_VOID_QUALITY,
    KNOTS_TO_MPS,
    RMC_ESTIMATED_MODES,
    Gga,
    Rmc,
)
from schemas.intents import Discard
from schemas.records import RawRecord

_DAY_US = 86_400_000_000
#: a NamedTuple built as a plain tuple, without its Python-level constructor
_tuple: Final = tuple.__new__


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
    ctx = Context(record, settings, now)
    if head in ("{", "["):
        return avl_fixes(text, ctx, value)
    if head == "$":
        return _nmea(text, ctx)
    raise DecodeError("unknown_format", "neither JSON AVL nor NMEA 0183")


def decode_gps_batch(
    records: Sequence[RawRecord],
    settings: GpsSettings,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[list[LocationFix] | Discard | Exception]:
    """:func:`decode_gps` of each record, as a value: its fixes, a discard, or
    the error it raised.

    The usual message, one JSON AVL object, is decoded here without the layers
    of the general path; every other message goes through :func:`decode_gps`.
    Both give the same fixes and the same errors.
    """
    out: list[list[LocationFix] | Discard | Exception] = []
    append = out.append
    # one context for the batch's usual messages, moved on from record to record
    shared: Context | None = None
    for record in records:
        value = record.value
        try:
            # a leading "{" rules out a BOM, whitespace, NMEA and an empty value
            if value is None or len(value) > max_bytes or value[:1] != b"{":
                append(decode_gps(record, settings, now, max_bytes))
                continue
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                append(decode_gps(record, settings, now, max_bytes))  # raises not_utf8
                continue
            obj = json_fast.loads(text, value)
            # an escape may hide a NUL: the general path checks for one
            if type(obj) is not dict or "\\" in text:
                append(avl_fixes(text, Context(record, settings, now), value))
                continue
            if shared is None:
                shared = Context(record, settings, now)
            append([avl_fix(obj, shared.at(record), "fix")])
        except Exception as exc:
            append(exc)
    return out


def _nmea(text: str, ctx: Context) -> list[LocationFix] | Discard:
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


def _nmea_fix(rmc: Rmc | None, gga: Gga | None, ctx: Context) -> LocationFix | None:
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
    check_position(lat, lon, f"NMEA {kind}")

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
        speed = checked_speed(None if knots is None else round(knots * KNOTS_TO_MPS, 3), flags)
        course = checked_heading(rmc.course, flags)
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
    return _tuple(
        LocationFix, (when, ref, lat, lon, speed, course, None, DEFAULT_SOURCE, metadata, flags)
    )


def _nmea_time(time_of_day_us: int, day: date | None, kafka_time: datetime) -> datetime:
    """UTC instant of an NMEA time; without a date, the day that puts it nearest the Kafka time."""
    offset = timedelta(microseconds=time_of_day_us)
    if day is not None:
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + offset
    midnight = kafka_time.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = (midnight + timedelta(days=d) + offset for d in (-1, 0, 1))
    return min(candidates, key=lambda c: abs(c - kafka_time))


# --- shared field rules (docs/formats.md 6.3) ---------------------------------
