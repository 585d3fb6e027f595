"""Feeds sample lines through the real broker into an in-process pipeline whose
clock is frozen at each line's timestamp, against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.decoders.envelope import parse_timestamp
from pipeline.runtime.root import Runtime
from pipeline.settings import Settings
from pipeline.sources.kafka_batch import to_raw
from schemas.records import RawRecord
from tests.conftest import load_fixtures

FIXTURE_AGENCY = "00000000-0000-4000-8000-00000000a9e1"


def settings_for(bootstrap: str, dsn: str, redis_url: str, **extra: Any) -> Settings:
    cfg = load_fixtures()["config"]
    assert isinstance(cfg, dict)
    return Settings(
        kafka_bootstrap=bootstrap,
        database_url=dsn,
        redis_url=redis_url,
        embedded_broker=True,
        kafka={"idempotence": False, "partitions": 1},
        alarm=cfg["alarm"],
        max_message_bytes=cfg["max_message_bytes"],
        **extra,
    )


async def load_resources(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO agencies (id, name, code, type) VALUES ($1, 'Fixture agency', 'FIX', 'fire') "
        "ON CONFLICT DO NOTHING",
        FIXTURE_AGENCY,
    )
    for r in load_fixtures()["resources"]:  # type: ignore[union-attr]
        loc = r["current_location"]
        await conn.execute(
            "INSERT INTO resources "
            "(id, type, subtype, name, identifier, agency_id, current_location) "
            "VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::float8 IS NULL THEN NULL ELSE "
            "ST_SetSRID(ST_MakePoint($7, $8), 4326)::geography END)",
            r["id"], r["type"], r["subtype"], r["name"], r["identifier"], FIXTURE_AGENCY,
            loc["lon"] if loc else None, loc["lat"] if loc else None,
        )  # fmt: skip


class FrozenClock:
    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        assert self.now is not None
        return self.now


class SampleFeeder:
    """Produce a line to Kafka, read it back as the pipeline would, process it."""

    def __init__(self, runtime: Runtime, clock: FrozenClock, bootstrap: str) -> None:
        self.runtime = runtime
        self.clock = clock
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> SampleFeeder:
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap)
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._producer is not None
        await self._producer.stop()

    async def produce(self, line: dict[str, Any]) -> RawRecord:
        assert self._producer is not None
        value = (
            base64.b64decode(line["value_b64"]) if "value_b64" in line else line["value"].encode()
        )
        ts = parse_timestamp(line["timestamp"], "timestamp")
        headers = [(k, str(v).encode()) for k, v in (line.get("headers") or {}).items()]
        key = line["key"].encode() if line.get("key") is not None else None
        meta = await self._producer.send_and_wait(
            line["topic"], value, key=key, timestamp_ms=round(ts.timestamp() * 1000),
            headers=headers or None,
        )  # fmt: skip
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(meta.topic, meta.partition)
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            msg = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        return to_raw(msg)

    async def feed(self, line: dict[str, Any]) -> RawRecord:
        record = await self.produce(line)
        self.clock.now = parse_timestamp(line["timestamp"], "timestamp")
        if record.topic.startswith("alerts."):
            await self.runtime.alerts.handle([record])
            await self.runtime.relay.drain()
        else:
            await self.runtime.bulk.handle([record])
        return record


@asynccontextmanager
async def in_process_runtime(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings, clock=clock)
    await runtime.connect(deadline_s=20, say=print)
    await runtime.geo.refresh(force=True)
    try:
        yield runtime
    finally:
        await runtime.producer.stop()
        await runtime.redis.close()
        await runtime.db.close()
        if runtime.priority is not None:
            runtime.priority.close()


async def dead_letters(bootstrap: str) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Every record on eriop.dlq, by its origin (topic, partition, offset)."""
    consumer = AIOKafkaConsumer(
        "eriop.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    out: dict[tuple[str, int, int], dict[str, Any]] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            for msgs in batch.values():
                for m in msgs:
                    env = json.loads(m.value)
                    out[(env["topic"], env["partition"], env["offset"])] = env
    finally:
        await consumer.stop()
    return out
