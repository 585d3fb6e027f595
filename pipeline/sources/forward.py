"""The front doors' way into Kafka: produce with ``acks=all`` and say when Kafka has it.

A front door acknowledges its sender (an MQTT PUBACK, a CAP entry marked as seen)
only after the future returned by :meth:`KafkaForwarder.enqueue` has completed.
aiokafka's errors are translated here: a retriable one into
:class:`BrokerUnavailable`, one that no retry will cure (a record too large for
the broker) into :class:`ForwardRejected`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline import metrics_front_doors as metrics
from pipeline.clients.kafka import make_producer
from pipeline.errors import BrokerUnavailable, EriopError
from pipeline.retry import CONNECT, RetryPolicy
from pipeline.settings import Settings

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


class ForwardRejected(EriopError):
    """Kafka refused the record for good (for example larger than the broker accepts)."""

    error_code = "kafka_rejected"


def _translate(exc: BaseException, bootstrap: str) -> EriopError:
    if isinstance(exc, KafkaError) and not exc.retriable and exc.__class__ is not KafkaError:
        return ForwardRejected(f"Kafka refused the record: {exc.__class__.__name__}")
    return BrokerUnavailable(f"Kafka at {bootstrap} unavailable: {exc.__class__.__name__} {exc}")


class KafkaForwarder:
    """One idempotent-where-possible producer for one front door."""

    def __init__(self, settings: Settings, door: str, producer: AIOKafkaProducer | None = None):
        self._bootstrap = settings.kafka_bootstrap
        self._producer = producer or make_producer(settings, linger_ms=0)
        self._door = door
        self.started = False

    async def start(self, stop: asyncio.Event, policy: RetryPolicy = CONNECT) -> bool:
        """Connect, retrying with backoff until connected or ``stop`` is set."""
        backoff = policy.backoff()
        while not stop.is_set():
            try:
                await self._producer.start()
            except (KafkaError, OSError) as exc:
                metrics.FRONT_DOOR_ERRORS.labels(self._door, "kafka", "connect").inc()
                log.warning("Kafka at %s not reachable yet: %s", self._bootstrap, exc)
                await backoff.wait(stop)
                continue
            self.started = True
            metrics.FRONT_DOOR_CONNECTED.labels(self._door, "kafka").set(1)
            return True
        return False

    async def enqueue(
        self, topic: str, key: bytes, value: bytes, headers: Headers = ()
    ) -> asyncio.Future[None]:
        """Hand the record to the producer; the future completes once Kafka acknowledged it."""
        try:
            sent = await self._producer.send(topic, value, key=key, headers=list(headers))
        except (KafkaError, OSError) as exc:
            raise self._failed(exc) from exc
        return asyncio.ensure_future(self._delivered(sent))

    async def produce(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        await (await self.enqueue(topic, key, value, headers))

    async def _delivered(self, sent: asyncio.Future[object]) -> None:
        try:
            await sent
        except (KafkaError, OSError) as exc:
            raise self._failed(exc) from exc
        metrics.FRONT_DOOR_CONNECTED.labels(self._door, "kafka").set(1)

    def _failed(self, exc: BaseException) -> EriopError:
        err = _translate(exc, self._bootstrap)
        if isinstance(err, BrokerUnavailable):
            metrics.FRONT_DOOR_CONNECTED.labels(self._door, "kafka").set(0)
        return err

    async def close(self) -> None:
        if self.started:
            try:
                await self._producer.stop()
            except (KafkaError, OSError) as exc:  # leaving anyway; what it held is unacknowledged
                log.warning("closing the Kafka producer: %s", exc)
            self.started = False
        metrics.FRONT_DOOR_CONNECTED.labels(self._door, "kafka").set(0)
