"""The shortcuts the volume path takes per record give the same answers as the
plain computations they stand in for."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import shapely
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from pipeline import metrics
from pipeline.decoders.envelope import iso_utc, received_at_iso, window
from pipeline.flows import bulk
from pipeline.flows.common import next_offsets
from pipeline.sinks.postgres.partitions import PartitionCache, week_start
from pipeline.stages.geo_index import Fence, GeoIndex
from schemas.records import RawRecord

# Kafka timestamps from 1970 to 2100, including the -1 of a record without one
_MS = st.integers(min_value=-1, max_value=4_102_444_800_000)
_EDGE_DATETIMES = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(999, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 12, 8, 4, 0, 0, 1000, tzinfo=UTC),
    datetime(2026, 12, 8, 4, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
]


@given(st.lists(_MS, min_size=1, max_size=20))
def test_received_at_iso_is_iso_utc_of_the_kafka_time(stamps: list[int]) -> None:
    # consecutive calls share the cached second; every answer must still be exact
    for ms in stamps + sorted(stamps):
        assert received_at_iso(ms) == iso_utc(datetime.fromtimestamp(ms / 1000, tz=UTC))


def _isoformat_utc(dt: datetime) -> str:
    # the plain computation iso_utc stands in for
    dt = dt.astimezone(UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@given(st.datetimes(timezones=st.none() | st.timezones()) | st.sampled_from(_EDGE_DATETIMES))
def test_iso_utc_is_isoformat_in_utc_with_z(dt: datetime) -> None:
    try:
        want: object = _isoformat_utc(dt)
    except OverflowError:
        want = OverflowError  # moved past datetime's range by its offset
    try:
        got: object = iso_utc(dt)
    except OverflowError:
        got = OverflowError
    assert got == want


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.floats(min_value=0, max_value=10**8),
    st.floats(min_value=0, max_value=10**6),
)
def test_window_is_now_minus_age_to_now_plus_future(
    now: datetime, age: float, future: float
) -> None:
    for _ in range(2):  # the second call is answered from the cache
        lo, hi, lo_s, hi_s = window(now, age, future)
        assert (lo, hi) == (now - timedelta(seconds=age), now + timedelta(seconds=future))
        assert (lo_s, hi_s) == (lo.timestamp(), hi.timestamp())


def _fence(i: int) -> Fence:
    return Fence(f"f{i}", f"fence {i}", "zone", None, None)


def test_one_query_for_many_points_answers_as_one_query_per_point() -> None:
    fences = [
        (_fence(0), shapely.box(24.0, 60.0, 25.0, 61.0)),
        (_fence(1), shapely.box(24.5, 60.5, 26.0, 62.0)),  # overlaps fence 0
        (_fence(2), shapely.box(-1.0, 50.0, 1.0, 52.0)),
    ]
    geo = GeoIndex()
    geo.load(fences)
    points = [
        (24.2, 60.2),  # in 0
        (24.7, 60.7),  # in 0 and 1
        (25.5, 61.5),  # in 1
        (0.0, 51.0),  # in 2
        (10.0, 10.0),  # in none
        (25.0, 60.5),  # on the shared edge and inside 1
    ]
    many = geo.containing_many(points)
    assert [[f.id for f in fs] for fs in many] == [
        ["f0"], ["f0", "f1"], ["f1"], ["f2"], [], ["f0", "f1"],
    ]  # fmt: skip
    # the same as asking every polygon about every point
    assert many == [
        [f for f, g in fences if g.intersects(shapely.Point(lon, lat))] for lon, lat in points
    ]
    assert geo.containing_many([]) == []
    assert GeoIndex().containing_many(points) == [[] for _ in points]


class _Calls:
    """Records the partition requests PartitionCache makes."""

    def __init__(self) -> None:
        self.weeks: list[object] = []

    async def execute(self, _sql: str, _parent: str, t: datetime) -> None:
        self.weeks.append(week_start(t))


_WEEKS = st.lists(
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 3, 1), timezones=st.just(UTC)
    ),
    max_size=30,
)


@given(st.lists(_WEEKS, min_size=1, max_size=4))
async def test_partition_cache_asks_once_for_each_week_it_has_not_seen(
    batches: list[list[datetime]],
) -> None:
    cache, conn = PartitionCache(), _Calls()
    known: set[object] = set()
    for times in batches:
        asked = len(conn.weeks)
        await cache.ensure(conn, "telemetry", times)  # type: ignore[arg-type]
        expected = sorted({week_start(t) for t in times} - known)
        assert conn.weeks[asked:] == expected
        known.update(expected)


def _histogram() -> Histogram:
    return Histogram(
        "lat", "", ["stream"], buckets=(0.005, 0.1, 1.0, 30.0), registry=CollectorRegistry()
    )


def _assert_same_samples(want_from: Histogram, got_from: Histogram) -> None:
    def samples(h: Histogram) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for m in h.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        }

    want, got = samples(want_from), samples(got_from)
    assert want.keys() == got.keys()
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-9, abs_tol=1e-6), k


@given(
    st.lists(st.floats(min_value=0, max_value=1e6) | st.sampled_from([0.005, 30.0]), max_size=50)
)
def test_observe_many_counts_as_observe_for_each_value(amounts: list[float]) -> None:
    one_by_one, batched = _histogram(), _histogram()
    child = one_by_one.labels("gps")
    for a in amounts:
        child.observe(a)
    metrics.observe_many(batched.labels("gps"), amounts)
    _assert_same_samples(one_by_one, batched)


@given(_MS, st.lists(_MS, max_size=50))
def test_observe_ages_observes_the_seconds_since_each_kafka_time(
    now_ms: int, stamps: list[int]
) -> None:
    # whole milliseconds land on the 5 ms bound, and stamps after now count as 0
    stamps += [now_ms - 5, now_ms + 10]
    one_by_one, batched = _histogram(), _histogram()
    child = one_by_one.labels("gps")
    for t in stamps:
        child.observe(max(now_ms - t, 0.0) / 1000)
    metrics.observe_ages(batched.labels("gps"), float(now_ms), stamps)
    _assert_same_samples(one_by_one, batched)


_RECORD_AT = st.tuples(
    st.sampled_from(["gps.raw", "telemetry.raw"]), st.integers(0, 3), st.integers(0, 2**40)
)


@given(st.lists(_RECORD_AT, max_size=40))
def test_next_offsets_is_one_past_the_highest_offset_of_each_partition(
    at: list[tuple[str, int, int]],
) -> None:
    # in any order, and in the runs of one partition that a fetch returns
    for order in (at, sorted(at)):
        records = [RawRecord(topic, p, offset, 0, None, None) for topic, p, offset in order]
        want: dict[tuple[str, int], int] = {}
        for topic, p, offset in order:
            want[(topic, p)] = max(want.get((topic, p), 0), offset + 1)
        assert next_offsets(records) == want


@given(st.lists(st.uuids(), max_size=20))
def test_uuid_text_is_the_uuids_str(ids: list[uuid.UUID]) -> None:
    for value in ids + ids:  # the second time from memory
        assert bulk.uuid_text(value) == str(value)


def test_the_uuid_texts_remembered_are_bounded() -> None:
    for i in range(bulk._TEXT_LIMIT + 10):
        bulk.uuid_text(uuid.UUID(int=i))
        assert len(bulk._uuid_texts) <= bulk._TEXT_LIMIT
    assert bulk.uuid_text(uuid.UUID(int=7)) == str(uuid.UUID(int=7))
