"""The alert path: decode, enrich, deduplicate and store a batch of alert
records, then hand new alerts to the outbox relay.

Offsets advance in the same transaction as the rows (``ingest_offsets``), and
dead letters are acknowledged by the broker before that transaction, so a
crash at any instant loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pipeline import metrics
from pipeline.decoders.alarm.decoder import decode_alarm
from pipeline.decoders.alert_json import decode_alert_json
from pipeline.decoders.axis.event import parse_axis
from pipeline.decoders.cap.decoder import decode_cap
from pipeline.errors import RecordRejected, TransientError
from pipeline.flows.common import (
    Retrier,
    dead_letter_for,
    isolating,
    next_offsets,
    publish_dead_letters,
)
from pipeline.priority import PriorityFlag
from pipeline.retry import ALERT_PATH
from pipeline.settings import Settings
from pipeline.sinks.kafka.dlq import DeadLetterPublisher
from pipeline.sinks.outbox import OutboxRelay
from pipeline.sinks.postgres.alerts import AlertStore
from pipeline.sinks.redis.axis_state import BufferedAxisState
from pipeline.sinks.redis.live import RedisLive
from pipeline.stages.axis_edges import AxisEdgeTracker
from pipeline.stages.geo_index import GeoIndex, enrich_alert
from schemas.dead_letter import DeadLetter
from schemas.intents import Discard, Intent, SetRedis, StoreAlert
from schemas.records import RawRecord

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _count_alert_quirks(meta: dict[str, object]) -> None:
    """Counters for conditions the pure decoders record in metadata."""
    dc09 = meta.get("dc09")
    if isinstance(dc09, dict) and dc09.get("length_mismatch"):
        metrics.DC09_LENGTH_MISMATCH.inc()
    if meta.get("device_unregistered"):
        metrics.DEVICE_UNREGISTERED.inc()


class AlertIngestor:
    def __init__(
        self,
        settings: Settings,
        *,
        store: AlertStore,
        dlq: DeadLetterPublisher,
        live: RedisLive,
        relay: OutboxRelay,
        axis: AxisEdgeTracker,
        axis_state: BufferedAxisState,
        geo: GeoIndex,
        clock: Clock = utc_now,
        priority: PriorityFlag | None = None,
    ) -> None:
        self._settings = settings
        self._priority = priority
        self._store = store
        self._dlq = dlq
        self._live = live
        self._relay = relay
        self._axis = axis
        self._axis_state = axis_state
        self._geo = geo
        self._clock = clock
        self.retrier = Retrier("alerts", ALERT_PATH)

    async def decode(self, record: RawRecord, now: datetime) -> list[Intent]:
        s = self._settings
        topic = record.topic
        if topic == "alerts.alarm":
            return decode_alarm(record, s.alarm, now, s.max_message_bytes)
        if topic == "alerts.json":
            return decode_alert_json(record, now, s.max_message_bytes)
        if topic == "alerts.cap":
            return decode_cap(record, s.cap, now, s.max_message_bytes)
        if topic == "alerts.axis":
            event = parse_axis(record, s.axis, now, s.max_message_bytes)
            if isinstance(event, Discard):
                return [event]
            return await self._axis.intents(event, now)
        return [Discard("unknown_topic")]

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Process a batch until it is durably stored or dead-lettered."""
        if not records:
            return
        # the volume path gives way while alerts are in hand (pipeline.priority)
        if self._priority is not None:
            self._priority.hold()
        try:
            await self._handle(records)
        finally:
            if self._priority is not None:
                self._priority.release()

    async def _handle(self, records: Sequence[RawRecord]) -> None:
        for r in records:
            metrics.RECORDS_CONSUMED.labels(r.topic).inc()
        dead_done: set[tuple[str, int, int]] = set()

        async def attempt(batch: Sequence[RawRecord]) -> None:
            try:
                await self.retrier.run(
                    lambda: self._attempt(batch, dead_done), on_retry=self._axis_state.discard
                )
            except Exception:
                self._axis_state.discard()
                raise

        await isolating(records, attempt, self._give_up)

    async def _give_up(self, record: RawRecord, exc: BaseException) -> None:
        """Dead-letter a record that triggers a pipeline bug, and move past it."""
        letter = dead_letter_for(record, exc, self._clock())
        await self.retrier.run(lambda: publish_dead_letters(self._dlq, [(record, letter)]))
        await self.retrier.run(lambda: self._store.write([], next_offsets([record])))

    async def _attempt(
        self, records: Sequence[RawRecord], dead_done: set[tuple[str, int, int]]
    ) -> None:
        now = self._clock()
        items: list[tuple[RawRecord, list[Intent]]] = []
        dead: list[tuple[RawRecord, DeadLetter]] = []
        for record in records:
            try:
                intents = await self.decode(record, now)
            except TransientError:
                raise
            except Exception as exc:
                dead.append((record, dead_letter_for(record, exc, now)))
                continue
            items.append((record, [self._enrich(i) for i in intents]))
        while True:
            fresh = [(r, d) for r, d in dead if (r.topic, r.partition, r.offset) not in dead_done]
            await publish_dead_letters(self._dlq, fresh)
            dead_done.update((r.topic, r.partition, r.offset) for r, _ in fresh)
            try:
                result = await self._store.write(
                    items, next_offsets(records), await self._dismissed(items)
                )
                break
            except RecordRejected as rej:
                record, _ = items.pop(rej.index)
                dead.append((record, dead_letter_for(record, rej.error, now)))
        self._relay.hand(result.outbox)
        await self._after_commit(items, result.outcomes, result.redis_sets, now)

    def _enrich(self, intent: Intent) -> Intent:
        if isinstance(intent, StoreAlert):
            return StoreAlert(enrich_alert(intent.alert, self._geo), intent.dismiss_if_key)
        return intent

    async def _dismissed(self, items: Sequence[tuple[RawRecord, list[Intent]]]) -> frozenset[str]:
        keys = [
            i.dismiss_if_key
            for _, intents in items
            for i in intents
            if isinstance(i, StoreAlert) and i.dismiss_if_key
        ]
        if not keys:
            return frozenset()
        try:
            return frozenset(await self._live.existing(keys))
        except TransientError as exc:
            log.warning("CAP cancel markers unreadable, storing as new: %s", exc.reason)
            return frozenset()

    async def _after_commit(
        self,
        items: Sequence[tuple[RawRecord, list[Intent]]],
        outcomes: Sequence[str],
        redis_sets: Sequence[SetRedis],
        now: datetime,
    ) -> None:
        for (record, intents), outcome in zip(items, outcomes, strict=True):
            metrics.RECORDS.labels(record.topic, outcome).inc()
            for i in intents:
                if isinstance(i, Discard):
                    metrics.SKIPPED.labels(record.topic, i.reason).inc()
                elif isinstance(i, StoreAlert) and outcome == "stored":
                    _count_alert_quirks(i.alert.metadata)
            if outcome == "stored":
                lag = (now - record.kafka_time).total_seconds()
                metrics.END_TO_END_LATENCY.labels("alerts", "receive").observe(max(lag, 0.0))
        try:
            await self._axis_state.flush()
            await self._live.apply(redis_sets)
        except TransientError as exc:
            log.warning("live state not updated (Redis): %s", exc.reason)
