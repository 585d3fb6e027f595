"""The bridge's life: connect to Kafka, then to the MQTT broker, forward, reconnect.

Both connections are retried with :data:`pipeline.retry.CONNECT` backoff. While
the MQTT connection is down the broker keeps the persistent session: what was
not acknowledged, and what arrives meanwhile (up to the broker's queue limit,
``max_queued_messages`` in Mosquitto), is delivered when the bridge is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline import metrics_front_doors as metrics
from pipeline.clients.kafka import ensure_topics
from pipeline.errors import BrokerUnavailable, UpstreamUnavailable
from pipeline.retry import CONNECT, RetryPolicy
from pipeline.settings import Settings
from pipeline.sources.forward import KafkaForwarder
from pipeline.sources.mqtt.bridge import DOOR, TOPIC, Bridge
from pipeline.sources.mqtt.connection import MqttConnection, client_id, subscriptions

log = logging.getLogger(__name__)


class BridgeService:
    """``start`` (Kafka), ``run`` until stopped, ``health``, ``close``."""

    def __init__(
        self,
        settings: Settings,
        *,
        forwarder: KafkaForwarder | None = None,
        policy: RetryPolicy = CONNECT,
    ) -> None:
        self.settings = settings
        self.forwarder = forwarder or KafkaForwarder(settings, DOOR)
        self.bridge = Bridge(
            self.forwarder,
            max_bytes=settings.max_message_bytes,
            window=settings.mqtt.max_in_flight,
        )
        self._policy = policy
        self.mqtt_connected = False

    async def start(self, stop: asyncio.Event) -> bool:
        if not await self.forwarder.start(stop, self._policy):
            return False
        try:
            await ensure_topics(self.settings, [TOPIC])
        except BrokerUnavailable as exc:  # the topic may exist or be auto-created
            log.warning("could not check topic %s: %s", TOPIC, exc.reason)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        mqtt = self.settings.mqtt
        backoff = self._policy.backoff()
        log.info(
            "bridging MQTT %s:%d (client id %s, %s) to %s",
            mqtt.host, mqtt.port, client_id(mqtt), ", ".join(subscriptions(mqtt)), TOPIC,
        )  # fmt: skip
        while not stop.is_set():
            try:
                async with MqttConnection(mqtt) as conn:
                    self._connected(True)
                    backoff.reset()
                    await self.bridge.serve(
                        conn, conn.deliveries(), stop, self.settings.shutdown_timeout_s
                    )
            except UpstreamUnavailable as exc:
                metrics.FRONT_DOOR_ERRORS.labels(DOOR, "mqtt", exc.error_code).inc()
                log.warning("MQTT: %s", exc.reason)
            finally:
                self._connected(False)
            if not stop.is_set():
                await backoff.wait(stop)

    def _connected(self, up: bool) -> None:
        self.mqtt_connected = up
        metrics.FRONT_DOOR_CONNECTED.labels(DOOR, "mqtt").set(int(up))

    async def health(self) -> dict[str, Any]:
        ok = self.mqtt_connected and self.forwarder.started
        return {
            "ok": ok,
            "mqtt": {"ok": self.mqtt_connected, "client_id": client_id(self.settings.mqtt)},
            "kafka": {"ok": self.forwarder.started},
            "forwarded": self.bridge.forwarded,
        }

    async def close(self) -> None:
        await self.forwarder.close()
