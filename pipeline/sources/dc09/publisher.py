"""The receiver's way into Kafka: :class:`KafkaForwarder` (``acks=all``),
connected in the background so that the listeners answer from the start.

Until Kafka is connected every publish fails at once, and the frame goes
unanswered (never ``ACK``).
"""

from __future__ import annotations

import asyncio
import logging

from pipeline.clients.kafka import ensure_topics
from pipeline.errors import BrokerUnavailable
from pipeline.settings import Settings
from pipeline.sources.forward import KafkaForwarder

log = logging.getLogger(__name__)

TOPIC = "alerts.alarm"
DOOR = "dc09"


class KafkaPublisher:
    def __init__(self, settings: Settings, forwarder: KafkaForwarder | None = None) -> None:
        self._settings = settings
        self._bootstrap = settings.kafka_bootstrap
        self._forwarder = forwarder or KafkaForwarder(settings, DOOR)
        self._stop = asyncio.Event()
        self._connecting: asyncio.Task[bool] | None = None

    @property
    def ready(self) -> bool:
        return self._forwarder.started

    def start(self) -> None:
        """Connect in the background, retrying with backoff until :meth:`close`."""
        self._connecting = asyncio.create_task(self._connect(), name="dc09-kafka-connect")

    async def _connect(self) -> bool:
        if not await self._forwarder.start(self._stop):
            return False
        try:
            await ensure_topics(self._settings, [TOPIC])
        except BrokerUnavailable as exc:  # the topic may exist, or be created on first use
            log.warning("could not check topic %s: %s", TOPIC, exc.reason)
        return True

    async def publish(self, key: bytes | None, value: bytes) -> None:
        if not self._forwarder.started:
            raise BrokerUnavailable(f"not connected to Kafka at {self._bootstrap} yet")
        await self._forwarder.produce(TOPIC, key or b"", value)

    async def close(self) -> None:
        self._stop.set()
        if self._connecting is not None:
            await asyncio.gather(self._connecting, return_exceptions=True)
        await self._forwarder.close()
