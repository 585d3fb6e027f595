"""A crash between the database commit and the publish loses no publish: the
outbox entry committed with the alert is relayed by the next worker. A running
relay publishes what it is handed at once, and what no process holds (a crashed
worker's entries, entries past its in-memory bound) once they are stale."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from eriop.dev.stack import Broker
from pipeline import metrics
from pipeline.flows.common import next_offsets
from pipeline.settings import Settings
from pipeline.sinks.outbox import OutboxRelay
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


async def crash_after_commit(settings: Settings, clock: FrozenClock, count: int) -> None:
    """A worker stores ``count`` alerts and dies before its relay publishes them."""
    async with in_process_runtime(settings, clock) as crashed:
        await crashed.alerts.handle([alert_record(i) for i in range(count)])


async def test_committed_alerts_are_published_after_a_crash(
    broker: Broker, fresh_db: str, redis_url: str
) -> None:
    settings = settings_for(broker.bootstrap, fresh_db, redis_url)
    clock = FrozenClock()
    clock.now = datetime.now(UTC)
    await crash_after_commit(settings, clock, 5)
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


async def _stream_ids(red: aioredis.Redis) -> list[str]:
    return [
        json.loads(e[1][b"alert"])["external_id"] for e in await red.xrange("eriop:stream:alerts")
    ]


async def test_running_relay_publishes_handed_entries_at_once_and_the_rest_when_stale(
    broker: Broker, fresh_db: str, redis_url: str
) -> None:
    settings = settings_for(broker.bootstrap, fresh_db, redis_url)
    clock = FrozenClock()
    clock.now = datetime.now(UTC)
    await crash_after_commit(settings, clock, 3)
    conn = await asyncpg.connect(fresh_db)
    try:  # a worker that crashed an hour ago and never came back
        await conn.execute("UPDATE alert_outbox SET created_at = now() - interval '1 hour'")
    finally:
        await conn.close()

    stale_s = 3.0
    red = aioredis.from_url(redis_url)
    async with in_process_runtime(settings, clock) as live:
        relay = OutboxRelay(
            live.db, live.redis, live.producer, poll_interval_s=0.2, stale_s=stale_s,
            max_in_hand=2,
        )  # fmt: skip
        running = asyncio.create_task(relay.run())
        records = [alert_record(i) for i in range(10, 14)]
        items = [(r, await live.alerts.decode(r, clock.now)) for r in records]
        result = await live.alert_store.write(items, next_offsets(records))
        committed = time.monotonic()
        relay.hand(result.outbox)  # two fit in memory, two wait in the table
        arrived: dict[str, float] = {}
        deadline = committed + 30
        while len(arrived) < 7:
            assert time.monotonic() < deadline, f"published so far: {sorted(arrived)}"
            for ext in await _stream_ids(red):
                arrived.setdefault(ext, time.monotonic())
            await asyncio.sleep(0.05)
        await relay.stop()
        await running

    ids = await _stream_ids(red)
    await red.aclose()
    assert sorted(ids) == sorted(f"outbox-{i}" for i in (0, 1, 2, 10, 11, 12, 13))  # each once
    # past the in-memory bound an entry waits until it is stale, never less
    assert min(arrived["outbox-12"], arrived["outbox-13"]) - committed >= stale_s - 0.1
    assert max(ids.index("outbox-10"), ids.index("outbox-11")) < min(
        ids.index("outbox-12"), ids.index("outbox-13")
    )
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM alert_outbox") == 0
    finally:
        await conn.close()
    records_out = await normalized(broker.bootstrap)
    assert sorted(str(r["external_id"]) for r in records_out) == sorted(ids)


async def test_the_backlog_gauge_follows_the_relay_not_only_its_polls(
    broker: Broker, fresh_db: str, redis_url: str
) -> None:
    """A poll that counts entries while they are in hand must not leave the
    backlog gauge at that count until the next poll."""
    settings = settings_for(broker.bootstrap, fresh_db, redis_url)
    clock = FrozenClock()
    clock.now = datetime.now(UTC)
    async with in_process_runtime(settings, clock) as live:
        relay = OutboxRelay(live.db, live.redis, live.producer, poll_interval_s=3600, stale_s=3600)
        records = [alert_record(i) for i in range(20, 23)]
        items = [(r, await live.alerts.decode(r, clock.now)) for r in records]
        result = await live.alert_store.write(items, next_offsets(records))
        await relay.drain(stale_only=True)  # fresh entries: counted, not relayed
        assert metrics.OUTBOX_PENDING._value.get() == 3
        running = asyncio.create_task(relay.run())
        relay.hand(result.outbox)
        deadline = time.monotonic() + 30
        while metrics.OUTBOX_PENDING._value.get() != 0:
            assert time.monotonic() < deadline, "the gauge kept the poll's count"
            await asyncio.sleep(0.05)
        await relay.stop()
        await running
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM alert_outbox") == 0
    finally:
        await conn.close()
