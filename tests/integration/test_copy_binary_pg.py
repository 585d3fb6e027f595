"""The binary COPY encoder against asyncpg's own encoding, on a real PostgreSQL:
the same rows of ``location_history`` and ``telemetry``, one set written by
``copy_records_to_table`` through the pool's codecs and one as the bytes of
pipeline.sinks.postgres.copy_binary (the C extension and its Python twin),
read back alike."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clients.postgres import _init_connection
from pipeline.sinks.postgres import _copy_binary
from pipeline.sinks.postgres.copy_binary import (
    FLOAT,
    HEADER,
    TIME,
    TRAILER,
    encode_rows_python,
)
from pipeline.sinks.postgres.timeseries import (
    LOCATION_COLUMNS,
    LOCATION_KINDS,
    TELEMETRY_COLUMNS,
    TELEMETRY_KINDS,
)
from schemas.canonical import GeoPoint, LocationRow, TelemetryRow

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
ENCODERS = {"extension": _copy_binary.encode_rows, "python": encode_rows_python}
TABLES = {
    "location_history": (LOCATION_COLUMNS, LOCATION_KINDS, "resource_id, time"),
    "telemetry": (TELEMETRY_COLUMNS, TELEMETRY_KINDS, "device_id, metric_name, time"),
}


async def _both_ways(
    dsn: str,
    table: str,
    rows: Sequence[tuple[object, ...]],
    encoder: str,
    layout: tuple[Sequence[str], Sequence[int], str] | None = None,
) -> None:
    columns, kinds, key = layout or TABLES[table]
    conn = await asyncpg.connect(dsn)
    try:
        await _init_connection(conn)
        await conn.execute("SET TimeZone = 'UTC'")
        await conn.execute(f"TRUNCATE {table}")
        await conn.copy_records_to_table(table, records=rows, columns=list(columns))
        # every column as text, in key order: what asyncpg's encoding stored
        read = f"SELECT {', '.join(f'{c}::text' for c in columns)} FROM {table} ORDER BY {key}"
        theirs = [tuple(r) for r in await conn.fetch(read)]
        await conn.execute(f"TRUNCATE {table}")
        data = HEADER + ENCODERS[encoder](rows, kinds, columns) + TRAILER
        await conn.copy_to_table(
            table, source=memoryview(data), columns=list(columns), format="binary"
        )
        ours = [tuple(r) for r in await conn.fetch(read)]
    finally:
        await conn.close()
    assert len(theirs) == len(rows)
    assert ours == theirs


ZONES = st.sampled_from([UTC, UTC, UTC, timezone(timedelta(hours=5, minutes=30))])
TIMES = st.datetimes(
    min_value=(NOW - timedelta(days=6)).replace(tzinfo=None),
    max_value=(NOW + timedelta(days=6)).replace(tzinfo=None),
    timezones=ZONES,
)
FLOATS = st.none() | st.floats(allow_nan=False) | st.floats(-1e6, 1e6)
# what PostgreSQL's text and jsonb take: no NUL, no lone surrogate
CHARS = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
TEXT = st.text(CHARS, max_size=30)
POINTS = st.builds(GeoPoint, st.floats(-180, 180), st.floats(-90, 90))
META = st.dictionaries(
    st.text(CHARS, max_size=5),
    st.none() | st.integers(-(2**40), 2**40) | st.text(CHARS, max_size=5),
    max_size=3,
)


@st.composite
def location_rows(draw: st.DrawFn) -> list[LocationRow]:
    times = draw(st.lists(TIMES, min_size=1, max_size=25, unique_by=lambda t: t.timestamp()))
    rid = uuid.uuid4()
    return [
        LocationRow(
            t, rid, draw(TEXT.filter(bool)), draw(POINTS), draw(FLOATS), draw(FLOATS),
            draw(FLOATS), draw(TEXT), draw(META),
        )
        for t in times
    ]  # fmt: skip


@st.composite
def telemetry_rows(draw: st.DrawFn) -> list[TelemetryRow]:
    times = draw(st.lists(TIMES, min_size=1, max_size=25, unique_by=lambda t: t.timestamp()))
    device = uuid.uuid4()
    return [
        TelemetryRow(
            t, device, draw(TEXT.filter(bool)), "m", draw(FLOATS),
            draw(st.none() | TEXT), draw(st.none() | POINTS), draw(META),
        )
        for t in times
    ]  # fmt: skip


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


ROWS = {"location_history": location_rows(), "telemetry": telemetry_rows()}


@pytest.mark.parametrize("table", sorted(ROWS))
@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@SETTINGS
@given(data=st.data())
async def test_rows_are_stored_as_asyncpg_stores_them(
    fresh_db: str, encoder: str, table: str, data: st.DataObject
) -> None:
    await _both_ways(fresh_db, table, data.draw(ROWS[table]), encoder)


async def test_the_edges_of_time_are_stored_alike(fresh_db: str) -> None:
    # the extremes PostgreSQL stores, and asyncpg's infinities
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("CREATE TABLE edge (n float8, t timestamptz)")
    finally:
        await conn.close()
    edges = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime.max,
        datetime.min,
        NOW,
    ]
    rows = [(float(i), t) for i, t in enumerate(edges)]
    for encoder in ENCODERS:
        await _both_ways(fresh_db, "edge", rows, encoder, (("n", "t"), (FLOAT, TIME), "n"))
