"""Geofence enter/leave detection over a batch of moves (pure logic, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from shapely.geometry import box

from pipeline.sinks.redis.live import RedisLive
from pipeline.stages.geo_index import Fence, GeoIndex
from pipeline.stages.geofence import GeofenceTracker, Move

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
A = Fence("a", "Depot", "depot", None, None)
B = Fence("b", "Yard", "depot", None, None)
# A spans x 0..2, B spans x 1..3: x = 0.5 is in A, 1.5 in both, 2.5 in B, 5 in none
INDEX = GeoIndex()
INDEX.load([(A, box(0, 0, 2, 1)), (B, box(1, 0, 3, 1))])


def tracker() -> GeofenceTracker:
    return GeofenceTracker(INDEX, cast(RedisLive, None))  # prime() is not used here


def moves(rid: str, xs: list[float]) -> list[Move]:
    return [Move(rid, x, 0.5, T0 + timedelta(seconds=i)) for i, x in enumerate(xs)]


def transitions(out: list[tuple[list[dict[str, Any]], frozenset[str]]]) -> list[list[str]]:
    return [[f"{e['transition']} {e['geofence_id']}" for e in events] for events, _ in out]


def test_entering_staying_and_leaving_overlapping_fences() -> None:
    t = tracker()
    t.track(moves("r1", [5.0]))  # first seen outside: the reference
    out = t.track(moves("r1", [0.5, 0.6, 1.5, 1.6, 2.5, 5.0, 5.1]))
    assert transitions(out) == [
        ["enter a"], [], ["enter b"], [], ["leave a"], ["leave b"], [],
    ]  # fmt: skip
    assert [inside for _, inside in out] == [
        {"a"}, {"a"}, {"a", "b"}, {"a", "b"}, {"b"}, set(), set(),
    ]  # fmt: skip


def test_first_sight_announces_nothing_then_changes_do() -> None:
    t = tracker()
    out = t.track(moves("r1", [1.5, 1.5, 0.5]))
    assert transitions(out) == [[], [], ["leave b"]]
    assert out[0][1] == {"a", "b"}


def test_an_enter_event_names_the_fence_and_the_move() -> None:
    t = tracker()
    t.track(moves("r1", [5.0]))
    ((events, _),) = t.track([Move("r1", 0.5, 0.5, T0)])
    assert events == [
        {
            "event": "geofence.enter", "transition": "enter", "resource_id": "r1",
            "geofence_id": "a", "name": "Depot", "kind": "depot",
            "location": {"lon": 0.5, "lat": 0.5}, "time": "2025-03-14T10:00:00Z",
        }
    ]  # fmt: skip


def test_resources_are_tracked_apart_and_reset_forgets() -> None:
    t = tracker()
    t.track(moves("r1", [5.0]) + moves("r2", [0.5]))
    out = t.track([Move("r1", 0.5, 0.5, T0), Move("r2", 0.5, 0.5, T0)])
    assert transitions(out) == [["enter a"], []]
    t.reset()
    assert transitions(t.track([Move("r1", 5.0, 0.5, T0)])) == [[]]
