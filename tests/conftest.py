"""Shared fixtures: real services for integration tests.

The broker is a Tansu process started for the session on a free port; each test
that needs PostgreSQL gets a fresh database cloned from a migrated template;
Redis tests use a dedicated logical database that is flushed first. Services
that are down are started (never skipped): scripts/setup.sh installs them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from eriop.dev import stack as devstack
from pipeline.store.migrate import create_database, migrate

# The sample files' helpers live in tests/samples.py; importers of these names from
# conftest (the integration harness, the decoder properties) keep working.
from tests.samples import load_fixtures as load_fixtures
from tests.samples import load_samples as load_samples

PG_ADMIN = os.environ.get("ERIOP_TEST_PG", "postgresql://127.0.0.1:5432/postgres")


def dsn_for(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[devstack.Broker]:
    """A broker of the test's own: topics and groups start empty every time."""
    b = devstack.Broker(devstack.free_port()).start(str(tmp_path / "broker.log"))
    yield b
    b.stop()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    devstack.ensure_postgres(PG_ADMIN)
    name = f"eriop_tmpl_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(dsn_for(name)))
    asyncio.run(migrate(dsn_for(name)))
    yield name
    asyncio.run(_drop(name))


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _clone(template: str) -> str:
    name = f"eriop_t_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


@pytest.fixture
async def fresh_db(pg_template: str) -> AsyncIterator[str]:
    """A migrated, empty database for one test; its DSN."""
    name = await _clone(pg_template)
    yield dsn_for(name)
    await _drop(name)


@pytest.fixture
async def pg(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_db)
    yield conn
    await conn.close()


@pytest.fixture
async def redis_url(redis_server: str) -> str:
    """An empty Redis database for one test."""
    client = aioredis.from_url(redis_server)
    await client.flushall()
    await client.aclose()
    return redis_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of the test session's own: pub/sub channels are global to a
    server, so a shared one would mix other programs' messages into assertions."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is missing: run scripts/setup.sh")
    port = devstack.free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    devstack.wait_port("127.0.0.1", port, 15, "the test Redis")
    devstack.ensure_redis(url)
    yield url
    proc.terminate()
    proc.wait(10)
