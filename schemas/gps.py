"""Inbound formats of ``gps.raw`` (docs/formats.md 6): JSON AVL and NMEA 0183.

The limits of the plausibility table (6.3) that do not depend on settings,
and the parsed forms of the two NMEA sentences the pipeline reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Final, TypedDict

#: A UUID in its canonical 8-4-4-4-12 form, any case.
CANONICAL_UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
MAX_IDENTIFIER: Final = 100
MAX_SOURCE: Final = 50  # location_history.source VARCHAR(50)
DEFAULT_SOURCE: Final = "gps"

MAX_SPEED_MPS: Final = 150.0
MAX_HEADING_DEG: Final = 360.0
#: below this in both coordinates the fix is "null island", a receiver default
NULL_ISLAND_DEG: Final = 1e-4
KNOTS_TO_MPS: Final = 1852 / 3600
EARTH_RADIUS_M: Final = 6_371_008.8

#: GGA fix quality 0 (invalid) and 8 (simulation) are no position at all.
GGA_VOID_QUALITY: Final = frozenset({0, 8})
#: GGA 6 (dead reckoning) and 7 (manual) are estimates, still stored and used.
GGA_ESTIMATED_QUALITY: Final = frozenset({6, 7})
RMC_VOID_MODES: Final = frozenset({"N"})
RMC_ESTIMATED_MODES: Final = frozenset({"E", "M"})


class AvlFix(TypedDict, total=False):
    """One position of the JSON AVL format (docs/formats.md 6.1)."""

    resource_id: str
    identifier: str
    lat: float
    lon: float
    time: str | float
    speed: float
    heading: float
    accuracy: float
    altitude: float
    source: str


@dataclass(frozen=True, slots=True)
class Rmc:
    """An RMC sentence (recommended minimum): time of day, position, motion, date.

    ``valid`` is false for status ``V`` or mode ``N``; such a sentence keeps
    only its time of day and mode.
    """

    time_of_day_us: int | None
    valid: bool
    lat: float | None
    lon: float | None
    speed_knots: float | None
    course: float | None
    day: date | None
    mode: str | None


@dataclass(frozen=True, slots=True)
class Gga:
    """A GGA sentence (fix data): time of day, position, quality, satellites, HDOP, altitude.

    With quality 0 or 8 (no fix) only the time of day and quality are kept.
    """

    time_of_day_us: int | None
    lat: float | None
    lon: float | None
    quality: int | None
    satellites: int | None
    hdop: float | None
    altitude_m: float | None
