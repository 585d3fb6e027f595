"""Versioned, idempotent schema migrations (``eriop migrate``).

Each ``migrations/NNNN_name.sql`` runs once, in its own transaction, under an
advisory lock so that two workers starting together cannot race. The applied
version and the file's checksum are recorded; an applied file that has changed
since is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from pipeline.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

_LOCK_KEY = 0x45524F50  # "EROP"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

POSTGIS_HELP = (
    "PostGIS is not available in this PostgreSQL server. Install it and run migrate again: "
    "on Debian/Ubuntu `apt-get install postgresql-15-postgis-3` (match your server's major "
    "version), or run `scripts/setup.sh`, which installs it; with Docker use the "
    "timescale/timescaledb-ha image from docker-compose.yml."
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("pipeline.store.migrations").iterdir():
        m = _NAME_RE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"duplicate migration versions in {versions}")
    return found


@dataclass(frozen=True, slots=True)
class MigrationReport:
    applied: list[str]
    already: list[str]
    timescaledb: bool


async def connect(dsn: str, *, attempts: int = 1) -> asyncpg.Connection:
    """Connect, translating driver errors into the pipeline's own."""
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidCatalogNameError as exc:
        raise ConfigError(
            f"database {urlsplit(dsn).path.lstrip('/')!r} does not exist "
            "(run `eriop migrate --create-db`)"
        ) from exc
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {_safe(dsn)}: {exc}") from exc


def _safe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def create_database(dsn: str) -> bool:
    """Create the DSN's database if it is missing; True when it was created."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    conn = await connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await conn.close()


async def migrate(
    dsn: str, *, progress: Callable[[str], None] = lambda _msg: None
) -> MigrationReport:
    migrations = load_migrations()
    conn = await connect(dsn)
    try:
        await _check_postgis(conn)
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            return await _apply(conn, migrations, progress)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _check_postgis(conn: asyncpg.Connection) -> None:
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'"
    )
    if not available:
        raise ConfigError(POSTGIS_HELP)


async def _apply(
    conn: asyncpg.Connection, migrations: list[Migration], progress: Callable[[str], None]
) -> MigrationReport:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS eriop_schema_migrations (
               version    INTEGER PRIMARY KEY,
               name       TEXT NOT NULL,
               checksum   TEXT NOT NULL,
               applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW())"""
    )
    done = {
        r["version"]: r["checksum"]
        for r in await conn.fetch("SELECT version, checksum FROM eriop_schema_migrations")
    }
    applied: list[str] = []
    already: list[str] = []
    for mig in migrations:
        label = f"{mig.version:04d}_{mig.name}"
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                raise ConfigError(
                    f"migration {label} was applied with different contents; "
                    "write a new migration instead of editing an applied one"
                )
            already.append(label)
            continue
        progress(f"applying {label} ...")
        async with conn.transaction():
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO eriop_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                mig.version,
                mig.name,
                mig.checksum,
            )
        applied.append(label)
    ts = bool(
        await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
    )
    return MigrationReport(applied=applied, already=already, timescaledb=ts)
