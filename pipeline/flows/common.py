"""What the alert and bulk ingestors share: the decode loop that turns input
errors into dead letters, offset bookkeeping, retry with backoff, accounting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pipeline import metrics
from pipeline.errors import InputError, TransientError
from pipeline.retry import RetryPolicy
from pipeline.sinks.kafka.dlq import DeadLetterPublisher, build_dead_letter, from_error
from schemas.dead_letter import DeadLetter
from schemas.intents import Discard
from schemas.records import RawRecord

log = logging.getLogger(__name__)
T = TypeVar("T")


def record_context(record: RawRecord) -> dict[str, Any]:
    """``extra=`` for a log call about one record: its topic, partition and offset."""
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def next_offsets(records: Iterable[RawRecord]) -> dict[tuple[str, int], int]:
    """The offset to commit per topic and partition: one past the highest seen."""
    out: dict[tuple[str, int], int] = {}
    # A batch comes in runs of one partition: the key and its lookup are
    # needed only where a run ends, not for every record.
    topic: str | None = None
    partition = top = -1
    for r in records:
        if r.partition != partition or r.topic != topic:
            if topic is not None and top + 1 > out.get((topic, partition), -1):
                out[(topic, partition)] = top + 1
            topic, partition, top = r.topic, r.partition, r.offset
        elif r.offset > top:
            top = r.offset
    if topic is not None and top + 1 > out.get((topic, partition), -1):
        out[(topic, partition)] = top + 1
    return out


def dead_letter_for(record: RawRecord, exc: BaseException, now: datetime) -> DeadLetter:
    if isinstance(exc, InputError):
        return from_error(record, exc, now)
    log.exception(
        "internal error on %s[%d]@%d",
        record.topic,
        record.partition,
        record.offset,
        exc_info=exc,
        extra=record_context(record),
    )
    return build_dead_letter(
        record,
        stage="decode",
        error_code="internal_error",
        reason=f"unexpected {type(exc).__name__} in the pipeline",
        now=now,
    )


class Retrier:
    """Retries transient failures under a :class:`RetryPolicy` until stopped.

    While it waits, the caller does not consume: the consumer is effectively
    paused and nothing is buffered beyond the batch in hand.
    """

    def __init__(self, stream: str, policy: RetryPolicy) -> None:
        self._stream = stream
        self._policy = policy
        self.stopping = False
        #: True while a transient failure holds the stream back
        self.paused = False

    async def run(
        self, fn: Callable[[], Awaitable[T]], on_retry: Callable[[], None] | None = None
    ) -> T:
        backoff = self._policy.backoff()
        while True:
            try:
                result = await fn()
            except TransientError as exc:
                if self.stopping:
                    raise
                delay = backoff.next_delay()
                self.paused = True
                metrics.CONSUMER_PAUSED.labels(self._stream).set(1)
                metrics.DB_ERRORS.labels(self._stream, exc.error_code).inc()
                log.warning("%s paused: %s; retrying in %.1fs", self._stream, exc.reason, delay)
                if on_retry is not None:
                    on_retry()
                await asyncio.sleep(delay)
                continue
            if self.paused:
                self.paused = False
                metrics.CONSUMER_PAUSED.labels(self._stream).set(0)
            return result


DecodeResult = tuple[
    list[tuple[RawRecord, T]],
    list[tuple[RawRecord, DeadLetter]],
    list[tuple[RawRecord, str]],
]


def decode_each(
    records: Iterable[RawRecord], decode: Callable[[RawRecord], T | Discard], now: datetime
) -> DecodeResult[T]:
    """Decode records one by one into (decoded, dead letters, discards)."""
    ok: list[tuple[RawRecord, T]] = []
    dead: list[tuple[RawRecord, DeadLetter]] = []
    skipped: list[tuple[RawRecord, str]] = []
    for record in records:
        try:
            res = decode(record)
        except Exception as exc:
            dead.append((record, dead_letter_for(record, exc, now)))
            continue
        if isinstance(res, Discard):
            skipped.append((record, res.reason))
        else:
            ok.append((record, res))
    return ok, dead, skipped


def sort_outcomes(
    records: Iterable[RawRecord], outcomes: Iterable[T | Discard | Exception], now: datetime
) -> DecodeResult[T]:
    """What :func:`decode_each` returns, from a batch decoder's outcome per record
    (a decoded value, a discard, or the error the record raised)."""
    ok: list[tuple[RawRecord, T]] = []
    dead: list[tuple[RawRecord, DeadLetter]] = []
    skipped: list[tuple[RawRecord, str]] = []
    for record, res in zip(records, outcomes, strict=True):
        if isinstance(res, Exception):
            dead.append((record, dead_letter_for(record, res, now)))
        elif isinstance(res, Discard):
            skipped.append((record, res.reason))
        else:
            ok.append((record, res))
    return ok, dead, skipped


Attempt = Callable[[Sequence[RawRecord]], Awaitable[None]]
GiveUp = Callable[[RawRecord, BaseException], Awaitable[None]]


async def isolating(records: Sequence[RawRecord], attempt: Attempt, give_up: GiveUp) -> None:
    """Run ``attempt``; when it fails for good (a value the database refuses, or a
    pipeline bug; not an outage), bisect the batch so that only the record that
    fails is given up on (dead-lettered) and the rest of the batch, and the
    partition, carry on. Halves run in order, so positions only move forward,
    and one bad record among n costs about 2·log2(n) extra attempts."""
    try:
        await attempt(records)
    except (TransientError, asyncio.CancelledError):
        raise
    except Exception as exc:
        if len(records) == 1:
            r = records[0]
            where = (r.topic, r.partition, r.offset)
            if isinstance(exc, InputError):
                log.warning("giving up on %s[%d]@%d: %s", *where, exc, extra=record_context(r))
            else:
                log.exception("giving up on %s[%d]@%d", *where, extra=record_context(r))
            await give_up(r, exc)
            return
        log.warning("batch of %d failed (%r); isolating the record", len(records), exc)
        mid = len(records) // 2
        await isolating(records[:mid], attempt, give_up)
        await isolating(records[mid:], attempt, give_up)


async def publish_dead_letters(
    dlq: DeadLetterPublisher, items: Sequence[tuple[RawRecord, DeadLetter]]
) -> None:
    await dlq.publish(items)
    for record, _ in items:
        metrics.RECORDS.labels(record.topic, "dead_lettered").inc()
