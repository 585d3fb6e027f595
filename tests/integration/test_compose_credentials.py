"""The credentials the compose stack gives its services, against the real services:
the login roles deploy/postgres/login-roles.sh makes from the services' database URLs,
and the Redis users of the ACL file scripts/compose-secrets.sh writes; the worker runs
with both and stores and publishes an alert."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from eriop.dev.stack import Broker, free_port, wait_port
from eriop.simulate import seed_demo
from eriop.traffic import Fleet, Traffic
from eriop.workerproc import WorkerProcess, worker_env
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOGIN_ROLES = REPO / "deploy" / "postgres" / "login-roles.sh"
SECRETS_SCRIPT = REPO / "scripts" / "compose-secrets.sh"


def _login_roles(dsn: str, *url_files: Path) -> subprocess.CompletedProcess[str]:
    """login-roles.sh as db-roles runs it: the owner from the libpq variables."""
    parts = urlsplit(dsn)
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or os.environ.get("USER", "root"),
        "PGDATABASE": parts.path.lstrip("/"),
    }
    return subprocess.run(
        ["bash", str(LOGIN_ROLES), *map(str, url_files)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _url_file(tmp_path: Path, dsn: str, role: str, password: str) -> Path:
    parts = urlsplit(dsn)
    netloc = f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"
    path = tmp_path / f"{role}_database_url"
    path.write_text(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    return path


@pytest.fixture
async def login_role(fresh_db: str, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A role name of this test's own (roles are global to the cluster) and its URL file."""
    role = f"eriop_t{uuid.uuid4().hex[:8]}_worker"
    yield role, _url_file(tmp_path, fresh_db, role, uuid.uuid4().hex)
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    except asyncpg.UndefinedObjectError:
        pass
    finally:
        await conn.close()


