"""The batch consumer's Kafka commits (for lag monitoring only, so on the alert
path they are throttled, and whatever was held back still goes out) and its
fetch wait (longer while nothing arrives)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from pipeline.sources.kafka_batch import BatchConsumer
from schemas.records import RawRecord

TP = TopicPartition("alerts.json", 0)
#: a fetch that waits longer than any test: a fetch returns only what is queued
NEVER_MS = 60_000
BUSY_WAIT_MS = 5
IDLE_WAIT_MS = 50


class Broker:
    """Stands in for aiokafka's consumer: each queued number is one fetch of that
    many records (0: a fetch that found nothing); commits are recorded."""

    def __init__(self) -> None:
        self.fetches: asyncio.Queue[int] = asyncio.Queue()
        self.commits: list[dict[TopicPartition, int]] = []
        self.next_offset = 0
        #: a fetch is waiting and nothing is queued for it
        self.waiting = False
        #: where aiokafka keeps the fetch wait of a started consumer
        self._fetcher = types.SimpleNamespace(_fetch_max_wait_ms=BUSY_WAIT_MS)
        self.changed = asyncio.Condition()

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(condition), 10)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.waiting = self.fetches.empty()
        await self.notify()
        n = await self.fetches.get()
        self.waiting = False
        records = []
        for _ in range(n):
            records.append(
                ConsumerRecord(TP.topic, 0, self.next_offset, 0, 0, None, b"{}", None, 0, 2, [])
            )
            self.next_offset += 1
        return {TP: records} if records else {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        await self.notify()

    def highwater(self, tp: TopicPartition) -> int:
        return self.next_offset

    async def position(self, tp: TopicPartition) -> int:
        return self.next_offset

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def subscribe(self, topics: Sequence[str], listener: Any) -> None: ...


async def _no_offsets(topics: Sequence[str]) -> dict[tuple[str, int], int]:
    return {}


async def _consumer(
    broker: Broker,
    commit_every_s: float,
    handled: list[int],
    idle_fetch: tuple[int, float] | None = None,
) -> BatchConsumer:
    async def handle(records: Sequence[RawRecord]) -> None:
        handled.extend(r.offset for r in records)
        await broker.notify()

    consumer = BatchConsumer(
        broker,  # type: ignore[arg-type]
        [TP.topic],
        handle,
        _no_offsets,
        linger_ms=NEVER_MS,
        commit_every_s=commit_every_s,
        idle_fetch=idle_fetch,
    )
    await consumer.start()
    return consumer


async def test_commits_are_throttled_and_what_was_held_back_goes_out_when_quiet() -> None:
    broker, handled = Broker(), []
    consumer = await _consumer(broker, 3600.0, handled)
    for n in (1, 2, 3):
        broker.fetches.put_nowait(n)
    await broker.until(lambda: len(handled) == 6 and broker.waiting)
    # the first batch commits at once; the next two are held back by the interval
    assert broker.commits == [{TP: 1}]
    broker.fetches.put_nowait(0)
    await broker.until(lambda: len(broker.commits) == 2)
    assert broker.commits == [{TP: 1}, {TP: 6}]
    await consumer.stop(timeout=0.1)
    assert broker.commits == [{TP: 1}, {TP: 6}]  # nothing left to commit at the stop


async def test_without_an_interval_every_batch_is_committed() -> None:
    broker, handled = Broker(), []
    consumer = await _consumer(broker, 0.0, handled)
    for n in (1, 2, 3):
        broker.fetches.put_nowait(n)
    await broker.until(lambda: len(broker.commits) == 3)
    await consumer.stop(timeout=0.1)
    assert broker.commits == [{TP: 1}, {TP: 3}, {TP: 6}]


async def test_a_stop_commits_what_the_interval_held_back() -> None:
    broker, handled = Broker(), []
    consumer = await _consumer(broker, 3600.0, handled)
    broker.fetches.put_nowait(1)
    broker.fetches.put_nowait(2)
    await broker.until(lambda: len(handled) == 3)
    assert broker.commits == [{TP: 1}]
    await consumer.stop(timeout=0.1)  # the fetch in hand never returns; the stop commits
    assert broker.commits == [{TP: 1}, {TP: 3}]


def _wait_ms(broker: Broker) -> int:
    return int(broker._fetcher._fetch_max_wait_ms)


async def test_fetches_wait_longer_while_idle_and_short_again_once_records_arrive() -> None:
    broker, handled = Broker(), []
    consumer = await _consumer(broker, 0.0, handled, idle_fetch=(IDLE_WAIT_MS, 0.0))
    broker.fetches.put_nowait(1)
    await broker.until(lambda: len(handled) == 1 and broker.waiting)
    assert _wait_ms(broker) == BUSY_WAIT_MS
    broker.fetches.put_nowait(0)  # nothing arrived: idle from now on
    await broker.until(lambda: broker.waiting and _wait_ms(broker) == IDLE_WAIT_MS)
    broker.fetches.put_nowait(2)
    await broker.until(lambda: len(handled) == 3 and broker.waiting)
    assert _wait_ms(broker) == BUSY_WAIT_MS
    await consumer.stop(timeout=0.1)


async def test_a_short_quiet_spell_keeps_the_short_wait() -> None:
    broker, handled = Broker(), []
    consumer = await _consumer(broker, 0.0, handled, idle_fetch=(IDLE_WAIT_MS, 3600.0))
    broker.fetches.put_nowait(1)
    broker.fetches.put_nowait(0)
    broker.fetches.put_nowait(0)
    await broker.until(lambda: len(handled) == 1 and broker.waiting)
    assert _wait_ms(broker) == BUSY_WAIT_MS
    await consumer.stop(timeout=0.1)
