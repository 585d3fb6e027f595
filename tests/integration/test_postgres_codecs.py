"""The pool's timestamptz codec against asyncpg's own, on a real PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clients.postgres import _init_connection

HELSINKI = ZoneInfo("Europe/Helsinki")

VALUES: list[object] = [
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 12, 3, 19, 42, 11, 52728, tzinfo=UTC),
    datetime(2026, 12, 3, 19, 42, 11, 52728, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 3, 29, 3, 30, tzinfo=HELSINKI),  # the hour daylight saving time skips
    datetime(2026, 10, 25, 3, 30, fold=1, tzinfo=HELSINKI),  # the hour it repeats
    datetime(1, 1, 1, tzinfo=UTC),  # asyncpg's minus infinity, at the same instant
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # and its infinity
    datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
    datetime(2026, 12, 3, 19, 42, 11, 52728),  # naive: local time, as in asyncpg
    date(2026, 12, 3),  # local midnight, as in asyncpg
    datetime.max,  # asyncpg's infinity
    datetime.min,  # and minus infinity
]


async def _connections(dsn: str) -> tuple[asyncpg.Connection, asyncpg.Connection]:
    ours, theirs = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    await _init_connection(ours)
    for conn in (ours, theirs):
        await conn.execute("SET TimeZone = 'UTC'")
    await theirs.execute("CREATE TABLE IF NOT EXISTS ts_codec (n int, who text, t timestamptz)")
    return ours, theirs


async def _stored_alike(
    ours: asyncpg.Connection, theirs: asyncpg.Connection, values: list[object]
) -> None:
    await theirs.execute("TRUNCATE ts_codec")
    rows = list(enumerate(values))
    await ours.copy_records_to_table("ts_codec", records=[(n, "ours", v) for n, v in rows])
    await theirs.copy_records_to_table("ts_codec", records=[(n, "asyncpg", v) for n, v in rows])
    # the same instant stored, and read back as asyncpg reads it
    pairs = await theirs.fetch(
        "SELECT a.n, a.t::text AS a, b.t::text AS b FROM ts_codec a JOIN ts_codec b USING (n) "
        "WHERE a.who = 'ours' AND b.who = 'asyncpg' ORDER BY n"
    )
    assert len(pairs) == len(values)
    assert [(p["n"], p["a"]) for p in pairs] == [(p["n"], p["b"]) for p in pairs]
    read_ours = await ours.fetch("SELECT t FROM ts_codec WHERE who = 'ours' ORDER BY n")
    read_theirs = await theirs.fetch("SELECT t FROM ts_codec WHERE who = 'ours' ORDER BY n")
    for a, b in zip(read_ours, read_theirs, strict=True):
        assert a["t"] == b["t"]
        assert a["t"].tzinfo == b["t"].tzinfo


async def test_timestamptz_is_stored_and_read_as_asyncpg_does(fresh_db: str) -> None:
    ours, theirs = await _connections(fresh_db)
    try:
        await _stored_alike(ours, theirs, VALUES)
        # parameters take the same codec as COPY
        for v in VALUES:
            assert await ours.fetchval("SELECT $1::timestamptz::text", v) == await theirs.fetchval(
                "SELECT $1::timestamptz::text", v
            )
    finally:
        await ours.close()
        await theirs.close()


async def test_naive_times_and_dates_take_the_local_zone_as_in_asyncpg(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/St_Johns")  # -03:30 or -02:30
    time.tzset()
    ours, theirs = await _connections(fresh_db)
    try:
        local = [v for v in VALUES if type(v) is date or getattr(v, "tzinfo", UTC) is None]
        assert datetime(2026, 7, 1, 12).astimezone().utcoffset() == timedelta(hours=-2.5)
        await _stored_alike(ours, theirs, [*local, datetime(2026, 7, 1, 12), date(2026, 7, 1)])
    finally:
        await ours.close()
        await theirs.close()
        monkeypatch.undo()
        time.tzset()


async def test_a_value_that_is_no_time_is_refused_by_both(fresh_db: str) -> None:
    ours, theirs = await _connections(fresh_db)
    try:
        for conn in (ours, theirs):
            with pytest.raises(
                asyncpg.DataError, match=r"expected a datetime\.date or datetime\.datetime"
            ):
                await conn.fetchval("SELECT $1::timestamptz", "2026-12-03T19:42:11Z")
    finally:
        await ours.close()
        await theirs.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from([UTC, HELSINKI, timezone(timedelta(hours=-9, minutes=-30))]),
        ),
        min_size=1,
        max_size=20,
    )
)
async def test_any_aware_time_is_stored_as_asyncpg_stores_it(
    fresh_db: str, values: list[datetime]
) -> None:
    ours, theirs = await _connections(fresh_db)
    try:
        await _stored_alike(ours, theirs, list(values))
    finally:
        await ours.close()
        await theirs.close()
