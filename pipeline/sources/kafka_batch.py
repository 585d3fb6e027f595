"""Batch consumption with aiokafka, on the event loop of the process that handles.

Every consumer of the worker is one of these: the alert agent's
(``kafka.alerts_group``) and the volume path's (``kafka.bulk_group``), each in
a group of its own, so a telemetry flood never sits in front of an alert.
Positions live in PostgreSQL (``ingest_offsets``, written with the rows); on
every assignment the consumer seeks to them, so a crash or rebalance at any
instant neither skips nor double-stores a record. Kafka commits are made too,
for lag monitoring only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.clients.kafka import fetch_wait, leave_group, set_fetch_wait
from pipeline.sources.positions import GroupAssignment, OffsetLoader, seek_to_stored
from schemas.records import RawRecord

log = logging.getLogger(__name__)

_COMMIT_TIMEOUT_S = 5.0

Handler = Callable[[Sequence[RawRecord]], Awaitable[None]]


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._owner.assignment.revoked()
        await self._owner.commit_pending()  # still a member of the old generation here
        log.info("partitions revoked: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner.seek_to_stored(assigned)


def to_raw(msg: object) -> RawRecord:
    """A consumed record as RawRecord: as it comes from make_consumer's consumers
    (pipeline.clients.kafka_records), else copied from aiokafka's ConsumerRecord."""
    if type(msg) is RawRecord:
        return msg
    m: Any = msg  # aiokafka ConsumerRecord
    headers = m.headers
    # positional: a dataclass takes keywords at twice the cost, once per record
    return RawRecord(
        m.topic, m.partition, m.offset, m.timestamp, m.key, m.value,
        tuple(headers) if headers else (),
    )  # fmt: skip


class BatchConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: Sequence[str],
        handler: Handler,
        load_offsets: OffsetLoader,
        *,
        max_records: int = 5000,
        linger_ms: int = 50,
        name: str = "bulk",
        assignment: GroupAssignment | None = None,
        before_fetch: Callable[[], Awaitable[None]] | None = None,
        commit_every_s: float = 0.0,
        idle_fetch: tuple[int, float] | None = None,
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._handler = handler
        self._load_offsets = load_offsets
        self._max = max_records
        self._linger = linger_ms
        self.name = name
        self.assignment = assignment or GroupAssignment(name)
        #: awaited before every fetch (the volume path gives way to alerts there)
        self._before_fetch = before_fetch
        #: Kafka commits (lag monitoring only) at most this often; each one is a
        #: round trip to the broker before the next fetch
        self._commit_every_s = commit_every_s
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committed_at = float("-inf")
        #: (wait ms, after s): once nothing has arrived for ``after`` seconds, fetches
        #: wait up to ``wait`` ms at the broker, until records arrive again
        self._idle_fetch = idle_fetch
        self._busy_wait_ms = 0
        self._last_records = time.monotonic()
        self._idle = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def start(self) -> None:
        await self._consumer.start()
        if self._idle_fetch is not None:
            self._busy_wait_ms = fetch_wait(self._consumer)
        self._consumer.subscribe(self._topics, listener=_SeekToStored(self))
        self._task = asyncio.create_task(self._supervised(), name=f"consumer-{self.name}")

    async def _supervised(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # a consumer that stopped consuming must not leave a healthy-looking
            # worker behind: stop the process so its supervisor restarts it
            log.critical("%s consumer failed; stopping the worker", self.name, exc_info=True)
            os.kill(os.getpid(), signal.SIGTERM)

    async def seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        await seek_to_stored(assigned, self._load_offsets, self._consumer.seek)
        self.assignment.assigned(len(self._consumer.assignment()))
        log.info("%s assigned %d partitions", self.name, len(assigned))

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if self._before_fetch is not None:
                await self._before_fetch()
            try:
                batch = await self._consumer.getmany(timeout_ms=self._linger, max_records=self._max)
            except KafkaError as exc:
                log.warning("%s fetch failed: %s", self.name, exc)
                await asyncio.sleep(1)
                continue
            records = [to_raw(m) for msgs in batch.values() for m in msgs]
            if not records:
                if self._uncommitted:  # quiet now: what was held back goes out
                    await self.commit_pending()
                self._pace_idle()
                continue
            if self._idle:
                self._idle = False
                set_fetch_wait(self._consumer, self._busy_wait_ms)
            self._last_records = time.monotonic()
            # the handler returns only once the batch is durable (or we stop)
            await self._handler(records)
            self.batches += 1
            self._uncommitted.update(
                (tp, msgs[-1].offset + 1) for tp, msgs in batch.items() if msgs
            )
            now = time.monotonic()
            if now - self._committed_at >= self._commit_every_s:
                self._committed_at = now
                await self.commit_pending()
            await self._report_lag(batch.keys())

    def _pace_idle(self) -> None:
        """An idle consumer polls its broker less often. On a broker that answers a
        waiting fetch late (the embedded one), the first record after a quiet spell
        waits for that answer; the ones after it are fetched with the short wait."""
        if self._idle_fetch is None or self._idle:
            return
        wait_ms, after_s = self._idle_fetch
        if time.monotonic() - self._last_records >= after_s:
            self._idle = True
            set_fetch_wait(self._consumer, wait_ms)

    async def commit_pending(self) -> None:
        commits, self._uncommitted = self._uncommitted, {}
        if not commits:
            return
        try:
            # bounded: a broker that does not answer must not hold up a rebalance or a stop
            await asyncio.wait_for(self._consumer.commit(commits), _COMMIT_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            log.info("%s kafka commit skipped (positions are in PostgreSQL): %r", self.name, exc)

    async def _report_lag(self, tps: object) -> None:
        for tp in list(tps):  # type: ignore[call-overload]
            try:
                end = self._consumer.highwater(tp)
                pos = await self._consumer.position(tp)
            except (KafkaError, AssertionError, ValueError) as exc:  # lag is best effort
                log.debug("lag of %s unavailable: %s", tp, exc)
                continue
            if end is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(end - pos, 0))

    async def stop(self, timeout: float = 15.0) -> None:
        """Finish the batch in hand (bounded), then leave the group."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                log.warning("%s did not finish its batch within %.0fs", self.name, timeout)
                self._task.cancel()
            except asyncio.CancelledError:
                pass
        await self.commit_pending()
        await leave_group(self._consumer)
        await self._consumer.stop()
