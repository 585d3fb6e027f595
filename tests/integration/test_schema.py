"""The migrated schema against the ERIOP database design (docs/database-design.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from pipeline.store.migrate import migrate

DESIGN = (Path(__file__).parents[2] / "docs" / "database-design.md").read_text("utf-8")

DESIGN_TABLES = sorted(set(re.findall(r"CREATE TABLE (\w+)", DESIGN)))
DESIGN_INDEXES = sorted(set(re.findall(r"CREATE INDEX (\w+)", DESIGN)))
IMPLIED_TABLES = [
    "roles", "permissions", "role_permissions", "user_roles", "units", "channels",
    "assignments", "audit_logs_archive", "messages_archive",
]  # fmt: skip


def design_columns(table: str) -> list[str]:
    body = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", DESIGN, re.S)
    assert body, table
    cols = []
    for line in body.group(1).splitlines():
        m = re.match(r"\s{4}([a-z_]+)\s+[A-Z]", line)
        if m and m.group(1) != "constraint":
            cols.append(m.group(1))
    return cols


def test_design_is_parsed() -> None:
    assert len(DESIGN_TABLES) == 9
    assert "idx_alerts_external" in DESIGN_INDEXES
    assert "idx_incidents_list" in DESIGN_INDEXES


async def test_every_design_table_and_column_exists(pg: asyncpg.Connection) -> None:
    for table in DESIGN_TABLES + IMPLIED_TABLES:
        cols = {
            r["column_name"]
            for r in await pg.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
            )
        }
        assert cols, f"table {table} missing"
        if table in DESIGN_TABLES:
            missing = set(design_columns(table)) - cols
            assert not missing, f"{table} lacks {missing}"


async def test_every_design_index_exists(pg: asyncpg.Connection) -> None:
    names = {
        r["relname"]
        for r in await pg.fetch("SELECT relname FROM pg_class WHERE relkind IN ('i','I')")
    }
    missing = set(DESIGN_INDEXES) - names
    assert not missing


async def test_dedup_keys_are_unique(pg: asyncpg.Connection) -> None:
    unique = await pg.fetchval(
        "SELECT indisunique FROM pg_index WHERE indexrelid = 'idx_alerts_external'::regclass"
    )
    assert unique
    for table, cols in (
        ("telemetry", ["device_id", "metric_name", "time"]),
        ("location_history", ["resource_id", "time"]),
    ):
        defs = await pg.fetch(
            "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'u'",
            table,
        )
        assert any(d["d"].replace('"', "") == f"UNIQUE ({', '.join(cols)})" for d in defs), defs


async def test_partial_and_covering_indexes(pg: asyncpg.Connection) -> None:
    active = await pg.fetchval("SELECT pg_get_indexdef('idx_incidents_active'::regclass)")
    assert "WHERE" in active
    assert "closed" in active
    listing = await pg.fetchval("SELECT pg_get_indexdef('idx_incidents_list'::regclass)")
    assert "INCLUDE (incident_number, title, priority)" in listing


async def test_geography_columns(pg: asyncpg.Connection) -> None:
    rows = await pg.fetch(
        "SELECT f_table_name, f_geography_column, type, srid FROM geography_columns"
    )
    got = {(r["f_table_name"], r["f_geography_column"]): (r["type"], r["srid"]) for r in rows}
    for key in [
        ("incidents", "location"), ("resources", "current_location"), ("alerts", "location"),
        ("telemetry", "location"), ("location_history", "location"),
    ]:  # fmt: skip
        assert got[key] == ("Point", 4326), key


async def test_migrate_twice_changes_nothing(fresh_db: str, pg: asyncpg.Connection) -> None:
    async def snapshot() -> list[tuple[object, ...]]:
        rows = await pg.fetch(
            "SELECT c.relname, c.relkind, pg_get_indexdef(c.oid) AS def FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "ORDER BY c.relname"
        )
        return [tuple(r) for r in rows]

    before = await snapshot()
    report = await migrate(fresh_db)
    assert report.applied == []
    assert len(report.already) >= 4
    assert await snapshot() == before


async def test_audit_logs_are_append_only(pg: asyncpg.Connection) -> None:
    await pg.execute(
        "INSERT INTO audit_logs (action, resource_type, timestamp) VALUES ('login', 'user', now())"
    )
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pg.execute("UPDATE audit_logs SET action = 'x'")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pg.execute("DELETE FROM audit_logs")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pg.execute("TRUNCATE audit_logs")
    assert await pg.fetchval("SELECT count(*) FROM audit_logs") == 1


async def test_audit_logs_partitioned_by_month(pg: asyncpg.Connection) -> None:
    assert (
        await pg.fetchval(
            "SELECT partstrat::text FROM pg_partitioned_table "
            "WHERE partrelid = 'audit_logs'::regclass"
        )
        == "r"
    )
    t = datetime(2024, 2, 10, tzinfo=UTC)
    name = await pg.fetchval("SELECT eriop_ensure_partition('audit_logs', $1)", t)
    assert name == "audit_logs_p20240201"
    await pg.execute(
        "INSERT INTO audit_logs (action, resource_type, timestamp) VALUES ('x', 'y', $1)", t
    )
    assert await pg.fetchval("SELECT count(*) FROM audit_logs_p20240201") == 1


async def test_timeseries_rows_across_partitions(pg: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    times = [now - timedelta(days=d) for d in (0, 8, 15, 40)]
    for t in times:
        await pg.execute("SELECT eriop_ensure_partition('telemetry', $1)", t)
        await pg.execute("SELECT eriop_ensure_partition('location_history', $1)", t)
        await pg.execute(
            "INSERT INTO telemetry (time, device_id, device_type, metric_name, metric_value) "
            "VALUES ($1, gen_random_uuid(), 'probe', 'temp', 1.0)",
            t,
        )
        await pg.execute(
            "INSERT INTO location_history (time, resource_id, resource_type, location) "
            "VALUES ($1, gen_random_uuid(), 'vehicle', 'SRID=4326;POINT(24.9 60.1)')",
            t,
        )
    for table in ("telemetry", "location_history"):
        parts = await pg.fetchval("SELECT count(DISTINCT tableoid) FROM " + table)
        assert parts == 4
        # ingest writes only into partitions that exist: a missing range is refused
        assert (
            await pg.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass", table
            )
            >= 4
        )
    with pytest.raises(asyncpg.PostgresError, match="no partition"):
        await pg.execute(
            "INSERT INTO telemetry (time, device_id, device_type, metric_name) "
            "VALUES ('1990-01-01Z', gen_random_uuid(), 'x', 'y')"
        )


async def test_missing_postgis_is_explained() -> None:
    """A server without PostGIS gets one clear error naming the package to install."""
    from pipeline.errors import ConfigError
    from pipeline.store import migrate as m

    class NoPostgis:
        async def fetchval(self, query: str) -> int:
            assert "pg_available_extensions" in query
            return 0

    with pytest.raises(ConfigError) as info:
        await m._check_postgis(NoPostgis())  # type: ignore[arg-type]
    assert "apt-get install postgresql-15-postgis-3" in info.value.reason


async def test_partitions_ahead_cover_the_whole_horizon(pg: asyncpg.Connection) -> None:
    await pg.execute("SELECT eriop_ensure_partitions_around_now('1 day', '28 days')")
    for table in ("telemetry", "location_history"):
        for days in range(0, 29):
            covered = await pg.fetchval(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = $1::regclass AND c.relname = $1 || '_p' || "
                "to_char(date_trunc('week', (now() + make_interval(days => $2)) "
                "AT TIME ZONE 'UTC'), 'YYYYMMDD')",
                table,
                days,
            )
            assert covered == 1, (table, days)
