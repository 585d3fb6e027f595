"""Data retention: expired partitions archived or dropped, old messages archived,
the audit archive purged after seven years, partitions kept ahead of the clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from pipeline import metrics
from pipeline.clients.postgres import Database
from pipeline.store.retention import RetentionJob, run_retention

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)


def retention_rows(table: str, action: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "eriop_retention_rows_total", {"table": table, "action": action}
    )
    return value or 0.0


async def partition_of(pg: asyncpg.Connection, parent: str, t: datetime) -> str:
    name = await pg.fetchval("SELECT eriop_ensure_partition($1, $2)", parent, t)
    assert name
    return str(name)


async def add_telemetry(pg: asyncpg.Connection, t: datetime, n: int) -> str:
    name = await partition_of(pg, "telemetry", t)
    for i in range(n):
        await pg.execute(
            "INSERT INTO telemetry (time, device_id, device_type, metric_name, metric_value) "
            "VALUES ($1, gen_random_uuid(), 'probe', 'temp', $2)",
            t + timedelta(seconds=i),
            float(i),
        )
    return name


async def add_positions(pg: asyncpg.Connection, t: datetime, n: int) -> str:
    name = await partition_of(pg, "location_history", t)
    for i in range(n):
        await pg.execute(
            "INSERT INTO location_history (time, resource_id, resource_type, location) "
            "VALUES ($1, gen_random_uuid(), 'vehicle', 'SRID=4326;POINT(24.9 60.1)')",
            t + timedelta(seconds=i),
        )
    return name


async def add_audit(pg: asyncpg.Connection, t: datetime, n: int) -> str:
    name = await partition_of(pg, "audit_logs", t)
    for i in range(n):
        await pg.execute(
            "INSERT INTO audit_logs (timestamp, action, resource_type, resource_id, new_values) "
            "VALUES ($1, 'update', 'incident', $2, '{\"status\": \"closed\"}')",
            t + timedelta(seconds=i),
            f"inc-{i}",
        )
    return name


async def add_message(
    pg: asyncpg.Connection, channel: object, user: object, t: datetime, reply_to: object = None
) -> uuid.UUID:
    mid = uuid.uuid4()
    await pg.execute(
        "INSERT INTO messages (id, channel_id, sender_id, content, reply_to, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        mid,
        channel,
        user,
        f"message at {t.isoformat()}",
        reply_to,
        t,
    )
    return mid


async def chat(pg: asyncpg.Connection) -> tuple[object, object]:
    agency = await pg.fetchval(
        "INSERT INTO agencies (name, code, type) VALUES ('Rescue', 'RSC', 'fire') RETURNING id"
    )
    user = await pg.fetchval(
        "INSERT INTO users (email, password_hash, first_name, last_name, agency_id) "
        "VALUES ('d@example.org', 'x', 'Dana', 'Dispatcher', $1) RETURNING id",
        agency,
    )
    channel = await pg.fetchval(
        "INSERT INTO channels (name, agency_id, created_by) VALUES ('ops', $1, $2) RETURNING id",
        agency,
        user,
    )
    return channel, user


async def children(pg: asyncpg.Connection, parent: str) -> set[str]:
    rows = await pg.fetch(
        "SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = $1::regclass",
        parent,
    )
    return {r["name"] for r in rows}


async def count(pg: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await pg.fetchval(sql, *args))


async def test_retention_archives_drops_purges_and_keeps_partitions_ahead(
    pg: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    ts_cut = await pg.fetchval("SELECT now() - interval '2 years'")
    gps_cut = await pg.fetchval("SELECT now() - interval '1 year'")

    old_ts = {
        await add_telemetry(pg, ts_cut - 40 * DAY, 3),
        await add_telemetry(pg, ts_cut - 90 * DAY, 2),
    }
    kept_ts = {await add_telemetry(pg, ts_cut + 20 * DAY, 4), await add_telemetry(pg, now, 1)}
    # the week holding the cut-off is not entirely expired: it stays
    kept_ts.add(await add_telemetry(pg, ts_cut + timedelta(minutes=1), 1))
    old_gps = {await add_positions(pg, gps_cut - 30 * DAY, 4)}
    kept_gps = {await add_positions(pg, gps_cut + 30 * DAY, 2), await add_positions(pg, now, 1)}
    old_audit = {
        await add_audit(pg, gps_cut - 70 * DAY, 3),
        await add_audit(pg, gps_cut - 120 * DAY, 2),
    }
    kept_audit = {await add_audit(pg, gps_cut + 40 * DAY, 2), await add_audit(pg, now, 1)}
    assert old_ts.isdisjoint(kept_ts)
    assert old_audit.isdisjoint(kept_audit)

    # the archive already holds rows from earlier years: past seven years they go
    for years, n in ((7.2, 2), (6.5, 1)):
        for i in range(n):
            await pg.execute(
                "INSERT INTO audit_logs_archive (id, timestamp, action, resource_type) "
                "VALUES ($1, $2, 'login', 'user')",
                900_000 + int(years * 10) * 10 + i,
                now - timedelta(days=365.25 * years),
            )

    channel, user = await chat(pg)
    old_msgs = {await add_message(pg, channel, user, ts_cut - 10 * DAY)}
    chain_root = await add_message(pg, channel, user, ts_cut - 30 * DAY)
    old_msgs |= {chain_root, await add_message(pg, channel, user, ts_cut - 20 * DAY, chain_root)}
    # an old message a recent one still replies to (through an old reply) stays
    pinned_root = await add_message(pg, channel, user, ts_cut - 50 * DAY)
    pinned_mid = await add_message(pg, channel, user, ts_cut - 40 * DAY, pinned_root)
    recent_reply = await add_message(pg, channel, user, now - 5 * DAY, pinned_mid)
    kept_msgs = {pinned_root, pinned_mid, recent_reply}
    kept_msgs.add(await add_message(pg, channel, user, ts_cut + 10 * DAY))

    # a partition ahead of the clock that has gone missing is created again
    ahead = await partition_of(pg, "telemetry", now + 14 * DAY)
    await pg.execute(f"ALTER TABLE telemetry DETACH PARTITION {ahead}")
    await pg.execute(f"DROP TABLE {ahead}")

    old_audit_rows = await pg.fetch(
        "SELECT id, timestamp, action, resource_id, new_values FROM audit_logs "
        "WHERE timestamp < $1 ORDER BY id",
        gps_cut - 60 * DAY,
    )
    before_metrics = {
        ("telemetry", "dropped"): retention_rows("telemetry", "dropped"),
        ("location_history", "dropped"): retention_rows("location_history", "dropped"),
        ("audit_logs", "archived"): retention_rows("audit_logs", "archived"),
        ("messages", "archived"): retention_rows("messages", "archived"),
        ("audit_logs_archive", "purged"): retention_rows("audit_logs_archive", "purged"),
    }

    report = await run_retention(pg, datetime.now(UTC))

    assert set(report.dropped_partitions) == old_ts | old_gps | old_audit
    assert report.dropped == {"telemetry": 5, "location_history": 4}
    assert report.archived == {"audit_logs": 5, "messages": 3}
    assert report.purged == {"audit_logs_archive": 2}
    assert report.created_partitions >= 1
    assert ahead in await children(pg, "telemetry")
    after_metrics = {key: retention_rows(*key) for key in before_metrics}
    assert {k: after_metrics[k] - v for k, v in before_metrics.items()} == {
        ("telemetry", "dropped"): 5,
        ("location_history", "dropped"): 4,
        ("audit_logs", "archived"): 5,
        ("messages", "archived"): 3,
        ("audit_logs_archive", "purged"): 2,
    }

    # expired partitions are gone, the others and their rows are untouched
    assert (await children(pg, "telemetry")).isdisjoint(old_ts)
    assert kept_ts <= await children(pg, "telemetry")
    assert (await children(pg, "location_history")).isdisjoint(old_gps)
    assert kept_gps <= await children(pg, "location_history")
    assert (await children(pg, "audit_logs")).isdisjoint(old_audit)
    assert kept_audit <= await children(pg, "audit_logs")
    assert await count(pg, "SELECT count(*) FROM telemetry") == 6
    assert await count(pg, "SELECT count(*) FROM location_history") == 3
    assert await count(pg, "SELECT count(*) FROM audit_logs") == 3

    # archived audit rows are the same rows, and the seven-year purge kept the younger one
    archived = await pg.fetch(
        "SELECT id, timestamp, action, resource_id, new_values FROM audit_logs_archive "
        "WHERE id < 900000 ORDER BY id"
    )
    assert [tuple(r) for r in archived] == [tuple(r) for r in old_audit_rows]
    assert len(archived) == 5
    assert await count(pg, "SELECT count(*) FROM audit_logs_archive WHERE id >= 900000") == 1

    # messages: moved with equal counts, pinned chain and recent ones kept
    assert {r["id"] for r in await pg.fetch("SELECT id FROM messages_archive")} == old_msgs
    assert {r["id"] for r in await pg.fetch("SELECT id FROM messages")} == kept_msgs

    # audit_logs is still append-only
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pg.execute("UPDATE audit_logs SET action = 'x'")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pg.execute("DELETE FROM audit_logs")

    # a second run finds nothing to do and changes nothing
    again = await run_retention(pg, datetime.now(UTC))
    assert not again.changed
    assert again.created_partitions == 0
    assert await count(pg, "SELECT count(*) FROM audit_logs_archive") == 6
    assert await count(pg, "SELECT count(*) FROM messages_archive") == 3
    assert await count(pg, "SELECT count(*) FROM telemetry") == 6


async def test_a_caller_cannot_move_the_cutoff_past_the_database_clock(
    pg: asyncpg.Connection,
) -> None:
    recent = await add_telemetry(pg, datetime.now(UTC) - 30 * DAY, 2)
    report = await run_retention(pg, datetime.now(UTC) + timedelta(days=3 * 365))
    assert report.dropped_partitions == []
    assert recent in await children(pg, "telemetry")
    assert await count(pg, "SELECT count(*) FROM telemetry") == 2


@pytest.fixture
async def ingest_role_dsn(fresh_db: str) -> str:
    """A login role with only the worker's least-privilege rights; its DSN."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eriop_retention_test')"
            " THEN CREATE ROLE eriop_retention_test LOGIN IN ROLE eriop_ingest; END IF; END$$"
        )
    finally:
        await conn.close()
    parts = urlsplit(fresh_db)
    netloc = f"eriop_retention_test@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def test_the_job_runs_under_the_ingest_role(
    pg: asyncpg.Connection, ingest_role_dsn: str
) -> None:
    cut = await pg.fetchval("SELECT now() - interval '1 year'")
    old = await add_audit(pg, cut - 60 * DAY, 2)
    old_gps = await add_positions(pg, cut - 60 * DAY, 1)
    db = Database(ingest_role_dsn)
    await db.start()
    job = RetentionJob(db, interval_s=3600)
    try:
        report = await job.run_once()
        assert job.last_error is None
        assert report is not None
        assert set(report.dropped_partitions) == {old, old_gps}
        assert report.archived == {"audit_logs": 2}
        # the role itself still may not remove anything
        async with db.connection() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM audit_logs_archive")
        # started, the job runs at once in the background and stops on close
        await job.start()
        await job.close()
    finally:
        await db.close()
    assert await count(pg, "SELECT count(*) FROM audit_logs_archive") == 2
    assert old not in await children(pg, "audit_logs")


async def test_a_busy_partition_waits_for_the_next_run(
    pg: asyncpg.Connection, fresh_db: str
) -> None:
    ts_cut = await pg.fetchval("SELECT now() - interval '2 years'")
    gps_cut = await pg.fetchval("SELECT now() - interval '1 year'")
    busy = await add_telemetry(pg, ts_cut - 40 * DAY, 2)
    free = await add_positions(pg, gps_cut - 40 * DAY, 1)
    writer = await asyncpg.connect(fresh_db)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute(f"LOCK TABLE {busy} IN ROW EXCLUSIVE MODE")
        report = await run_retention(pg, datetime.now(UTC))
        await tx.rollback()
    finally:
        await writer.close()
    assert report.postponed == [busy]
    assert report.dropped_partitions == [free]
    assert busy in await children(pg, "telemetry")

    again = await run_retention(pg, datetime.now(UTC))
    assert again.dropped_partitions == [busy]
    assert again.dropped == {"telemetry": 2}
    assert again.postponed == []
