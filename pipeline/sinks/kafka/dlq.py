"""Dead letters: the envelope of docs/formats.md section 7, and its publisher.

A record's offset is committed only after its dead letter is acknowledged by
the broker (acks=all), so a bad message is never dropped silently.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.clients.kafka import OUT_DLQ
from pipeline.decoders.envelope import iso_utc
from pipeline.errors import BrokerUnavailable, InputError
from schemas.dead_letter import DeadLetter
from schemas.records import RawRecord

log = logging.getLogger(__name__)

OVERSIZE_COPY_BYTES = 64 * 1024


def _text_or_b64(data: bytes) -> tuple[str | None, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(data).decode("ascii")


def build_dead_letter(
    record: RawRecord,
    *,
    stage: str,
    error_code: str,
    reason: str,
    attempts: int = 1,
    now: datetime | None = None,
) -> DeadLetter:
    value = record.value or b""
    truncated = error_code == "oversize" and len(value) > OVERSIZE_COPY_BYTES
    copied = value[:OVERSIZE_COPY_BYTES] if truncated else value
    v_text: str | None
    v_b64: str | None
    if truncated:
        # a cut may split a UTF-8 sequence: keep such a copy as base64
        v_text, v_b64 = None, base64.b64encode(copied).decode("ascii")
    else:
        v_text, v_b64 = _text_or_b64(copied)
    k_text, k_b64 = _text_or_b64(record.key) if record.key is not None else (None, None)
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=iso_utc(record.kafka_time),
        key=k_text,
        key_b64=k_b64,
        value=v_text,
        value_b64=v_b64,
        value_size=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
        value_truncated=True if truncated else None,
        stage=stage,
        error_code=error_code,
        reason=reason[:500],
        attempts=attempts,
        failed_at=iso_utc(now or datetime.now(UTC)),
    )


def from_error(record: RawRecord, exc: InputError, now: datetime | None = None) -> DeadLetter:
    return build_dead_letter(
        record, stage=exc.stage, error_code=exc.error_code, reason=exc.reason, now=now
    )


def envelope_dict(letter: DeadLetter) -> dict[str, object]:
    """The JSON object sent: optional fields omitted, but ``key`` null when absent."""
    out = letter.model_dump(exclude_none=True)
    if "key" not in out and "key_b64" not in out:
        out["key"] = None
    return out


class DeadLetterPublisher:
    """Sends dead letters and waits until the broker has them."""

    def __init__(self, producer: AIOKafkaProducer, topic: str = OUT_DLQ) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, items: Sequence[tuple[RawRecord, DeadLetter]]) -> None:
        if not items:
            return
        try:
            futures = []
            for record, letter in items:
                headers = [*record.headers, ("eriop-error-code", letter.error_code.encode())]
                body = orjson.dumps(envelope_dict(letter))
                futures.append(
                    await self._producer.send(self._topic, body, key=record.key, headers=headers)
                )
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BrokerUnavailable(f"dead-letter topic unavailable: {exc}") from exc
        for record, letter in items:
            metrics.DEAD_LETTERS.labels(record.topic, letter.stage, letter.error_code).inc()
            log.warning(
                "dead-lettered %s[%d]@%d: %s %s",
                record.topic,
                record.partition,
                record.offset,
                letter.error_code,
                letter.reason,
            )
