"""What every GPS fix is checked for on its own: position, null island, time
window, speed, heading and accuracy (docs/formats.md 6.3, the stateless part)."""

from __future__ import annotations

import math
from datetime import datetime

from pipeline.decoders.envelope import (
    iso_utc,
    received_at_iso,
    window,
)
from pipeline.errors import ValidationError
from pipeline.settings import GpsSettings
from schemas.gps import (
    MAX_HEADING_DEG,
    MAX_SPEED_MPS,
    NULL_ISLAND_DEG,
)
from schemas.records import RawRecord


class Context:
    """What every fix of one message shares."""

    __slots__ = ("hi", "lo", "received_at", "record", "settings")

    def __init__(self, record: RawRecord, settings: GpsSettings, now: datetime) -> None:
        self.settings = settings
        self.lo, self.hi, _, _ = window(now, settings.max_age_s, settings.max_future_s)
        self.record = record
        self.received_at = received_at_iso(record.timestamp_ms)

    def at(self, record: RawRecord) -> Context:
        """This context, moved on to another record of the same batch."""
        self.record = record
        self.received_at = received_at_iso(record.timestamp_ms)
        return self

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


def check_position(lat: float, lon: float, what: str) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationError("value_out_of_range", f"{what}: coordinates out of range")
    if abs(lat) < NULL_ISLAND_DEG and abs(lon) < NULL_ISLAND_DEG:
        raise ValidationError("value_out_of_range", f"{what}: null island (0, 0) position")


def checked_speed(value: float | None, flags: list[str]) -> float | None:
    if value is None or 0.0 <= value <= MAX_SPEED_MPS:
        return value
    flags.append("bad_speed")
    return None


def checked_heading(value: float | None, flags: list[str]) -> float | None:
    if value is None:
        return None
    if 0.0 <= value < MAX_HEADING_DEG:
        return value
    if value == MAX_HEADING_DEG:
        return 0.0  # 360 is north, stored as 0
    flags.append("bad_heading")
    return None


def checked_accuracy(value: float | None, flags: list[str]) -> float | None:
    if value is None or 0.0 <= value < math.inf:
        return value
    flags.append("bad_accuracy")
    return None
