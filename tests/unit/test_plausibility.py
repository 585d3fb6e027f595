"""GPS plausibility against earlier fixes (docs/formats.md 6.3, 6.4)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.settings import GpsSettings
from pipeline.stages.geodesy import haversine_m, implied_speed, round_mm
from pipeline.stages.plausibility import (
    AcceptedFix,
    PlausibilityTracker,
    ResourceInfo,
    resolve_ref,
)
from schemas.canonical import LocationFix
from schemas.intents import StoreLocations

T0 = datetime(2025, 3, 14, 10, 0, 0, tzinfo=UTC)
LAT, LON = 60.17, 24.94
R = 6_371_008.8
#: metres per degree of latitude on the sphere of the spec
M_PER_DEG = R * math.pi / 180
SETTINGS = GpsSettings()

VEHICLE = ResourceInfo(uuid4(), "vehicle", "ENG-7", None)
PERSON = ResourceInfo(uuid4(), "personnel", "FF-12", None)
DRONE = ResourceInfo(uuid4(), "equipment", "UAV-1", 25.0)


class FakeLoader:
    """In-memory last fixes; records every call."""

    def __init__(self, fixes: dict[UUID, AcceptedFix] | None = None) -> None:
        self.fixes = dict(fixes or {})
        self.calls: list[list[UUID]] = []

    async def load(self, resource_ids: Sequence[UUID]) -> dict[UUID, AcceptedFix]:
        self.calls.append(list(resource_ids))
        return {rid: self.fixes[rid] for rid in resource_ids if rid in self.fixes}


def north(metres: float) -> float:
    """Latitude ``metres`` north of LAT."""
    return LAT + metres / M_PER_DEG


def gps(
    seconds: float,
    lat: float = LAT,
    lon: float = LON,
    *,
    accuracy: float | None = None,
    flags: Sequence[str] = (),
    **metadata: Any,
) -> LocationFix:
    return LocationFix(
        time=T0 + timedelta(seconds=seconds),
        resource_ref="ref",
        lat=lat,
        lon=lon,
        speed=5.0,
        heading=90.0,
        accuracy=accuracy,
        source="gps",
        metadata={"format": "avl", **metadata},
        flags=list(flags),
    )


async def run(
    tracker: PlausibilityTracker, *fixes: LocationFix, info: ResourceInfo = VEHICLE
) -> StoreLocations:
    out = await tracker.assess([(f, info) for f in fixes])
    # every batch's count of flags is the count of its rows' flags
    assert out.flags == Counter(flag for row in out.rows for flag in row.metadata["flags"])
    return out


def flags_of(out: StoreLocations) -> list[list[str]]:
    return [row.metadata["flags"] for row in out.rows]


def tracker_with(
    last: AcceptedFix | None = None, info: ResourceInfo = VEHICLE
) -> PlausibilityTracker:
    fixes = {} if last is None else {info.id: last}
    return PlausibilityTracker(FakeLoader(fixes), SETTINGS)


# --- geometry ------------------------------------------------------------------------


def test_haversine_on_the_mean_sphere() -> None:
    assert haversine_m(0, 0, 1, 0) == pytest.approx(M_PER_DEG, rel=1e-12)
    assert haversine_m(0, 0, 0, 180) == pytest.approx(math.pi * R, rel=1e-12)
    assert haversine_m(LAT, LON, LAT, LON) == 0.0
    # Helsinki - Tallinn, about 80.5 km
    assert haversine_m(60.1699, 24.9384, 59.4370, 24.7536) == pytest.approx(82_000, rel=0.02)


def _same_float(a: float, b: float) -> bool:
    return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)


@settings(max_examples=2000, deadline=None)
@given(
    st.floats()
    | st.floats(min_value=0, max_value=400)
    | st.integers(min_value=0, max_value=10**7).map(lambda n: n / 2000)  # ties and near-ties
    | st.integers(min_value=0, max_value=10**7).map(lambda n: (n + 0.5) / 1000)
)
def test_round_mm_is_round_to_three_places(x: float) -> None:
    assert _same_float(round_mm(x), round(x, 3))


@pytest.mark.parametrize(
    "x",
    [0.0, -0.0, 2.675, 1.0005, 0.0005, 4e6 + 0.0005, 4.5e6, -1.2345, 5e-324, math.inf, math.nan],
)
def test_round_mm_edges(x: float) -> None:
    assert _same_float(round_mm(x), round(x, 3))


def test_implied_speed_allows_for_both_accuracy_radii() -> None:
    a = AcceptedFix(T0, LAT, LON, 30.0)
    b = AcceptedFix(T0 + timedelta(seconds=10), north(1000), LON, 20.0)
    assert implied_speed(a, b) == pytest.approx((1000 - 50) / 10, rel=1e-9)
    assert implied_speed(AcceptedFix(T0, LAT, LON, None), b) == pytest.approx(98.0, rel=1e-9)
    overlapping = AcceptedFix(T0 + timedelta(seconds=10), north(40), LON, 20.0)
    assert implied_speed(a, overlapping) == 0.0
    assert implied_speed(b, a) is None
    assert implied_speed(a, AcceptedFix(T0, north(5), LON, None)) is None


# --- resolution ----------------------------------------------------------------------


def _indexes(
    *infos: ResourceInfo,
) -> tuple[dict[UUID, ResourceInfo], dict[str, list[ResourceInfo]]]:
    by_identifier: dict[str, list[ResourceInfo]] = {}
    for info in infos:
        by_identifier.setdefault(info.identifier, []).append(info)
    return {i.id: i for i in infos}, by_identifier


def test_resolve_by_uuid_in_any_case() -> None:
    by_id, by_identifier = _indexes(VEHICLE, PERSON)
    assert resolve_ref(str(VEHICLE.id), by_id, by_identifier) is VEHICLE
    assert resolve_ref(str(VEHICLE.id).upper(), by_id, by_identifier) is VEHICLE


def test_resolve_by_exact_identifier() -> None:
    by_id, by_identifier = _indexes(VEHICLE, PERSON)
    assert resolve_ref("FF-12", by_id, by_identifier) is PERSON
    for near_miss in ("ff-12", "FF-12 ", "FF-1"):
        with pytest.raises(InputError) as info:
            resolve_ref(near_miss, by_id, by_identifier)
        assert (info.value.stage, info.value.error_code) == ("normalize", "unknown_device")


def test_unknown_uuid_is_unknown_device() -> None:
    by_id, by_identifier = _indexes(VEHICLE)
    with pytest.raises(InputError) as info:
        resolve_ref(str(uuid4()), by_id, by_identifier)
    assert (info.value.stage, info.value.error_code) == ("normalize", "unknown_device")


def test_ambiguous_identifier_is_unknown_device() -> None:
    twin = ResourceInfo(uuid4(), "vehicle", "ENG-7", None)
    by_id, by_identifier = _indexes(VEHICLE, twin)
    with pytest.raises(InputError) as info:
        resolve_ref("ENG-7", by_id, by_identifier)
    assert info.value.error_code == "unknown_device"
    assert "2 resources" in info.value.reason


def test_uuid_shaped_identifier_still_resolves() -> None:
    tag = ResourceInfo(uuid4(), "equipment", "0f8fad5b-d9cb-469f-a165-70867728950e", None)
    by_id, by_identifier = _indexes(tag)
    assert resolve_ref("0f8fad5b-d9cb-469f-a165-70867728950e", by_id, by_identifier) is tag


# --- rows and state ------------------------------------------------------------------


async def test_first_fix_without_history_moves() -> None:
    tracker = tracker_with()
    out = await run(tracker, gps(0, accuracy=5.0))
    assert out.moves == (True,)
    row = out.rows[0]
    assert (row.resource_id, row.resource_type) == (VEHICLE.id, "vehicle")
    assert (row.location.lon, row.location.lat) == (LON, LAT)
    assert (row.speed, row.heading, row.accuracy, row.source) == (5.0, 90.0, 5.0, "gps")
    assert row.time == T0
    assert row.metadata == {"format": "avl", "flags": []}
    assert tracker.last_accepted(VEHICLE.id) == AcceptedFix(T0, LAT, LON, 5.0)


async def test_plausible_track_moves_and_records_implied_speed() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    out = await run(tracker, gps(10, north(200)), gps(20, north(400)))
    assert out.moves == (True, True)
    assert flags_of(out) == [[], []]
    assert [r.metadata["implied_speed_mps"] for r in out.rows] == pytest.approx([20.0, 20.0])
    last = tracker.last_accepted(VEHICLE.id)
    assert last is not None
    assert last.time == T0 + timedelta(seconds=20)


async def test_input_fix_is_not_modified() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    f = gps(1, north(5000), flags=["bad_speed"])
    await run(tracker, f)
    assert f.flags == ["bad_speed"]
    assert f.metadata == {"format": "avl"}


async def test_loader_is_asked_once_in_bulk() -> None:
    loader = FakeLoader()
    tracker = PlausibilityTracker(loader, SETTINGS)
    batch = [(gps(0), VEHICLE), (gps(0), PERSON), (gps(5), VEHICLE)]
    await tracker.assess(batch)
    assert loader.calls == [[VEHICLE.id, PERSON.id]]
    await tracker.assess([(gps(10), VEHICLE), (gps(10), DRONE)])
    assert loader.calls == [[VEHICLE.id, PERSON.id], [DRONE.id]]
    await tracker.assess([])
    assert len(loader.calls) == 2


async def test_loaded_fix_is_the_reference() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    out = await run(tracker, gps(1, north(5000)))
    assert flags_of(out) == [["teleport"]]
    assert out.moves == (False,)


@pytest.mark.parametrize("seconds", [0, -1, -3600])
async def test_not_newer_than_last_accepted_is_out_of_order(seconds: float) -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    out = await run(tracker, gps(seconds, north(10)))
    assert flags_of(out) == [["out_of_order"]]
    assert out.moves == (False,)
    assert "implied_speed_mps" not in out.rows[0].metadata
    assert tracker.last_accepted(VEHICLE.id) == AcceptedFix(T0, LAT, LON, None)


async def test_out_of_order_never_moves_even_when_consistent() -> None:
    tracker = tracker_with(AcceptedFix(T0 + timedelta(hours=1), LAT, LON, None))
    out = await run(tracker, *(gps(s, north(s)) for s in range(0, 50, 10)))
    assert out.moves == (False,) * 5
    assert all(f == ["out_of_order"] for f in flags_of(out))


async def test_duplicate_in_batch_is_out_of_order() -> None:
    tracker = tracker_with()
    out = await run(tracker, gps(0), gps(0))
    assert out.moves == (True, False)
    assert flags_of(out) == [[], ["out_of_order"]]


@pytest.mark.parametrize(
    ("info", "mps", "teleport"),
    [
        (VEHICLE, 69.9, False),
        (VEHICLE, 70.5, True),
        (ResourceInfo(uuid4(), "equipment", "GEN-1", None), 70.5, True),
        (ResourceInfo(uuid4(), "equipment", "GEN-2", None), 69.0, False),
        (PERSON, 11.9, False),
        (PERSON, 12.5, True),
        (DRONE, 24.9, False),
        (DRONE, 26.0, True),
    ],
)
async def test_teleport_threshold(info: ResourceInfo, mps: float, teleport: bool) -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None), info)
    out = await run(tracker, gps(10, north(mps * 10)), info=info)
    assert flags_of(out) == ([["teleport"]] if teleport else [[]])
    assert out.moves == (not teleport,)
    assert out.rows[0].metadata["implied_speed_mps"] == pytest.approx(mps, abs=1e-3)


async def test_v_max_from_settings() -> None:
    slow = GpsSettings(max_speed_personnel_mps=2.0, max_speed_vehicle_mps=5.0)
    tracker = PlausibilityTracker(FakeLoader({PERSON.id: AcceptedFix(T0, LAT, LON, None)}), slow)
    out = await run(tracker, gps(10, north(30)), info=PERSON)
    assert flags_of(out) == [["teleport"]]
    assert tracker.v_max(VEHICLE) == 5.0
    assert tracker.v_max(DRONE) == 25.0


async def test_accuracy_radii_prevent_false_teleports() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, 40.0), PERSON)
    # 150 m in 5 s is 30 m/s, but the error circles (40 + 60 m) leave 10 m/s
    out = await run(tracker, gps(5, north(150), accuracy=60.0), info=PERSON)
    assert flags_of(out) == [[]]
    assert out.rows[0].metadata["implied_speed_mps"] == pytest.approx(10.0, abs=1e-3)


async def test_teleport_keeps_the_reference() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    out = await run(tracker, gps(1, north(5000)), gps(20, north(300)))
    assert flags_of(out) == [["teleport"], []]
    assert out.moves == (False, True)


async def test_recovery_after_three_consistent_teleports() -> None:
    # a wrong reference fix 50 km away: the real track must win after 3 fixes
    tracker = tracker_with(AcceptedFix(T0, north(50_000), LON, None))
    track = [gps(s, north(s * 10)) for s in (10, 20, 30, 40)]
    out = await run(tracker, *track)
    assert flags_of(out) == [["teleport"], ["teleport"], [], []]
    assert out.moves == (False, False, True, True)
    assert out.rows[2].metadata["recovered"] is True
    assert "recovered" not in out.rows[3].metadata
    last = tracker.last_accepted(VEHICLE.id)
    assert last is not None
    assert last.time == T0 + timedelta(seconds=40)


async def test_no_recovery_when_the_flagged_fixes_disagree() -> None:
    tracker = tracker_with(AcceptedFix(T0, north(50_000), LON, None))
    scattered = [gps(10, north(0)), gps(20, north(-20_000)), gps(30, north(0))]
    out = await run(tracker, *scattered)
    assert flags_of(out) == [["teleport"]] * 3
    assert out.moves == (False,) * 3
    # the newest three agree from here on: the fourth is accepted
    more = await run(tracker, gps(40, north(100)), gps(50, north(200)))
    assert flags_of(more) == [["teleport"], []]
    assert more.rows[1].metadata["recovered"] is True


async def test_recovery_counts_across_batches() -> None:
    tracker = tracker_with(AcceptedFix(T0, north(50_000), LON, None))
    first = await run(tracker, gps(10, north(0)), gps(20, north(100)))
    second = await run(tracker, gps(30, north(200)))
    assert first.moves == (False, False)
    assert second.moves == (True,)


async def test_low_accuracy_fixes_never_recover() -> None:
    tracker = tracker_with(AcceptedFix(T0, north(50_000), LON, None))
    out = await run(
        tracker, *(gps(s, north(s * 10), flags=["low_accuracy"]) for s in (10, 20, 30, 40))
    )
    assert out.moves == (False,) * 4
    assert flags_of(out) == [["low_accuracy", "teleport"]] * 4


async def test_accepted_fix_resets_the_recovery_run() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    # two spikes, a good fix, then one spike consistent with the earlier two
    out = await run(
        tracker,
        gps(10, north(20_000)),
        gps(20, north(20_100)),
        gps(30, north(300)),
        gps(40, north(20_200)),
    )
    assert flags_of(out) == [["teleport"], ["teleport"], [], ["teleport"]]
    assert out.moves == (False, False, True, False)


@pytest.mark.parametrize(
    ("kwargs", "low"),
    [
        ({"accuracy": 100.0}, False),
        ({"accuracy": 100.1}, True),
        ({"hdop": 5.0}, False),
        ({"hdop": 5.01}, True),
        ({"satellites": 4}, False),
        ({"satellites": 3}, True),
    ],
)
async def test_low_accuracy_is_stored_and_does_not_move(kwargs: dict[str, Any], low: bool) -> None:
    tracker = tracker_with()
    out = await run(tracker, gps(0, **kwargs))
    assert flags_of(out) == ([["low_accuracy"]] if low else [[]])
    assert out.moves == (not low,)
    assert (tracker.last_accepted(VEHICLE.id) is None) is low


async def test_decoder_low_accuracy_flag_is_not_repeated() -> None:
    out = await run(tracker_with(), gps(0, accuracy=500.0, flags=["low_accuracy"]))
    assert flags_of(out) == [["low_accuracy"]]


async def test_estimated_fix_moves() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    out = await run(tracker, gps(10, north(100), flags=["estimated"]))
    assert flags_of(out) == [["estimated"]]
    assert out.moves == (True,)
    last = tracker.last_accepted(VEHICLE.id)
    assert last is not None
    assert last.lat == pytest.approx(north(100))


async def test_estimated_teleport_recovers_like_any_teleport() -> None:
    tracker = tracker_with(AcceptedFix(T0, north(50_000), LON, None))
    out = await run(tracker, *(gps(s, north(s), flags=["estimated"]) for s in (10, 20, 30)))
    assert out.moves == (False, False, True)
    assert flags_of(out)[2] == ["estimated"]


@pytest.mark.parametrize("flag", ["bad_speed", "bad_heading", "bad_accuracy"])
async def test_sanitised_fix_is_stored_but_does_not_move(flag: str) -> None:
    tracker = tracker_with()
    out = await run(tracker, gps(0, flags=[flag]))
    assert flags_of(out) == [[flag]]
    assert out.moves == (False,)
    assert tracker.last_accepted(VEHICLE.id) is None


async def test_resources_are_tracked_separately() -> None:
    tracker = PlausibilityTracker(FakeLoader(), SETTINGS)
    out = await tracker.assess(
        [(gps(0), VEHICLE), (gps(1, north(5000)), PERSON), (gps(2, north(10)), VEHICLE)]
    )
    assert out.moves == (True, True, True)
    assert [r.resource_id for r in out.rows] == [VEHICLE.id, PERSON.id, VEHICLE.id]


async def test_rollback_restores_the_state_before_the_batch() -> None:
    tracker = tracker_with(AcceptedFix(T0, LAT, LON, None))
    batch = [(gps(10, north(100)), VEHICLE), (gps(20, north(200)), VEHICLE)]
    first = await tracker.assess(batch)
    tracker.rollback()
    assert tracker.last_accepted(VEHICLE.id) == AcceptedFix(T0, LAT, LON, None)
    again = await tracker.assess(batch)
    assert again == first
    # without a rollback the same batch is now out of order
    third = await tracker.assess(batch)
    assert third.moves == (False, False)


async def test_forget_reloads() -> None:
    loader = FakeLoader()
    tracker = PlausibilityTracker(loader, SETTINGS)
    await run(tracker, gps(0))
    tracker.forget([VEHICLE.id])
    assert tracker.last_accepted(VEHICLE.id) is None
    await run(tracker, gps(10))
    assert loader.calls == [[VEHICLE.id], [VEHICLE.id]]
