"""The TimescaleDB path of the time-series migrations, on a real TimescaleDB.

Migrations 0002 (partition policies) and 0003 (time-series tables) run unchanged
except for what PostGIS provides, which this server lacks: the geography column
type and the GiST indexes on it. With timescaledb available, telemetry and
location_history must come out as hypertables with the design's compression
(after 7 days, segmented by device/resource, ordered by time) and retention
(2 years / 1 year), be marked as managed by TimescaleDB so the worker creates no
partitions for them, accept the ingest's idempotent writes, and let old chunks be
compressed without losing that idempotency.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from uuid import UUID, uuid4

import asyncpg
import pytest

MIGRATIONS_DIR: Final = Path(__file__).parents[2] / "pipeline" / "store" / "migrations"
MIGRATIONS: Final = ("0002_partitioning.sql", "0003_timeseries.sql")

# 0002's audit_logs references users(id) and agencies(id) from 0001_core, which is
# built around PostGIS; those two keys are all 0002 needs from it.
CORE_KEYS: Final = """
CREATE TABLE IF NOT EXISTS agencies (id UUID PRIMARY KEY);
CREATE TABLE IF NOT EXISTS users (id UUID PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class PostgisRewrite:
    """One PostGIS-only construct and what stands in for it."""

    pattern: re.Pattern[str]
    replacement: str
    # occurrences expected in 0003: a change to the migration shows up here
    expected: int


POSTGIS_REWRITES: Final = (
    # the geography type: an opaque column of the same name
    PostgisRewrite(re.compile(r"GEOGRAPHY\(POINT, 4326\)"), "BYTEA", 2),
    # spatial indexes on that column: PostGIS's GiST operator class
    PostgisRewrite(
        re.compile(r"^CREATE INDEX IF NOT EXISTS \w+ ON \w+ USING GIST\(location\);\n", re.M),
        "",
        2,
    ),
)
TIMESCALE_CALLS: Final = (
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    "create_hypertable('telemetry', 'time'",
    "create_hypertable('location_history', 'time'",
    "timescaledb.compress_segmentby",
    "add_compression_policy('telemetry', INTERVAL '7 days'",
    "add_retention_policy('telemetry', INTERVAL '2 years'",
    "add_compression_policy('location_history', INTERVAL '7 days'",
    "add_retention_policy('location_history', INTERVAL '1 year'",
)


def without_postgis(sql: str) -> tuple[str, list[int]]:
    """The SQL with PostGIS constructs replaced, and how often each rewrite applied."""
    counts = []
    for rw in POSTGIS_REWRITES:
        sql, n = rw.pattern.subn(rw.replacement, sql)
        counts.append(n)
    return sql, counts


def migration_sql(name: str) -> str:
    return (MIGRATIONS_DIR / name).read_text("utf-8")


def runnable_sql(name: str) -> str:
    return without_postgis(migration_sql(name))[0]


def test_postgis_rewrite_is_minimal() -> None:
    original = migration_sql("0003_timeseries.sql")
    rewritten, counts = without_postgis(original)
    assert counts == [rw.expected for rw in POSTGIS_REWRITES]
    changed = [
        line
        for line in difflib.unified_diff(original.splitlines(), rewritten.splitlines(), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    removed = [line[1:] for line in changed if line.startswith("-")]
    added = [line[1:] for line in changed if line.startswith("+")]
    # only geography columns and GiST index lines changed, and the columns only in type
    assert all("GEOGRAPHY(POINT, 4326)" in x or "USING GIST(location)" in x for x in removed)
    assert added == [
        x.replace("GEOGRAPHY(POINT, 4326)", "BYTEA") for x in removed if "GEOGRAPHY" in x
    ]
    for call in TIMESCALE_CALLS:
        assert call in rewritten, call
    assert "GEOGRAPHY" not in rewritten
    assert "GIST" not in rewritten
    # 0002 uses nothing from PostGIS
    assert without_postgis(migration_sql("0002_partitioning.sql"))[1] == [0, 0]


@pytest.fixture(scope="module")
async def tsdb(pglite_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server with 0002 and 0003 applied, each in its own
    transaction as ``eriop migrate`` applies them."""
    conn = await asyncpg.connect(pglite_dsn, statement_cache_size=0, timeout=30)
    try:
        listed = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        )
        assert listed == 1, "the server must offer timescaledb for 0003 to take that path"
        await conn.execute(CORE_KEYS)
        for name in MIGRATIONS:
            async with conn.transaction():
                await conn.execute(runnable_sql(name))
        yield conn
    finally:
        conn.terminate()


async def test_tables_are_hypertables(tsdb: asyncpg.Connection) -> None:
    rows = await tsdb.fetch(
        "SELECT h.hypertable_name, h.compression_enabled, d.column_name, d.time_interval "
        "FROM timescaledb_information.hypertables h "
        "JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name) "
        "ORDER BY h.hypertable_name"
    )
    assert [tuple(r) for r in rows] == [
        ("location_history", True, "time", timedelta(days=7)),
        ("telemetry", True, "time", timedelta(days=7)),
    ]
    # the migration created the extension itself
    assert (
        await tsdb.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 1
    )
    # no native weekly partitions: chunks are TimescaleDB's
    native = await tsdb.fetchval(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname IN ('telemetry', 'location_history') "
        "AND i.inhrelid::regclass::text NOT LIKE '\\_timescaledb\\_internal.%'"
    )
    assert native == 0
    weekly = await tsdb.fetchval(
        "SELECT count(*) FROM pg_class "
        "WHERE relname LIKE 'telemetry\\_p%' OR relname LIKE 'location\\_history\\_p%'"
    )
    assert weekly == 0


async def test_policies(tsdb: asyncpg.Connection) -> None:
    rows = await tsdb.fetch(
        "SELECT hypertable_name, proc_name, "
        "(config->>'compress_after')::interval::text AS compress_after, "
        "(config->>'drop_after')::interval::text AS drop_after "
        "FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL "
        "ORDER BY hypertable_name, proc_name"
    )
    assert [tuple(r) for r in rows] == [
        ("location_history", "policy_compression", "7 days", None),
        ("location_history", "policy_retention", None, "1 year"),
        ("telemetry", "policy_compression", "7 days", None),
        ("telemetry", "policy_retention", None, "2 years"),
    ]


async def test_compression_settings(tsdb: asyncpg.Connection) -> None:
    rows = await tsdb.fetch(
        "SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index, "
        "orderby_asc FROM timescaledb_information.compression_settings "
        "ORDER BY hypertable_name, segmentby_column_index NULLS LAST, orderby_column_index"
    )
    assert [tuple(r) for r in rows] == [
        ("location_history", "resource_id", 1, None, None),
        ("location_history", "time", None, 1, False),
        ("telemetry", "device_id", 1, None, None),
        ("telemetry", "metric_name", None, 1, True),
        ("telemetry", "time", None, 2, False),
    ]


async def test_partition_policies_defer_to_timescaledb(tsdb: asyncpg.Connection) -> None:
    rows = await tsdb.fetch(
        "SELECT parent, partition_span, retention::text, managed_by_timescaledb "
        "FROM eriop_partition_policies WHERE parent IN ('telemetry', 'location_history') "
        "ORDER BY parent"
    )
    assert [tuple(r) for r in rows] == [
        ("location_history", timedelta(days=7), "1 year", True),
        ("telemetry", timedelta(days=7), "2 years", True),
    ]
    for parent in ("telemetry", "location_history"):
        for when in ("now()", "now() - INTERVAL '40 days'", "now() + INTERVAL '20 days'"):
            made = await tsdb.fetchval(f"SELECT eriop_ensure_partition($1, {when})", parent)
            assert made is None, (parent, when)
    # the maintenance job finds nothing of theirs to create either
    before = await tsdb.fetchval("SELECT count(*) FROM pg_inherits")
    await tsdb.fetchval("SELECT eriop_ensure_partitions_around_now('14 days', '28 days')")
    assert await tsdb.fetchval("SELECT count(*) FROM pg_inherits") == before


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    owner: str  # the key column naming the device or resource

    def row(self, owner: UUID, t: datetime, n: int) -> tuple[object, ...]:
        if self.name == "telemetry":
            return (t, owner, "sensor", "temperature", 20.0 + n, None, None, "{}")
        return (t, owner, "vehicle", bytes([1, n]), 12.5, 90.0, 5.0, "gps", "{}")


TELEMETRY: Final = Table(
    "telemetry",
    ("time", "device_id", "device_type", "metric_name", "metric_value", "metric_text",
     "location", "metadata"),
    ("device_id", "metric_name", "time"),
    "device_id",
)  # fmt: skip
LOCATION_HISTORY: Final = Table(
    "location_history",
    ("time", "resource_id", "resource_type", "location", "speed", "heading", "accuracy",
     "source", "metadata"),
    ("resource_id", "time"),
    "resource_id",
)  # fmt: skip
TABLES: Final = pytest.mark.parametrize(
    "table", [TELEMETRY, LOCATION_HISTORY], ids=lambda t: t.name
)


async def write_idempotent(
    conn: asyncpg.Connection, table: Table, rows: Sequence[tuple[object, ...]]
) -> int:
    """The ingest's dedup write: a staging table (filled row by row here, since this
    server carries no COPY), then INSERT ... ON CONFLICT DO NOTHING. Rows stored."""
    stage = f"{table.name}_stage"
    cols = ", ".join(table.columns)
    params = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.executemany(f"INSERT INTO {stage} ({cols}) VALUES ({params})", rows)
        new = await conn.fetch(
            f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "
            f"ON CONFLICT DO NOTHING RETURNING {', '.join(table.key)}"
        )
    return len(new)


async def write_one(conn: asyncpg.Connection, table: Table, row: tuple[object, ...]) -> str:
    """A single-row write naming its conflict target; the command status."""
    cols = ", ".join(table.columns)
    params = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    status: str = await conn.execute(
        f"INSERT INTO {table.name} ({cols}) VALUES ({params}) "
        f"ON CONFLICT ({', '.join(table.key)}) DO NOTHING",
        *row,
    )
    return status


@TABLES
async def test_idempotent_writes_across_weeks(tsdb: asyncpg.Connection, table: Table) -> None:
    owner = uuid4()
    now: datetime = await tsdb.fetchval("SELECT now()")
    rows = [table.row(owner, now - timedelta(weeks=w, minutes=5), w) for w in range(5)]
    assert await write_idempotent(tsdb, table, rows) == 5
    assert await write_idempotent(tsdb, table, rows) == 0
    assert await write_idempotent(tsdb, table, [*rows, *rows]) == 0
    assert await write_one(tsdb, table, rows[0]) == "INSERT 0 0"
    where = f"WHERE {table.owner} = $1"
    assert await tsdb.fetchval(f"SELECT count(*) FROM {table.name} {where}", owner) == 5
    # one week apart: five chunks of the hypertable, none of them a native partition
    chunks = await tsdb.fetch(
        f"SELECT DISTINCT tableoid::regclass::text FROM {table.name} {where}", owner
    )
    assert len(chunks) == 5
    assert all(c[0].startswith("_timescaledb_internal.") for c in chunks), chunks


@TABLES
async def test_old_chunks_compress(tsdb: asyncpg.Connection, table: Table) -> None:
    owner = uuid4()
    now: datetime = await tsdb.fetchval("SELECT now()")
    old_time = now - timedelta(days=30)
    old = table.row(owner, old_time, 1)
    recent = table.row(owner, now - timedelta(hours=1), 2)
    assert await write_idempotent(tsdb, table, [old, recent]) == 2
    old_chunk: str = await tsdb.fetchval(
        f"SELECT tableoid::regclass::text FROM {table.name} WHERE {table.owner} = $1 AND time = $2",
        owner,
        old[0],
    )

    compressed = await tsdb.fetch(
        "SELECT compress_chunk(c, if_not_compressed => TRUE)::text "
        "FROM show_chunks($1::regclass, older_than => INTERVAL '7 days') c",
        table.name,
    )
    assert old_chunk in [r[0] for r in compressed]
    status = await tsdb.fetch(
        "SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk, is_compressed "
        "FROM timescaledb_information.chunks WHERE hypertable_name = $1",
        table.name,
    )
    by_chunk = {r["chunk"]: r["is_compressed"] for r in status}
    assert by_chunk[old_chunk] is True
    recent_chunk = await tsdb.fetchval(
        f"SELECT tableoid::regclass::text FROM {table.name} WHERE {table.owner} = $1 AND time = $2",
        owner,
        recent[0],
    )
    assert by_chunk[recent_chunk] is False

    # compressed rows stay readable, and a replay into a compressed chunk stores nothing
    rows = await tsdb.fetch(
        f"SELECT time FROM {table.name} WHERE {table.owner} = $1 ORDER BY time", owner
    )
    assert [r["time"] for r in rows] == [old[0], recent[0]]
    assert await write_idempotent(tsdb, table, [old, recent]) == 0
    assert await write_one(tsdb, table, old) == "INSERT 0 0"
    assert (
        await tsdb.fetchval(f"SELECT count(*) FROM {table.name} WHERE {table.owner} = $1", owner)
        == 2
    )
    # a new late row still goes into the compressed chunk
    late = table.row(owner, old_time + timedelta(microseconds=1), 3)
    assert await write_idempotent(tsdb, table, [late]) == 1
    late_chunk = await tsdb.fetchval(
        f"SELECT tableoid::regclass::text FROM {table.name} WHERE {table.owner} = $1 AND time = $2",
        owner,
        late[0],
    )
    assert late_chunk == old_chunk


@TABLES
async def test_policy_jobs_run(tsdb: asyncpg.Connection, table: Table) -> None:
    """The table's policy jobs, run as the scheduler runs them, compress chunks past
    7 days and drop chunks past the table's retention, and no others."""
    owner = uuid4()
    times = await tsdb.fetchrow(
        "SELECT now() - retention - INTERVAL '30 days' AS expired, "
        "now() - retention + INTERVAL '30 days' AS kept, "
        "now() - INTERVAL '60 days' AS to_compress, now() - INTERVAL '2 hours' AS fresh "
        "FROM eriop_partition_policies WHERE parent = $1",
        table.name,
    )
    rows = {name: table.row(owner, t, i) for i, (name, t) in enumerate(times.items())}
    assert await write_idempotent(tsdb, table, list(rows.values())) == len(rows)

    jobs = await tsdb.fetch(
        "SELECT job_id, proc_name FROM timescaledb_information.jobs "
        "WHERE hypertable_name = $1 ORDER BY proc_name",
        table.name,
    )
    assert [r["proc_name"] for r in jobs] == ["policy_compression", "policy_retention"]
    for job in jobs:
        await tsdb.execute("CALL run_job($1)", job["job_id"])

    stored = await tsdb.fetch(
        f"SELECT time, tableoid::regclass::text AS chunk FROM {table.name} "
        f"WHERE {table.owner} = $1",
        owner,
    )
    chunk_of = {r["time"]: r["chunk"] for r in stored}
    assert set(chunk_of) == {rows[k][0] for k in ("kept", "to_compress", "fresh")}
    compressed = {
        r["chunk"]: r["is_compressed"]
        for r in await tsdb.fetch(
            "SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk, is_compressed "
            "FROM timescaledb_information.chunks WHERE hypertable_name = $1",
            table.name,
        )
    }
    assert compressed[chunk_of[rows["to_compress"][0]]] is True
    assert compressed[chunk_of[rows["kept"][0]]] is True
    assert compressed[chunk_of[rows["fresh"][0]]] is False
