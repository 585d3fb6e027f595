"""A crash between the database commit and the publish loses no publish: the
outbox entry committed with the alert is relayed by the next worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from pipeline.devstack import Broker
from schemas.records import RawRecord
from tests.integration.harness import FrozenClock, in_process_runtime, settings_for

pytestmark = pytest.mark.integration


def alert_record(i: int) -> RawRecord:
    body = {"source": "feed", "external_id": f"outbox-{i}", "type": "fire", "title": f"fire {i}"}
    return RawRecord("alerts.json", 0, i, int(datetime.now(UTC).timestamp() * 1000), b"k",
                     json.dumps(body).encode())  # fmt: skip


async def normalized(bootstrap: str) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        "alerts.normalized", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    out = []
    try:
        while batch := await consumer.getmany(timeout_ms=1500):
            out += [json.loads(m.value) for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return out


async def test_committed_alerts_are_published_after_a_crash(
    broker: Broker, fresh_db: str, redis_url: str
) -> None:
    settings = settings_for(broker.bootstrap, fresh_db, redis_url)
    clock = FrozenClock()
    clock.now = datetime.now(UTC)
    async with in_process_runtime(settings, clock) as first:
        # the alert transaction commits; the process dies before the relay runs
        await first.alerts.handle([alert_record(i) for i in range(5)])
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 5
        assert await conn.fetchval("SELECT count(*) FROM alert_outbox") == 5
    finally:
        await conn.close()
    red = aioredis.from_url(redis_url)
    assert await red.xlen("eriop:stream:alerts") == 0

    async with in_process_runtime(settings, clock) as second:
        await second.relay.drain()  # what the worker does at start
    entries = await red.xrange("eriop:stream:alerts")
    ids = sorted(json.loads(e[1][b"alert"])["external_id"] for e in entries)
    assert ids == [f"outbox-{i}" for i in range(5)]
    await red.aclose()
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM alert_outbox") == 0
    finally:
        await conn.close()
    records = await normalized(broker.bootstrap)
    assert sorted(str(r["external_id"]) for r in records) == ids
    assert all(r["event"] == "alert.created" and r["id"] for r in records)
