"""Field rules both telemetry formats share: the time window, device UUIDs,
names, numbers and points (docs/formats.md 5.3, 5.4)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from pipeline.decoders.envelope import device_uuid, iso_utc, received_at_iso, window
from pipeline.errors import ValidationError
from pipeline.settings import TelemetrySettings
from schemas.canonical import GeoPoint
from schemas.records import RawRecord
from schemas.telemetry import MAX_DEVICE_ID, NAME_RE

# Device ids and metric names repeat from message to message; remembering the
# verdicts keeps uuid5 (SHA-1) and the regex off the per-point path.
_CACHE_LIMIT: Final = 100_000
_devices: dict[str, tuple[UUID, str | None]] = {}
_good_names: set[str] = set()


def _same(uid: UUID) -> UUID:
    return uid


#: the form device ids are kept in (a UUID of the database driver's, set by the
#: composition root, is hashed, printed and COPY-encoded in C)
_uuid_form: Callable[[UUID], UUID] = _same


def use_uuid_form(form: Callable[[UUID], UUID]) -> None:
    """Keep device ids as ``form(uuid)`` from now on; it must be equal to its input."""
    global _uuid_form
    _uuid_form = form
    _devices.clear()


class MessageContext:
    """What every row of one message shares: the window, the Kafka time, the key."""

    __slots__ = ("hi", "hi_s", "key", "lo", "lo_s", "received_at", "timestamp_ms")

    def __init__(self, record: RawRecord, settings: TelemetrySettings, now: datetime) -> None:
        self.lo, self.hi, self.lo_s, self.hi_s = window(
            now, settings.max_age_s, settings.max_future_s
        )
        self.timestamp_ms = record.timestamp_ms
        self.received_at = received_at_iso(record.timestamp_ms)
        self.key = record.key_text

    def check_window(self, when: datetime, what: str) -> datetime:
        if self.lo <= when <= self.hi:
            return when
        raise ValidationError(
            "timestamp_out_of_window",
            f"{what}: time {iso_utc(when)} outside {iso_utc(self.lo)} .. {iso_utc(self.hi)}",
        )

    def epoch_time(self, seconds: float, what: str) -> datetime:
        """Window-checked instant of an epoch-seconds value."""
        # The float pre-check keeps absurd values away from datetime (overflow);
        # the datetime comparison then decides the edges exactly.
        if not (self.lo_s - 1.0 <= seconds <= self.hi_s + 1.0):
            raise ValidationError(
                "timestamp_out_of_window", f"{what}: time {seconds} s outside window"
            )
        return self.check_window(datetime.fromtimestamp(seconds, tz=UTC), what)

    def relative_time(self, seconds: float, what: str) -> datetime:
        """Window-checked instant ``seconds`` after the Kafka record time."""
        if not (self.lo_s - 1.0 <= self.timestamp_ms / 1000 + seconds <= self.hi_s + 1.0):
            raise ValidationError(
                "timestamp_out_of_window", f"{what}: relative time {seconds} s outside window"
            )
        kafka_time = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        return self.check_window(kafka_time + timedelta(seconds=seconds), what)


def device(ref: str, what: str) -> tuple[UUID, str | None]:
    """Device UUID (docs/formats.md 5.4) and the reference kept in ``device_ref``."""
    hit = _devices.get(ref)
    if hit is not None:
        return hit
    if len(ref) > MAX_DEVICE_ID:
        raise ValidationError("value_out_of_range", f"{what}: longer than {MAX_DEVICE_ID} chars")
    uid, norm = device_uuid(ref)
    if norm == "":
        raise ValidationError("missing_field", f"{what}: empty device id")
    if len(_devices) >= _CACHE_LIMIT:
        _devices.clear()
    uid = _uuid_form(uid)
    _devices[ref] = (uid, norm)
    return uid, norm


def valid_name(name: str) -> bool:
    """Names follow ``^[A-Za-z0-9][-:./_A-Za-z0-9]*$``."""
    if name in _good_names:
        return True
    if NAME_RE.fullmatch(name) is None:
        return False
    if len(_good_names) >= _CACHE_LIMIT:
        _good_names.clear()
    _good_names.add(name)
    return True


def number(value: Any, what: str, field: str = "") -> float:
    """A finite JSON number (never a boolean) as a float."""
    t = type(value)
    if t is float:
        if math.isfinite(value):
            return float(value)
        raise ValidationError("invalid_value", f"{what}{field}: not a finite number")
    if t is int:
        try:
            return float(value)
        except OverflowError:
            raise ValidationError(
                "value_out_of_range", f"{what}{field}: number too large"
            ) from None
    raise ValidationError("invalid_value", f"{what}{field}: expected a number")


def text(value: Any, limit: int, what: str, field: str = "") -> str:
    if type(value) is not str:
        raise ValidationError("invalid_value", f"{what}{field}: expected a string")
    if len(value) > limit:
        raise ValidationError("value_out_of_range", f"{what}{field}: longer than {limit} chars")
    return value


def required_text(obj: dict[str, Any], field: str, limit: int, what: str) -> str:
    value = obj.get(field)
    if value is None or value == "":
        raise ValidationError("missing_field", f"{what}.{field} is required")
    if type(value) is str and len(value) <= limit:
        return value
    return text(value, limit, what, "." + field)


def point(lon: float, lat: float, what: str) -> GeoPoint:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValidationError("value_out_of_range", f"{what}: coordinates out of range")
    return GeoPoint(lon, lat)


def location(value: Any, what: str) -> GeoPoint:
    """A GeoJSON Point or ``{"lon": .., "lat": ..}``."""
    if type(value) is not dict:
        raise ValidationError("invalid_value", f"{what}: expected an object")
    if "type" in value or "coordinates" in value:
        coords = value.get("coordinates")
        if value.get("type") != "Point" or type(coords) is not list or not 2 <= len(coords) <= 3:
            raise ValidationError("invalid_value", f"{what}: only a GeoJSON Point is accepted")
        lon, lat = coords[0], coords[1]
        if len(coords) == 3:
            number(coords[2], what, ".altitude")
    else:
        if value.get("lon") is None or value.get("lat") is None:
            raise ValidationError("missing_field", f"{what}: lon and lat are required")
        lon, lat = value["lon"], value["lat"]
    return point(number(lon, what, ".lon"), number(lat, what, ".lat"), what)
