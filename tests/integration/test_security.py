"""Least privilege, durability checks at start, and secrets kept out of logs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from eriop.dev.stack import Broker, free_port
from eriop.simulate import seed_demo
from eriop.traffic import Fleet, Traffic
from eriop.workerproc import WorkerProcess, worker_env
from pipeline.errors import EXIT_CONFIG, EXIT_UNAVAILABLE
from pipeline.store.durability import durability_problems
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration


async def test_ingest_role_cannot_change_audit_logs_or_drop_tables(pg: asyncpg.Connection) -> None:
    await pg.execute("SET ROLE eriop_ingest")
    await pg.execute("INSERT INTO audit_logs (action, resource_type) VALUES ('ingest', 'alert')")
    for statement in (
        "UPDATE audit_logs SET action = 'x'",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs",
        "DROP TABLE alerts",
        "DROP TABLE telemetry",
        "ALTER TABLE alerts ADD COLUMN x int",
        "UPDATE alerts SET title = 'x'",
        "DELETE FROM alerts",
        "INSERT INTO users (email, password_hash, first_name, last_name) VALUES ('a','b','c','d')",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pg.execute(statement)
    # what ingest needs is allowed
    await pg.execute(
        "INSERT INTO alerts (source, external_id, type, title) VALUES ('t', 'e', 'fire', 't')"
    )
    await pg.execute("UPDATE alerts SET metadata = metadata || '{\"restored_at\": 1}'")
    assert await pg.fetchval("SELECT eriop_ensure_partition('telemetry', '2020-01-08Z')")


@pytest.fixture
async def ingest_login(fresh_db: str) -> str:
    """A login role with only eriop_ingest's rights; its DSN."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eriop_worker_test') "
            "THEN CREATE ROLE eriop_worker_test LOGIN IN ROLE eriop_ingest; END IF; END$$"
        )
    finally:
        await conn.close()
    parts = urlsplit(fresh_db)
    netloc = f"eriop_worker_test@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def test_the_whole_pipeline_runs_as_the_ingest_role(
    broker: Broker, fresh_db: str, ingest_login: str, redis_url: str, tmp_path: Path
) -> None:
    fleet = Fleet.demo(vehicles=2, cameras=1)
    await seed_demo(fresh_db, fleet)
    t = Traffic(fleet, seed=2, devices=3)
    now = datetime.now(UTC)
    msgs = [t.alarm(now), t.json_alert(now), t.cap(now), t.axis(now)]
    msgs += [t.telemetry(now), t.gps(now), ("alerts.json", b"k", b"{bad", [])]
    w = WorkerProcess(worker_env(broker.bootstrap, ingest_login, redis_url), tmp_path).start()
    try:
        w.wait_healthy()
        await produce(broker.bootstrap, msgs)

        async def all_done() -> bool:
            return w.metric("eriop_records_total") >= len(msgs)

        await wait_until(all_done, what="every record accounted for")
        assert w.metric("eriop_dead_letters_total") == 1, w.log()
        assert w.metric("eriop_dead_letters_total", error_code="not_json") == 1
        conn = await asyncpg.connect(fresh_db)
        try:
            assert await conn.fetchval("SELECT count(*) FROM alerts") >= 3
            assert await conn.fetchval("SELECT count(*) FROM telemetry") >= 1
            assert await conn.fetchval("SELECT count(*) FROM location_history") == 1
        finally:
            await conn.close()
        assert "permission denied" not in w.log()
    finally:
        w.stop()


def test_durability_rules() -> None:
    assert durability_problems("on", "on") == []
    assert durability_problems("on", "remote_apply") == []
    assert durability_problems("off", "on") == ["fsync is off"]
    assert durability_problems("on", "off") == ["synchronous_commit is off"]


async def test_worker_refuses_a_database_that_may_lose_commits(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    name = urlsplit(fresh_db).path.lstrip("/")
    conn = await asyncpg.connect(fresh_db)
    await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    await conn.close()
    env = worker_env(broker.bootstrap, fresh_db, redis_url)
    w = WorkerProcess(env, tmp_path, "refused").start("--wait", "5")
    assert w.proc is not None
    assert w.proc.wait(60) == EXIT_CONFIG
    assert "synchronous_commit is off" in w.log()
    assert "Traceback" not in w.log()
    w2 = WorkerProcess({**env, "ERIOP_ALLOW_UNSAFE_DATABASE": "true"}, tmp_path, "allowed").start()
    try:
        w2.wait_healthy()
        assert "UNSAFE DATABASE: synchronous_commit is off" in w2.log()
    finally:
        w2.stop()


async def test_secrets_never_reach_logs_or_metrics(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    secret = f"S3cret-{uuid.uuid4().hex}"
    dead_pg = f"postgresql://eriop:{secret}@127.0.0.1:{free_port()}/eriop"
    env = worker_env(broker.bootstrap, dead_pg, redis_url, ERIOP_KAFKA__SASL_PASSWORD=secret)
    w = WorkerProcess(env, tmp_path, "secret").start("--wait", "3")
    assert w.proc is not None
    assert w.proc.wait(60) == EXIT_UNAVAILABLE
    assert secret not in w.log_path.read_text()
    # a running worker with a password in its Redis URL and Kafka settings
    parts = urlsplit(fresh_db)
    env = worker_env(broker.bootstrap, fresh_db, redis_url, ERIOP_KAFKA__SASL_PASSWORD=secret)
    w2 = WorkerProcess(env, tmp_path, "running").start()
    try:
        w2.wait_healthy()
        await produce(broker.bootstrap, [("alerts.json", b"k", json.dumps({"x": 1}).encode(), [])])
        await wait_until(
            lambda: _ge(w2.metric("eriop_dead_letters_total"), 1), what="a dead letter"
        )
        _, metrics_body = w2.get("/metrics")
        _, health_body = w2.get("/health")
        assert secret not in metrics_body.decode()
        assert secret not in health_body.decode()
        assert secret not in w2.log_path.read_text()
        assert parts.path
    finally:
        w2.stop()


async def _ge(value: float, target: float) -> bool:
    return value >= target
