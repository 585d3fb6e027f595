"""Distances and speeds between positions on the mean Earth sphere: what the
plausibility checks measure (docs/formats.md 6.4).

:func:`implied_speed` is :func:`implied_speed_python` in C
(``pipeline/stages/_geodesy.pyx``) wherever that extension is loaded; the two
give the same number to the bit (tests/unit/test_geodesy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from math import asin, cos, floor, radians, sin, sqrt
from typing import Final, NamedTuple

from pipeline.compiled import pure_python
from schemas.gps import EARTH_RADIUS_M


class AcceptedFix(NamedTuple):
    """A resource's reference position: its last accepted fix.

    A tuple, so that the tracker builds one per fix as a plain tuple (a
    dataclass's constructor is Python code, several times the cost).
    """

    time: datetime
    lat: float
    lon: float
    accuracy: float | None


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the mean Earth sphere (R = 6 371 008.8 m)."""
    p1, p2 = radians(lat1), radians(lat2)
    a = sin((p2 - p1) / 2) ** 2 + cos(p1) * cos(p2) * sin(radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * asin(min(1.0, sqrt(a)))


def round_mm(x: float) -> float:
    """``round(x, 3)``, without its decimal conversion in the usual case.

    ``round`` formats the exact binary value in decimal, which costs as much as
    the rest of a fix's plausibility check. Away from a tie (the thousandths
    fraction not within 1e-6 of one half) the nearest integer to ``x * 1000``
    is the same whether the product is exact or rounded (its error is below
    1e-6 while ``|x * 1000| < 2**32``), and ``n / 1000``, one correctly
    rounded division, is the double nearest to the decimal ``n / 1000``: what
    ``round`` returns. Ties, negative, large and non-finite values go to ``round``.
    """
    y = x * 1000.0
    if 0.0 < y < 4e9:
        n = floor(y)
        frac = y - n
        if not 0.499999 < frac < 0.500001:
            return (n + 1 if frac > 0.5 else n) / 1000.0
    elif y == 0.0:
        return x  # either zero, sign kept, as round keeps it
    return round(x, 3)


def implied_speed_python(a: AcceptedFix, b: AcceptedFix) -> float | None:
    """Speed needed to get from ``a`` to ``b``; None when ``b`` is not later.

    The accuracy radii are subtracted from the distance first (unknown = 0), so
    two fixes whose error circles overlap imply no movement at all.
    """
    seconds = (b.time - a.time).total_seconds()
    if seconds <= 0:
        return None
    d = haversine_m(a.lat, a.lon, b.lat, b.lon)
    d_eff = max(0.0, d - (a.accuracy or 0.0) - (b.accuracy or 0.0))
    return d_eff / seconds


def _implied_speed() -> Callable[[AcceptedFix, AcceptedFix], float | None]:
    """implied_speed_python in C where the extension is loaded: C doubles and
    the two times' microseconds, where Python makes an object of every step."""
    if pure_python():
        return implied_speed_python
    try:
        from pipeline.stages._geodesy import implied_speed as in_c
    except ImportError:
        return implied_speed_python
    return in_c


implied_speed: Final = _implied_speed()
