"""Line supervision (pipeline/sources/dc09/supervision.py) against real
PostgreSQL, Redis and the embedded broker: one failure per outage, a restore
when traffic resumes, and restarts that neither invent nor lose an outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from eriop.dev.stack import Broker
from pipeline import metrics
from pipeline.clients.kafka import ensure_topics
from pipeline.clients.postgres import Database
from pipeline.decoders.alarm.decoder import decode_alarm
from pipeline.decoders.alarm.supervision import outage_id
from pipeline.settings import AlarmSettings, Settings
from pipeline.sinks.redis.line_state import CH_SUPERVISION, RedisLineState, line_key
from pipeline.sources.dc09.supervision import LineSupervisor
from pipeline.sources.kafka_batch import to_raw
from schemas.intents import PatchAlert, StoreAlert
from schemas.records import RawRecord
from tests.integration.harness import FrozenClock, in_process_runtime, settings_for
from tests.integration.util import wait_until

T0 = datetime(2026, 3, 14, 9, 0, 0, 250000, tzinfo=UTC)
TOPIC = "alerts.alarm"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class KafkaOut:
    """The receiver's ``publish``: produce to alerts.alarm, acks=all."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def __call__(self, key: bytes | None, value: bytes) -> None:
        await self.producer.send_and_wait(TOPIC, value, key=key)


def alarm(accounts: dict[str, Any] | None = None) -> AlarmSettings:
    """Every account expected each 60 s, 10 s of grace."""
    return AlarmSettings.model_validate(
        {
            "checkin_interval_s": 60,
            "checkin_grace_s": 10,
            "supervision_tick_s": 3600,  # the tests drive the ticks (see started())
            "accounts": accounts or {},
        }
    )


@pytest.fixture
async def kafka(broker: Broker) -> AsyncIterator[KafkaOut]:
    await ensure_topics(Settings(kafka_bootstrap=broker.bootstrap), [TOPIC])
    out = KafkaOut(broker.bootstrap)
    await out.producer.start()
    yield out
    await out.producer.stop()


async def started(
    settings: AlarmSettings, dsn: str, kafka: KafkaOut, clock: Clock, **kw: Any
) -> LineSupervisor:
    """A supervisor whose first tick is done; further ticks are the test's."""
    sup = LineSupervisor(
        settings, database=Database(dsn), publish=kafka, receiver="rcv-test", clock=clock, **kw
    )
    await sup.start()
    await wait_until(lambda: _healthy(sup), timeout=30, what="the first supervision tick")
    return sup


async def _healthy(sup: LineSupervisor) -> bool:
    return bool((await sup.health())["ok"])


