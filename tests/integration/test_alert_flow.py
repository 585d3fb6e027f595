"""Alerts through a running worker: stored once, published once, nothing lost,
across batches, restarts and crashes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from eriop.dev.stack import Broker
from eriop.traffic import Message, Traffic
from eriop.workerproc import WorkerProcess, worker_env
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def env(broker: Broker, fresh_db: str, redis_url: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return worker_env(
        broker.bootstrap, fresh_db, redis_url,
        ERIOP_KAFKA__ALERTS_GROUP=f"alerts-{tag}", ERIOP_KAFKA__BULK_GROUP=f"bulk-{tag}",
    )  # fmt: skip


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(env, tmp_path).start()
    w.wait_healthy()
    yield w
    w.stop()


def json_alerts(n: int, tag: str) -> list[Message]:
    now = datetime.now(UTC).isoformat()
    return [
        (
            "alerts.json",
            f"k{i % 7}".encode(),
            json.dumps(
                {
                    "source": "test_feed",
                    "external_id": f"{tag}-{i}",
                    "type": "panic",
                    "severity": 1 + i % 5,
                    "title": f"alert {i}",
                    "occurred_at": now,
                }
            ).encode(),
            [],
        )
        for i in range(n)
    ]


async def count_alerts(dsn: str, source: str = "test_feed") -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM alerts WHERE source = $1", source))
    finally:
        await conn.close()


async def test_each_alert_once_in_db_channel_and_stream(
    worker: WorkerProcess, broker: Broker, fresh_db: str, redis_url: str
) -> None:
    red = aioredis.from_url(redis_url)
    sub = red.pubsub()
    await sub.subscribe("eriop.alerts")
    tag = uuid.uuid4().hex[:6]
    batch = json_alerts(300, tag)
    bad = [("alerts.json", b"x", b"{broken", []), ("alerts.alarm", b"x", b"ACK", [])]
    # duplicates in the same produce burst and again after the first copy is stored
    await produce(broker.bootstrap, batch + batch[:50] + bad)

    async def stored() -> bool:
        return await count_alerts(fresh_db) == 300

    await wait_until(stored, what="300 alerts stored")
    await produce(broker.bootstrap, batch[100:200])
    await wait_until(
        lambda: asyncio.sleep(0, worker.metric("eriop_records_total", topic="alerts.json") >= 451),
        what="every record accounted for",
    )
    assert await count_alerts(fresh_db) == 300
    assert worker.metric("eriop_records_total", topic="alerts.json", outcome="duplicate") == 150
    assert worker.metric("eriop_dead_letters_total", error_code="not_json") == 1
    assert worker.metric("eriop_dead_letters_total", error_code="unknown_format") == 1

    seen: list[str] = []

    async def all_published() -> bool:
        while (msg := await sub.get_message(timeout=0.2)) is not None:
            if msg["type"] == "message":
                seen.append(json.loads(msg["data"])["external_id"])
        return len(seen) >= 300

    await wait_until(all_published, what="300 pub/sub messages")
    assert sorted(seen) == sorted(f"{tag}-{i}" for i in range(300))
    entries = await red.xrange("eriop:stream:alerts")
    assert sorted(json.loads(e[1][b"alert"])["external_id"] for e in entries) == sorted(seen)
    await sub.aclose()
    await red.aclose()


async def test_duplicates_across_restart_and_crash_stay_one_row(
    env: dict[str, str], tmp_path: Path, broker: Broker, fresh_db: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    batch = json_alerts(200, tag)
    workers: list[WorkerProcess] = []
    try:
        await _restart_and_crash(env, tmp_path, broker, fresh_db, batch, tag, workers)
    finally:
        for w in workers:
            w.stop()


async def _restart_and_crash(
    env: dict[str, str],
    tmp_path: Path,
    broker: Broker,
    fresh_db: str,
    batch: list[Message],
    tag: str,
    workers: list[WorkerProcess],
) -> None:
    w = WorkerProcess(env, tmp_path, "first").start()
    workers.append(w)
    w.wait_healthy()
    await produce(broker.bootstrap, batch)
    await wait_until(lambda: _eq(count_alerts(fresh_db), 200), what="first 200")
    code, _ = w.stop()
    assert code == 0
    # graceful restart: the same alerts again
    w2 = WorkerProcess(env, tmp_path, "second").start()
    workers.append(w2)
    w2.wait_healthy()
    await produce(broker.bootstrap, batch)
    await wait_until(
        lambda: asyncio.sleep(0, w2.metric("eriop_records_total", topic="alerts.json") >= 200),
        what="replayed copies consumed",
    )
    assert await count_alerts(fresh_db) == 200
    # crash (SIGKILL) with more copies and new alerts in flight
    more = json_alerts(250, tag)
    await produce(broker.bootstrap, more)
    w2.kill()
    w3 = WorkerProcess(env, tmp_path, "third").start()
    workers.append(w3)
    w3.wait_healthy()
    await wait_until(lambda: _eq(count_alerts(fresh_db), 250), what="all 250 after the crash")
    conn = await asyncpg.connect(fresh_db)
    try:
        dup = await conn.fetchval(
            "SELECT count(*) FROM (SELECT source, external_id FROM alerts "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        assert dup == 0
    finally:
        await conn.close()


async def _eq(coro: object, value: int) -> bool:
    return await coro == value  # type: ignore[misc]


async def test_simulated_traffic_of_every_alert_format(
    worker: WorkerProcess, broker: Broker, fresh_db: str
) -> None:
    from eriop.simulate import seed_demo
    from eriop.traffic import Fleet

    fleet = Fleet.demo()
    await seed_demo(fresh_db, fleet)
    t = Traffic(fleet, seed=3)
    now = datetime.now(UTC)
    msgs = (
        [t.alarm(now) for _ in range(20)]
        + [t.cap(now) for _ in range(5)]
        + [t.axis(now) for _ in range(10)]
    )
    await produce(broker.bootstrap, msgs)

    async def consumed() -> bool:
        return worker.metric("eriop_records_total") >= len(msgs)

    await wait_until(consumed, what="all simulated alerts accounted for")
    assert worker.metric("eriop_dead_letters_total") == 0, worker.log()
    conn = await asyncpg.connect(fresh_db)
    try:
        sources = dict(await conn.fetch("SELECT source, count(*) FROM alerts GROUP BY 1"))
    finally:
        await conn.close()
    assert sources.get("cap") == 5
    assert sources.get("alarm_system", 0) > 0
    assert sources.get("axis_mic", 0) > 0
