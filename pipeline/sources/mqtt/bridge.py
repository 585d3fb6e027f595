"""MQTT → ``alerts.axis``: each message produced as the device published it.

The Kafka key is the MQTT topic and a retained message carries the header
``mqtt-retain: 1`` (docs/formats.md §2.1, §2.2); the payload is not touched, so
connection messages and last wills reach the decoder as liveness, exactly as
the device sent them. A message is acknowledged to the MQTT broker (PUBACK)
only after Kafka has acknowledged the record, and in the order the messages
arrived (MQTT requires it). If Kafka is down the records wait and are retried
with backoff; the broker holds everything not yet acknowledged.

What can be produced twice: a record Kafka acknowledged whose PUBACK did not
reach the broker (the bridge died or the connection dropped in between) is
delivered again and produced again. The worker stores it once: the Axis
external id is built from the device's serial, topic, source and timestamp.

How many: at most ``window`` (``ERIOP_MQTT__MAX_IN_FLIGHT``) per lost connection.
The bridge asks the broker for no more than that many unacknowledged messages
(Receive Maximum), and also holds itself to it: a message beyond the window waits,
not yet produced, until an earlier one is acknowledged. Mosquitto 2.0.11 (Debian 12,
Ubuntu 22.04) sends past the Receive Maximum once a client acknowledges while
messages are queued; without the bridge's own limit, a lost connection there could
repeat every message the broker had sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from pipeline import metrics_front_doors as metrics
from pipeline.errors import BrokerUnavailable
from pipeline.retry import ALERT_PATH, RetryPolicy
from pipeline.sources.forward import ForwardRejected, Headers
from pipeline.sources.mqtt.connection import Delivery

log = logging.getLogger(__name__)

DOOR = "mqtt"
TOPIC = "alerts.axis"
RETAIN_HEADER = "mqtt-retain"


class Forwarder(Protocol):
    async def enqueue(
        self, topic: str, key: bytes, value: bytes, headers: Headers = ()
    ) -> asyncio.Future[None]: ...


class Acknowledger(Protocol):
    def ack(self, delivery: Delivery) -> bool: ...


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    sent: Awaitable[None] | None
    discard: str | None = None
    headers: Headers = field(default=())


def record_for(delivery: Delivery) -> tuple[bytes, bytes, Headers]:
    """Key, value and headers of the Kafka record for one MQTT message."""
    headers: Headers = ((RETAIN_HEADER, b"1"),) if delivery.retain else ()
    return delivery.topic.encode("utf-8"), delivery.payload, headers


class Bridge:
    """Forwards the deliveries of one MQTT connection at a time."""

    def __init__(
        self,
        forwarder: Forwarder,
        *,
        max_bytes: int,
        window: int = 100,
        topic: str = TOPIC,
        policy: RetryPolicy = ALERT_PATH,
    ) -> None:
        self._forwarder = forwarder
        self._window = window
        self._room = asyncio.Semaphore(window)
        self._max_bytes = max_bytes
        self._topic = topic
        self._policy = policy
        self._pending: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self.forwarded = 0

    async def _start(self, delivery: Delivery) -> _Pending:
        if not delivery.payload:
            # an empty retained message only clears the broker's retained copy
            return _Pending(delivery, None, discard="empty_payload")
        if len(delivery.payload) > self._max_bytes:
            return _Pending(delivery, None, discard="too_large")
        key, value, headers = record_for(delivery)
        try:
            sent = await self._forwarder.enqueue(self._topic, key, value, headers)
        except BrokerUnavailable:
            sent = None  # the acknowledging loop retries it
        return _Pending(delivery, sent, headers=headers)

    async def _until_produced(self, item: _Pending) -> bool:
        """Wait for Kafka's acknowledgement, producing again until it comes; False if refused."""
        backoff = self._policy.backoff()
        key, value, headers = record_for(item.delivery)
        sent = item.sent
        while True:
            try:
                if sent is None:
                    sent = await self._forwarder.enqueue(self._topic, key, value, headers)
                await sent
                return True
            except BrokerUnavailable as exc:
                metrics.FRONT_DOOR_ERRORS.labels(DOOR, "kafka", "kafka").inc()
                if backoff.attempts == 0:
                    log.warning("holding MQTT acknowledgements until Kafka is back: %s", exc)
                sent = None
                await backoff.wait()
            except ForwardRejected as exc:
                metrics.FRONT_DOOR_ERRORS.labels(DOOR, "kafka", exc.error_code).inc()
                log.error("message on %s not forwarded: %s", item.delivery.topic, exc.reason)
                return False

    async def _acknowledge(self, conn: Acknowledger) -> None:
        while (item := await self._pending.get()) is not None:
            if item.discard is not None:
                metrics.FRONT_DOOR_DISCARDED.labels(DOOR, item.discard).inc()
            elif await self._until_produced(item):
                self.forwarded += 1
                metrics.FRONT_DOOR_FORWARDED.labels(DOOR, DOOR).inc()
            if not conn.ack(item.delivery):
                log.info("connection gone before PUBACK; the broker will deliver it again")
            metrics.MQTT_IN_FLIGHT.dec()
            self._room.release()

    async def serve(
        self,
        conn: Acknowledger,
        deliveries: AsyncIterator[Delivery],
        stop: asyncio.Event,
        drain_s: float,
    ) -> None:
        """Forward until the deliveries end (connection lost) or ``stop`` is set.

        On ``stop`` the bridge takes no new message and waits up to ``drain_s``
        for Kafka to acknowledge those it holds, so they are PUBACKed before it
        disconnects. On a lost connection, unacknowledged messages are abandoned:
        the broker delivers them again.
        """
        self._pending = asyncio.Queue()
        self._room = asyncio.Semaphore(self._window)
        acker = asyncio.create_task(self._acknowledge(conn))
        reader = asyncio.create_task(self._read(deliveries))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({reader, acker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                self._pending.put_nowait(None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(acker), drain_s)
            for ended in (reader, acker):
                if ended.done() and not ended.cancelled() and ended.exception() is not None:
                    raise ended.exception()  # type: ignore[misc]
        finally:
            for task in (reader, acker, stopping):
                task.cancel()
            await asyncio.gather(reader, acker, stopping, return_exceptions=True)
            metrics.MQTT_IN_FLIGHT.set(0)

    async def _read(self, deliveries: AsyncIterator[Delivery]) -> None:
        async for delivery in deliveries:
            await self._room.acquire()  # released once it is acknowledged
            metrics.MQTT_IN_FLIGHT.inc()
            self._pending.put_nowait(await self._start(delivery))