async def produced(bootstrap: str) -> list[RawRecord]:
    """Every record on alerts.alarm so far (all ticks awaited: nothing in flight)."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    out: list[RawRecord] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1500):
            for msgs in batch.values():
                out.extend(to_raw(m) for m in msgs)
    finally:
        await consumer.stop()
    # one account's changes share a partition (the key), so they are in order
    return sorted(out, key=lambda r: (r.partition, r.offset))


def failed_gauge() -> float | None:
    return metrics.REGISTRY.get_sample_value("eriop_supervision_accounts_failed")


def supervision_of(record: RawRecord) -> dict[str, Any]:
    assert record.value is not None
    value = json.loads(record.value)
    assert value["receiver"] == "rcv-test"
    body: dict[str, Any] = value["supervision"]
    return body


async def test_silent_account_raises_one_failure_and_traffic_restores_it(
    fresh_db: str, kafka: KafkaOut, broker: Broker, redis_url: str
) -> None:
    clock = Clock(T0)
    redis = RedisLineState(redis_url, receiver="rcv-test")
    await redis.start()
    client = aioredis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(CH_SUPERVISION)
    settings = alarm({"L3#4711": {"site": "Warehouse 7"}})
    sup = await started(settings, fresh_db, kafka, clock, notify=redis)
    try:
        sup.check_in("4711", "3", T0)
        sup.check_in("0815", None, T0)
        await sup.tick()
        clock.advance(69)
        sup.check_in("0815", None, clock.now)
        await sup.tick()
        assert await produced(broker.bootstrap) == []  # 4711: deadline T0 + 70 s not yet passed

        clock.advance(2)
        for _ in range(3):  # later ticks and repeats add nothing
            await sup.tick()
        assert failed_gauge() == 1
        (failure,) = await produced(broker.bootstrap)
        assert failure.key == b"4711"
        assert supervision_of(failure) == {
            "account": "4711", "line": "3", "state": "failed",
            "since": "2026-03-14T09:00:00.250000Z", "interval_s": 60.0,
        }  # fmt: skip
        state = await client.hgetall(line_key("4711"))
        assert (state["state"], state["since"], state["line"]) == (
            "failed",
            "2026-03-14T09:00:00.250000Z",
            "3",
        )

        # the alarm decoder turns it into one supervisory alert named by the outage
        (intent,) = decode_alarm(failure, settings, clock.now)
        assert isinstance(intent, StoreAlert)
        alert = intent.alert
        assert (alert.type, alert.severity, alert.source) == ("supervisory", 3, "alarm_system")
        assert alert.external_id == outage_id("4711", T0) == "line:4711:2026-03-14T09:00:00.250000Z"
        assert alert.title == "Communication failure - account Warehouse 7, line 3"
        assert alert.received_at == clock.now

        restored_at = clock.advance(30)
        sup.check_in("4711", "3", restored_at)
        await sup.tick()
        await sup.tick()
        assert failed_gauge() == 0
        records = await produced(broker.bootstrap)
        assert len(records) == 2
        assert supervision_of(records[1])["state"] == "restored"
        (patch,) = decode_alarm(records[1], settings, clock.now)
        assert isinstance(patch, PatchAlert)
        assert (patch.kind, patch.match_key) == ("restore", alert.metadata["match_key"])
        assert patch.metadata_patch["restored_at"] == "2026-03-14T09:01:41.250000Z"
        assert (await client.hgetall(line_key("4711")))["state"] == "ok"

        changes: list[dict[str, Any]] = []

        async def two_changes() -> bool:
            # None also stands for the (ignored) subscribe confirmation
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if msg is not None:
                changes.append(json.loads(msg["data"]))
            return len(changes) >= 2

        await wait_until(two_changes, timeout=20, what="two messages on eriop.supervision")
        assert [(c["account"], c["state"]) for c in changes] == [
            ("4711", "failed"),
            ("4711", "restored"),
        ]
    finally:
        await sup.close()
        await redis.close()
        await pubsub.unsubscribe()
        await client.aclose()


async def test_restart_raises_no_false_failure_but_an_outage_during_it(
    fresh_db: str, kafka: KafkaOut, broker: Broker
) -> None:
    clock = Clock(T0)
    settings = alarm()
    first = await started(settings, fresh_db, kafka, clock)
    for account in ("1111", "2222", "3333"):
        first.check_in(account, "1", T0)
    await first.tick()
    clock.advance(71)  # 3333 misses its window before the restart
    first.check_in("1111", "1", clock.now - timedelta(seconds=1))
    first.check_in("2222", "1", clock.now - timedelta(seconds=1))
    await first.tick()
    await first.close()
    (before,) = await produced(broker.bootstrap)
    assert supervision_of(before)["account"] == "3333"

    # down for ten minutes, far past every account's window
    clock.advance(600)
    second = await started(settings, fresh_db, kafka, clock)
    try:
        await second.tick()
        assert len(await produced(broker.bootstrap)) == 1  # no false failure, 3333 not repeated
        clock.advance(30)
        second.check_in("1111", "1", clock.now)  # 1111 is alive; 2222 went silent while down
        await second.tick()
        clock.advance(41)  # start + 70 s
        await second.tick()
        changes = {
            supervision_of(r)["account"]: supervision_of(r)
            for r in await produced(broker.bootstrap)
        }
        assert sorted(changes) == ["2222", "3333"]
        assert (changes["2222"]["state"], changes["2222"]["since"]) == (
            "failed",
            "2026-03-14T09:01:10.250000Z",
        )
    finally:
        await second.close()


async def test_two_receivers_raise_one_failure(
    fresh_db: str, kafka: KafkaOut, broker: Broker
) -> None:
    clock = Clock(T0)
    settings = alarm({"4711": {"checkin_interval_s": 300}, "9999": {"checkin_interval_s": 0}})
    main = await started(settings, fresh_db, kafka, clock)
    backup = await started(settings, fresh_db, kafka, clock)
    try:
        for account in ("4711", "5555", "9999"):
            main.check_in(account, None, T0)
        backup.check_in("5555", "2", T0 - timedelta(seconds=5))  # an older copy
        await asyncio.gather(main.tick(), backup.tick())
        clock.advance(71)
        await asyncio.gather(main.tick(), backup.tick(), main.tick(), backup.tick())
        # a tick that found the delivery lock taken leaves the change to the next one
        await backup.tick()
        (only,) = await produced(broker.bootstrap)
        # 4711 has 300 s, 9999 is not supervised; the newest check-in's line counts
        assert supervision_of(only) | {"account": "5555", "line": None} == supervision_of(only)
        clock.advance(240)
        await asyncio.gather(main.tick(), backup.tick())
        await main.tick()
        changes = {
            supervision_of(r)["account"]: supervision_of(r)
            for r in await produced(broker.bootstrap)
        }
        assert sorted(changes) == ["4711", "5555"]
        assert changes["4711"]["interval_s"] == 300
    finally:
        await main.close()
        await backup.close()


async def test_running_supervisor_and_a_worker_store_one_alert_and_its_restore(
    fresh_db: str, kafka: KafkaOut, broker: Broker, redis_url: str
) -> None:
    """The real clock and the background loop; the worker's alert path stores it."""
    settings = AlarmSettings(checkin_interval_s=1.0, checkin_grace_s=0.5, supervision_tick_s=0.1)
    sup = LineSupervisor(settings, database=Database(fresh_db), publish=kafka, receiver="rcv-test")
    conn = await asyncpg.connect(fresh_db)

    async def state(failed: bool) -> bool:
        # the change is recorded and delivered (no event left to send)
        row = await conn.fetchrow(
            "SELECT outage_since IS NOT NULL AS failed, "
            "(SELECT count(*) FROM line_supervision_events) AS undelivered "
            "FROM line_supervision WHERE account = '6C02'"
        )
        return row is not None and row["failed"] is failed and row["undelivered"] == 0

    await sup.start()
    try:
        sup.check_in("6C02", "1", datetime.now(UTC))
        await wait_until(lambda: state(failed=True), timeout=30, what="the failure")
        sup.check_in("6C02", "1", datetime.now(UTC))
        await wait_until(lambda: state(failed=False), timeout=30, what="the restore")
    finally:
        await sup.close()  # before the account's next window ends
        await conn.close()
    records = await produced(broker.bootstrap)
    failure = records[0]
    assert [supervision_of(r)["state"] for r in records] == ["failed", "restored"]

    clock = FrozenClock()
    async with in_process_runtime(settings_for(broker.bootstrap, fresh_db, redis_url), clock) as rt:
        for record in (*records, failure):  # a repeat of the failure changes nothing
            clock.now = datetime.now(UTC)
            await rt.alerts.handle([record])
            await rt.relay.drain()
        async with rt.db.connection() as db:
            rows = await db.fetch(
                "SELECT type, severity, external_id, metadata FROM alerts "
                "WHERE source = 'alarm_system'"
            )
    assert len(rows) == 1
    row = rows[0]
    assert (row["type"], row["severity"]) == ("supervisory", 3)
    assert row["external_id"].startswith("line:6C02:")
    assert row["metadata"]["restored_at"]


async def test_supervision_runs_as_the_ingest_role(
    fresh_db: str, kafka: KafkaOut, broker: Broker
) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eriop_line_test') "
            "THEN CREATE ROLE eriop_line_test LOGIN IN ROLE eriop_ingest; END IF; END$$"
        )
    finally:
        await conn.close()
    parts = urlsplit(fresh_db)
    login = urlunsplit(
        (parts.scheme, f"eriop_line_test@{parts.hostname}:{parts.port or 5432}", parts.path, "", "")
    )
    clock = Clock(T0)
    sup = await started(alarm(), login, kafka, clock)
    try:
        sup.check_in("4711", None, T0)
        await sup.tick()
        clock.advance(70)
        await sup.tick()
        sup.check_in("4711", None, clock.advance(1))
        await sup.tick()
    finally:
        await sup.close()
    records = await produced(broker.bootstrap)
    assert [supervision_of(r)["state"] for r in records] == ["failed", "restored"]
