"""scripts/backup.sh and scripts/restore.sh: a backup restored into a new database
holds the same rows, and a restore never writes into an existing database."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_ADMIN, dsn_for

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


async def run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, list(args), capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "ERIOP_DATABASE_URL"},
    )  # fmt: skip


async def drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        )
    finally:
        await conn.close()


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """The name of a database the test restores into; dropped afterwards."""
    name = f"eriop_restored_{uuid.uuid4().hex[:8]}"
    yield name
    await drop(name)


async def seed(pg: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    agency = await pg.fetchval(
        "INSERT INTO agencies (name, code, type) VALUES ('Rescue', 'RSC', 'fire') RETURNING id"
    )
    user = await pg.fetchval(
        "INSERT INTO users (email, password_hash, first_name, last_name, agency_id) "
        "VALUES ('d@example.org', 'x', 'Dana', 'D', $1) RETURNING id",
        agency,
    )
    channel = await pg.fetchval(
        "INSERT INTO channels (name, agency_id) VALUES ('ops', $1) RETURNING id", agency
    )
    for i in range(5):
        await pg.execute(
            "INSERT INTO alerts (source, external_id, type, severity, title, location) "
            "VALUES ('test', $1, 'fire', 1, 'Fire', ST_SetSRID(ST_MakePoint(24.9, 60.1), 4326))",
            f"e{i}",
        )
        await pg.execute(
            "INSERT INTO messages (channel_id, sender_id, content) VALUES ($1, $2, $3)",
            channel,
            user,
            f"message {i}",
        )
    for weeks in (0, 1, 3, 30):
        t = now - timedelta(weeks=weeks)
        for parent in ("telemetry", "location_history", "audit_logs"):
            await pg.execute("SELECT eriop_ensure_partition($1, $2)", parent, t)
        for i in range(3):
            await pg.execute(
                "INSERT INTO telemetry (time, device_id, device_type, metric_name, metric_value) "
                "VALUES ($1, gen_random_uuid(), 'probe', 'temp', $2)",
                t + timedelta(seconds=i),
                float(i),
            )
        await pg.execute(
            "INSERT INTO location_history (time, resource_id, resource_type, location) "
            "VALUES ($1, gen_random_uuid(), 'vehicle', 'SRID=4326;POINT(24.9 60.1)')",
            t,
        )
        await pg.execute(
            "INSERT INTO audit_logs (timestamp, action, resource_type, user_id) "
            "VALUES ($1, 'login', 'user', $2)",
            t,
            user,
        )


async def table_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT c.oid::regclass::text AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 1"
        )
        return {
            t["name"]: int(await conn.fetchval(f"SELECT count(*) FROM {t['name']}")) for t in tables
        }
    finally:
        await conn.close()


async def fingerprint(dsn: str, table: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(
            await conn.fetchval(
                f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
            )
        )
    finally:
        await conn.close()


async def test_backup_then_restore_into_a_new_database(
    fresh_db: str, pg: asyncpg.Connection, target: str, tmp_path: Path
) -> None:
    await seed(pg)
    done = await run(str(SCRIPTS / "backup.sh"), "-o", str(tmp_path / "backups"), fresh_db)
    assert done.returncode == 0, done.stderr
    dump = Path(done.stdout.strip())
    assert dump.parent == tmp_path / "backups"
    assert dump.name.startswith(fresh_db.rsplit("/", 1)[1] + "_backup_")
    assert dump.suffix == ".dump"
    mode = await asyncio.to_thread(lambda: stat.S_IMODE(dump.stat().st_mode))
    assert mode == 0o600
    assert "[backup] table " in done.stderr
    assert not await asyncio.to_thread(lambda: list(dump.parent.glob("*.partial")))

    done = await run(str(SCRIPTS / "restore.sh"), str(dump), dsn_for(target))
    assert done.returncode == 0, done.stderr
    assert f"database {target} restored" in done.stderr
    assert "[restore] table data " in done.stderr

    source, restored = await table_counts(fresh_db), await table_counts(dsn_for(target))
    assert restored == source
    assert source["alerts"] == 5
    assert sum(n for t, n in source.items() if t.startswith("telemetry_p")) == 12
    for table in ("alerts", "telemetry", "location_history", "audit_logs", "messages"):
        assert await fingerprint(dsn_for(target), table) == await fingerprint(fresh_db, table)

    conn = await asyncpg.connect(dsn_for(target))
    try:
        # constraints and triggers came back with the rows
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("DELETE FROM audit_logs")
        assert await conn.fetchval("SELECT max(version) FROM eriop_schema_migrations") == (
            await pg.fetchval("SELECT max(version) FROM eriop_schema_migrations")
        )
        await conn.execute(
            "INSERT INTO messages (channel_id, sender_id, content) "
            "SELECT channel_id, sender_id, 'after restore' FROM messages LIMIT 1"
        )
    finally:
        await conn.close()

    # a restore never touches an existing database
    done = await run(str(SCRIPTS / "restore.sh"), str(dump), dsn_for(target))
    assert done.returncode == 1
    assert f"database {target} already exists" in done.stderr
    assert (await table_counts(dsn_for(target)))["messages"] == source["messages"] + 1


async def test_restore_explains_missing_roles_and_bad_archives(
    fresh_db: str, pg: asyncpg.Connection, target: str, tmp_path: Path
) -> None:
    role = f"eriop_reader_{uuid.uuid4().hex[:6]}"
    await pg.execute(f"CREATE ROLE {role} NOLOGIN")
    await pg.execute(f"GRANT SELECT ON alerts TO {role}")
    done = await run(str(SCRIPTS / "backup.sh"), "-q", "-o", str(tmp_path), fresh_db)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    dump = done.stdout.strip()
    await pg.execute(f"DROP OWNED BY {role}")
    await pg.execute(f"DROP ROLE {role}")

    done = await run(str(SCRIPTS / "restore.sh"), dump, dsn_for(target))
    assert done.returncode == 1
    assert f"grants rights to role(s) {role}, which do not exist" in done.stderr
    assert not await exists(target)

    done = await run(str(SCRIPTS / "restore.sh"), "--no-privileges", dump, dsn_for(target))
    assert done.returncode == 0, done.stderr
    assert await exists(target)

    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"not an archive")
    done = await run(str(SCRIPTS / "restore.sh"), str(bad), dsn_for(target + "_x"))
    assert done.returncode == 1
    assert "is not a pg_dump custom-format archive" in done.stderr

    done = await run(str(SCRIPTS / "restore.sh"), dump)
    assert done.returncode == 2
    assert "Usage: scripts/restore.sh" in done.stderr
    done = await run(str(SCRIPTS / "backup.sh"))
    assert done.returncode == 2
    assert "pass a DSN or set ERIOP_DATABASE_URL" in done.stderr
