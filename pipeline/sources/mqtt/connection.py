"""One MQTT connection of the bridge, with PUBACK in the bridge's hands.

aiomqtt 2.x acknowledges a QoS 1 message as soon as it is delivered; the
paho-mqtt client underneath can leave it to the application
(``manual_ack_set``/``ack``), and aiomqtt keeps that client in ``_client``.
That one private attribute is used here and nowhere else; a test
(tests/unit/test_mqtt_bridge_logic.py) fails if aiomqtt stops exposing it.

The session is persistent (MQTT 5, clean start off, a session expiry), so
what the broker has not had a PUBACK for is delivered again after a
reconnect, from this process or the next one with the same client id.
aiomqtt/paho errors are translated here into :class:`UpstreamUnavailable`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from pipeline.errors import UpstreamUnavailable
from pipeline.settings import MqttSettings


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    mid: int


def client_id(settings: MqttSettings) -> str:
    return settings.client_id or f"eriop-bridge-{socket.gethostname()}"


def subscriptions(settings: MqttSettings) -> list[str]:
    """The filters to subscribe, each under ``$share/<group>/`` when the load is shared."""
    if settings.shared_group:
        return [f"$share/{settings.shared_group}/{t}" for t in settings.topics]
    return list(settings.topics)


def _tls(settings: MqttSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(cafile=settings.tls_ca_file)
    if settings.tls_cert_file:
        ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return ctx


def _payload(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if value is None:
        return b""
    return str(value).encode("utf-8")


class MqttConnection:
    """``async with MqttConnection(settings) as conn``: connected and subscribed."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = settings.session_expiry_s
        # the broker sends no more than this many unacknowledged messages at once
        props.ReceiveMaximum = settings.max_in_flight
        password = settings.password.get_secret_value() if settings.password else None
        self._client = aiomqtt.Client(
            settings.host,
            settings.port,
            identifier=client_id(settings),
            username=settings.username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=settings.keepalive_s,
            tls_context=_tls(settings),
            timeout=10,
        )
        self._client._client.manual_ack_set(True)

    def _where(self) -> str:
        return f"MQTT broker {self.settings.host}:{self.settings.port}"

    async def __aenter__(self) -> MqttConnection:
        try:
            await self._client.__aenter__()
            for topic in subscriptions(self.settings):
                await self._client.subscribe(topic, options=SubscribeOptions(qos=1))
        except aiomqtt.MqttError as exc:
            await self._quietly_leave()
            raise UpstreamUnavailable(f"{self._where()}: {exc}", error_code="connect") from exc
        except OSError as exc:
            await self._quietly_leave()
            raise UpstreamUnavailable(f"{self._where()}: {exc}", error_code="connect") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._quietly_leave()

    async def _quietly_leave(self) -> None:
        # already gone or not: the broker keeps the session either way
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await self._client.__aexit__(None, None, None)

    async def deliveries(self) -> AsyncIterator[Delivery]:
        try:
            async for m in self._client.messages:
                yield Delivery(str(m.topic), _payload(m.payload), bool(m.retain), m.qos, m.mid)
        except aiomqtt.MqttError as exc:
            raise UpstreamUnavailable(f"{self._where()}: {exc}", error_code="disconnect") from exc

    def ack(self, delivery: Delivery) -> bool:
        """Send the PUBACK; False when the connection is gone (the broker will redeliver)."""
        if delivery.qos == 0:
            return True
        rc = self._client._client.ack(delivery.mid, delivery.qos)
        return rc == MQTTErrorCode.MQTT_ERR_SUCCESS
