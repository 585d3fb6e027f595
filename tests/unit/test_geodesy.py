"""The C twin of geodesy.implied_speed_python gives the Python function's answer,
to the bit, and the same error where that one raises."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages import _geodesy, geodesy, plausibility
from pipeline.stages.geodesy import AcceptedFix, implied_speed_python

T0 = datetime(2026, 12, 8, 4, 0, 0, 250_001, tzinfo=UTC)


def test_the_tracker_uses_the_compiled_twin() -> None:
    assert geodesy.implied_speed is _geodesy.implied_speed
    assert plausibility.implied_speed is _geodesy.implied_speed


def _outcome(f: Any, a: Any, b: Any) -> object:
    try:
        value = f(a, b)
    except Exception as exc:
        return type(exc)
    # bit for bit: 0.0 and -0.0 differ, and a NaN equals a NaN
    return value if value is None else struct.pack("<d", value)


def _same(a: Any, b: Any) -> None:
    assert _outcome(_geodesy.implied_speed, a, b) == _outcome(implied_speed_python, a, b)


_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
_LAT = st.floats(-90, 90)
_LON = st.floats(-180, 180)
_RADIUS = st.none() | st.floats(0, 1e4) | st.sampled_from([0.0, -0.0, math.inf, math.nan, 5.0])


@st.composite
def _pair(draw: st.DrawFn) -> tuple[AcceptedFix, AcceptedFix]:
    a = AcceptedFix(draw(_TIMES), draw(_LAT), draw(_LON), draw(_RADIUS))
    # mostly a plausible step on, sometimes anywhere at any time
    if draw(st.booleans()):
        step = timedelta(microseconds=draw(st.integers(-(10**7), 10**8)))
        t = a.time + step if datetime(1, 1, 2, tzinfo=UTC) < a.time + step else a.time
        b = AcceptedFix(
            t,
            max(-90.0, min(90.0, a.lat + draw(st.floats(-0.01, 0.01)))),
            max(-180.0, min(180.0, a.lon + draw(st.floats(-0.01, 0.01)))),
            draw(_RADIUS),
        )
    else:
        b = AcceptedFix(draw(_TIMES), draw(_LAT), draw(_LON), draw(_RADIUS))
    return a, b


@given(_pair())
def test_the_twin_answers_as_the_python_function(pair: tuple[AcceptedFix, AcceptedFix]) -> None:
    _same(*pair)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # the same instant, one microsecond on, and the antipode
        (AcceptedFix(T0, 60.0, 24.0, None), AcceptedFix(T0, 60.0, 24.0, None)),
        (
            AcceptedFix(T0, 60.0, 24.0, None),
            AcceptedFix(T0 + timedelta(microseconds=1), 60.0, 24.0001, None),
        ),
        (
            AcceptedFix(T0, 45.0, 0.0, None),
            AcceptedFix(T0 + timedelta(hours=1), -45.0, 180.0, None),
        ),
        # more than 2**53 microseconds apart
        (
            AcceptedFix(datetime(1700, 1, 1, tzinfo=UTC), 1.0, 1.0, None),
            AcceptedFix(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 2.0, 2.0, None),
        ),
        # what the twin hands to the Python function: other zones, ints, naive
        # times, non-finite coordinates, an int radius, a mixed pair that raises
        (
            AcceptedFix(T0.astimezone(timezone(timedelta(hours=2))), 60.0, 24.0, None),
            AcceptedFix(T0 + timedelta(seconds=10), 60.001, 24.0, None),
        ),
        (AcceptedFix(T0, 60, 24, 3), AcceptedFix(T0 + timedelta(seconds=10), 60.001, 24.0, 2.5)),
        (
            AcceptedFix(T0.replace(tzinfo=None), 60.0, 24.0, None),
            AcceptedFix(T0.replace(tzinfo=None) + timedelta(seconds=1), 60.0, 24.0, None),
        ),
        (
            AcceptedFix(T0, math.inf, 24.0, None),
            AcceptedFix(T0 + timedelta(seconds=1), 60.0, 24.0, None),
        ),
        (
            AcceptedFix(T0, math.nan, 24.0, None),
            AcceptedFix(T0 + timedelta(seconds=1), 60.0, 24.0, None),
        ),
        (AcceptedFix(T0.replace(tzinfo=None), 60.0, 24.0, None), AcceptedFix(T0, 60.0, 24.0, None)),
    ],
)
def test_edges_and_what_goes_to_the_python_function(a: AcceptedFix, b: AcceptedFix) -> None:
    _same(a, b)
    _same(b, a)


def test_a_known_distance_and_speed() -> None:
    # one degree of latitude on the mean sphere in 100 s, radii of 10 m and 5 m
    a = AcceptedFix(T0, 60.0, 24.0, 10.0)
    b = AcceptedFix(T0 + timedelta(seconds=100), 61.0, 24.0, 5.0)
    metres = 2 * math.pi * 6_371_008.8 / 360
    assert _geodesy.implied_speed(a, b) == pytest.approx((metres - 15.0) / 100, rel=1e-12)