async def test_login_roles_are_members_of_eriop_ingest_and_nothing_more(
    fresh_db: str, login_role: tuple[str, Path]
) -> None:
    role, url_file = login_role
    for _ in range(2):  # idempotent: db-roles runs at every `docker compose up`
        result = _login_roles(fresh_db, url_file)
        assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(fresh_db)
    try:
        row = await conn.fetchrow(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolpassword "
            "FROM pg_authid WHERE rolname = $1",
            role,
        )
        assert row is not None
        assert row["rolcanlogin"]
        assert row["rolinherit"]
        assert not row["rolsuper"]
        assert not row["rolcreatedb"]
        assert not row["rolcreaterole"]
        assert row["rolpassword"].startswith("SCRAM-SHA-256$")
        member_of = await conn.fetch(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1",
            role,
        )
        assert [r["rolname"] for r in member_of] == ["eriop_ingest"]
    finally:
        await conn.close()

    as_role = await asyncpg.connect(url_file.read_text())
    try:
        assert await as_role.fetchval("SELECT current_user") == role
        await as_role.execute(
            "INSERT INTO alerts (source, external_id, type, title) VALUES ('t', 'e', 'fire', 't')"
        )
        for statement in (
            "DROP TABLE alerts",
            "CREATE TABLE x (id int)",
            "DELETE FROM alerts",
            "UPDATE audit_logs SET action = 'x'",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await as_role.execute(statement)
    finally:
        await as_role.close()


async def test_login_roles_refuses_the_owner_and_urls_without_a_password(
    fresh_db: str, tmp_path: Path
) -> None:
    owner = urlsplit(fresh_db).username or os.environ.get("USER", "root")
    for name, url_file in (
        ("owner", _url_file(tmp_path, fresh_db, owner, "x")),
        ("ingest", _url_file(tmp_path, fresh_db, "eriop_ingest", "x")),
        ("not eriop_", _url_file(tmp_path, fresh_db, "worker", "x")),
    ):
        result = _login_roles(fresh_db, url_file)
        assert result.returncode == 2, name
        assert "must be eriop_<name>" in result.stderr, name
    bare = tmp_path / "bare_url"
    parts = urlsplit(fresh_db)
    bare.write_text(f"postgresql://eriop_t_nopass@{parts.hostname}{parts.path}")
    result = _login_roles(fresh_db, bare)
    assert result.returncode == 2
    assert "no password" in result.stderr


@pytest.fixture
def compose_secrets(tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "secrets"
    subprocess.run(["bash", str(SECRETS_SCRIPT), str(out)], check=True, capture_output=True)
    return {path.name: path.read_text() for path in out.iterdir()}


@pytest.fixture
def acl_redis(tmp_path: Path, compose_secrets: dict[str, str]) -> Iterator[int]:
    """A Redis server with the users of secrets/redis_acl, as the compose stack runs it."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is missing: run scripts/setup.sh")
    acl = tmp_path / "redis_acl"
    acl.write_text(compose_secrets["redis_acl"])
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log"),
         "--aclfile", str(acl)],
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, 15, "the ACL Redis")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _redis(port: int, user: str | None = None, password: str | None = None) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=port, username=user, password=password)


async def test_redis_users_of_the_acl_file(acl_redis: int, compose_secrets: dict[str, str]) -> None:
    url = urlsplit(compose_secrets["redis_url"])
    assert url.username == "eriop"
    anonymous = _redis(acl_redis)
    service = _redis(acl_redis, "eriop", url.password)
    console = _redis(acl_redis, "console", compose_secrets["redis_console_password"])
    health = _redis(acl_redis, "healthcheck", compose_secrets["redis_health_password"])
    try:
        with pytest.raises((AuthenticationError, ResponseError)):
            await anonymous.ping()
        with pytest.raises(AuthenticationError):
            await _redis(acl_redis, "eriop", "wrong").ping()

        await service.set("eriop:resource:1", "x")
        await service.xadd("eriop:stream:alerts", {"a": "1"})
        await service.publish("eriop.alerts", "{}")
        with pytest.raises(NoPermissionError):
            await service.config_get("dir")

        assert await console.get("eriop:resource:1") == b"x"
        assert await console.xrange("eriop:stream:alerts")
        pubsub = console.pubsub()
        await pubsub.subscribe("eriop.alerts")
        await pubsub.aclose()
        for denied in (console.set("eriop:resource:1", "y"), console.get("other")):
            with pytest.raises(NoPermissionError):
                await denied

        assert await health.ping()
        with pytest.raises(NoPermissionError):
            await health.get("eriop:resource:1")
    finally:
        for client in (anonymous, service, console, health):
            await client.aclose()

    # the compose health check: the password through REDISCLI_AUTH, not the command line
    assert _redis_cli_ping(acl_redis, compose_secrets["redis_health_password"]) == "PONG"


def _redis_cli_ping(port: int, password: str) -> str:
    check = subprocess.run(
        ["redis-cli", "-p", str(port), "--user", "healthcheck", "ping"],
        env={**os.environ, "REDISCLI_AUTH": password},
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return check.stdout.strip() + check.stderr.strip()


async def test_the_worker_runs_with_the_compose_credentials(
    broker: Broker,
    fresh_db: str,
    login_role: tuple[str, Path],
    acl_redis: int,
    compose_secrets: dict[str, str],
    tmp_path: Path,
) -> None:
    _, url_file = login_role
    assert _login_roles(fresh_db, url_file).returncode == 0
    redis_password = urlsplit(compose_secrets["redis_url"]).password
    redis_url = f"redis://eriop:{redis_password}@127.0.0.1:{acl_redis}/0"
    fleet = Fleet.demo(vehicles=1, cameras=1)
    await seed_demo(fresh_db, fleet)
    traffic = Traffic(fleet, seed=3, devices=2)
    now = datetime.now(UTC)
    messages = [traffic.json_alert(now), traffic.gps(now)]
    w = WorkerProcess(worker_env(broker.bootstrap, url_file.read_text(), redis_url), tmp_path)
    w.start()
    try:
        w.wait_healthy()
        await produce(broker.bootstrap, messages)

        async def stored() -> bool:
            return w.metric("eriop_records_total", outcome="stored") >= len(messages)

        await wait_until(stored, what="both records stored")
        console = _redis(acl_redis, "console", compose_secrets["redis_console_password"])
        try:

            async def published() -> bool:
                return bool(await console.xrange("eriop:stream:alerts"))

            await wait_until(published, what="the alert on the stream, read as console")
        finally:
            await console.aclose()
        assert "permission denied" not in w.log().lower()
        assert "NOPERM" not in w.log()
    finally:
        w.stop()
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 1
    finally:
        await conn.close()
