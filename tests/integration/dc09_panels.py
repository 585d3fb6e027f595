"""Helpers for the DC-09 receiver tests: a receiver in the test's loop, the real
transmitter library (my-dc09-spt, a third-party dialler) driven from threads,
and a reader of what landed on ``alerts.alarm``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from my_dc09_spt.dc09_spt import dc09_spt  # type: ignore[import-untyped]

from pipeline.clients.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.sources.dc09.service import DC09Service
from tests.integration.util import wait_until

KEY128 = "000102030405060708090A0B0C0D0E0F"
KEY256 = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"
ACCOUNTS: dict[str, Any] = {
    "1234": {},
    "6C02": {"key": KEY128},
    "7A03": {"key": KEY256},
}


def receiver_settings(bootstrap: str, **receiver: Any) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        embedded_broker=True,
        kafka={"idempotence": False, "partitions": 1},
        alarm={"accounts": ACCOUNTS},
        receiver={"host": "127.0.0.1", "port": 0, "receiver_id": "rcv-test", **receiver},
    )


@asynccontextmanager
async def running_receiver(settings: Settings) -> AsyncIterator[DC09Service]:
    await ensure_topics(settings, ["alerts.alarm"])
    service = DC09Service(settings)
    stop = asyncio.Event()
    await service.start(stop)
    runner = asyncio.create_task(service.run(stop))
    try:
        await wait_until(
            lambda: _ready(service), timeout=30, what="the receiver's Kafka connection"
        )
        yield service
    finally:
        stop.set()
        await runner
        await service.close()


async def _ready(service: DC09Service) -> bool:
    return service.publisher.ready


def panel(
    account: str,
    port: int,
    *,
    key_hex: str | None = None,
    transport: str = "tcp",
    receiver: int | None = None,
    line: int | None = None,
) -> Any:
    """A dialler of the third-party library with one path to the receiver."""
    spt = dc09_spt(account, receiver=receiver, line=line)
    key = bytes.fromhex(key_hex) if key_hex else None
    spt.set_path("main", "primary", "127.0.0.1", port, key=key, type=transport)
    return spt


def path_of(spt: Any) -> Any:
    return spt.tpaths["main"]["primary"]["path"]


async def alarm_records(bootstrap: str, at_least: int, timeout: float = 30) -> list[Any]:
    """Every record on ``alerts.alarm`` once there are ``at_least`` of them."""
    consumer = AIOKafkaConsumer(
        "alerts.alarm", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < at_least and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
        # anything more that is already there
        batch = await consumer.getmany(timeout_ms=500)
        for recs in batch.values():
            records.extend(recs)
    finally:
        await consumer.stop()
    return records


def envelopes(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]
