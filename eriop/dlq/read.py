"""Reading ``eriop.dlq`` back: every dead letter from the beginning of the topic to its
end, without a consumer group (nothing is committed).

Also rebuilds the original record a dead letter describes, for replay
(docs/formats.md section 7).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import pydantic
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.clients.kafka import OUT_DLQ, client_options
from pipeline.errors import BrokerUnavailable
from pipeline.settings import Settings
from schemas.dead_letter import DeadLetter

ERROR_CODE_HEADER: Final = "eriop-error-code"
REPLAYED_FROM_HEADER: Final = "eriop-replayed-from"
#: how long the topic may stay silent before its end while being read
STALL_S: Final = 30.0
#: how long reading goes on past the end seen at the start while letters keep arriving
PAST_END_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of the dead-letter topic."""

    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    #: None when the record is not a valid envelope (see ``problem``)
    envelope: DeadLetter | None
    problem: str | None = None

    @property
    def origin(self) -> tuple[str, int, int]:
        """The original record (topic, partition, offset): the same for every repeat
        of its dead letter (a record dead-lettered again after a crash, before its
        offset was stored). An unreadable letter is its own origin."""
        e = self.envelope
        if e is None:
            return (OUT_DLQ, self.partition, self.offset)
        return (e.topic, e.partition, e.offset)

    @property
    def where(self) -> str:
        """The original record's position, ``topic[partition]@offset``."""
        e = self.envelope
        if e is None:
            return f"{OUT_DLQ}[{self.partition}]@{self.offset}"
        return f"{e.topic}[{e.partition}]@{e.offset}"


@dataclass(frozen=True, slots=True)
class Original:
    """The record to send again: where, and the bytes as first received."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def parse(partition: int, offset: int, key: bytes | None, value: bytes | None,
          headers: Any) -> Letter:  # fmt: skip
    hdrs = tuple((str(k), bytes(v or b"")) for k, v in (headers or ()))
    try:
        envelope = DeadLetter.model_validate_json(value or b"")
    except pydantic.ValidationError as exc:
        problem = f"not a dead-letter envelope: {exc.errors()[0]['msg']}"
        return Letter(partition, offset, key, hdrs, None, problem[:200])
    return Letter(partition, offset, key, hdrs, envelope)


def original_of(letter: Letter) -> Original:
    """The original record of a dead letter; ValueError when it cannot be rebuilt."""
    e = letter.envelope
    if e is None:
        raise ValueError(letter.problem or "not a dead-letter envelope")
    if e.value_truncated:
        raise ValueError(f"only the first 64 KiB of the {e.value_size} bytes were kept")
    try:
        if e.value is not None:
            value = e.value.encode("utf-8")
        else:
            value = base64.b64decode(e.value_b64 or "", validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"the copied value cannot be decoded: {exc}") from exc
    if hashlib.sha256(value).hexdigest() != e.value_sha256:
        raise ValueError("the copied value does not match its recorded SHA-256")
    key = letter.key
    if key is None and e.key is not None:
        key = e.key.encode("utf-8")
    elif key is None and e.key_b64 is not None:
        key = base64.b64decode(e.key_b64)
    dropped = (ERROR_CODE_HEADER, REPLAYED_FROM_HEADER)
    headers = [(k, v) for k, v in letter.headers if k not in dropped]
    headers.append((REPLAYED_FROM_HEADER, f"{e.partition}:{e.offset}".encode()))
    return Original(e.topic, key, value, headers)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=max(settings.max_message_bytes + 65536, 1_048_576),
        request_timeout_ms=30000,
        **client_options(settings.kafka),
    )


Progress = Callable[[int, int], None]


async def scan(
    settings: Settings, *, topic: str = OUT_DLQ, progress: Progress | None = None
) -> AsyncIterator[Letter]:
    """Every dead letter on ``topic``, in offset order within each partition.

    ``progress(read, total)`` is called every couple of seconds on long reads.
    Raises BrokerUnavailable when the broker cannot be reached or stops answering.
    """
    consumer = _consumer(settings)
    try:
        try:
            await consumer.start()
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return
            consumer.assign(tps)
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
        total = sum(max(end[tp] - begin[tp], 0) for tp in tps)
        read, last_report, last_data = 0, time.monotonic(), time.monotonic()
        past_end: float | None = None
        while True:
            try:
                batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=1000)
            except KafkaError as exc:
                raise BrokerUnavailable(f"reading {topic} failed: {exc}") from exc
            for _tp, records in sorted(batch.items(), key=lambda kv: kv[0].partition):
                for r in records:
                    read += 1
                    yield parse(r.partition, r.offset, r.key, r.value, r.headers)
            now = time.monotonic()
            if past_end is None and all([await consumer.position(tp) >= end[tp] for tp in tps]):
                past_end = now
            # past the end seen at the start, the read goes on until a poll comes back
            # empty (some brokers report the end early), or briefly while letters keep
            # arriving
            if past_end is not None and (not batch or now - past_end > PAST_END_S):
                break
            if batch:
                last_data = now
            elif now - last_data > STALL_S:
                raise BrokerUnavailable(f"{topic} stopped answering after {read} of {total}")
            if progress is not None and now - last_report >= 2.0:
                progress(read, max(total, read))
                last_report = now
    except OSError as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap} unreachable: {exc}") from exc
    finally:
        await consumer.stop()
