"""A Mosquitto of the test's own, an independent MQTT publisher (paho-mqtt, not the
bridge's code), Axis payloads as devices publish them, and a Kafka reader."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from eriop.dev import stack as devstack

SERIAL = "ACCC8E7B2F10"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[devstack.Mosquitto]:
    m = devstack.Mosquitto(devstack.free_port(), str(tmp_path / "mosquitto")).start()
    yield m
    m.stop()


def axis_event(
    path: str, source: dict[str, str], data: dict[str, str], ts_ms: int, serial: str = SERIAL
) -> tuple[str, bytes]:
    """(MQTT topic, payload) as an Axis device's MQTT event publication sends them."""
    onvif_topic = path
    mqtt_path = path.replace("onvif:", "tns:onvif/").replace("axis:", "tns:axis/")
    suffix = "".join(f"/$source/{k}/{v}" for k, v in source.items())
    topic = f"axis/{serial}/event/{mqtt_path}{suffix}"
    payload = {
        "topic": onvif_topic,
        "timestamp": ts_ms,
        "serial": serial,
        "message": {"source": source, "key": {}, "data": data},
    }
    return topic, json.dumps(payload, separators=(",", ":")).encode()


def axis_mix(start_ms: int, serial: str = SERIAL) -> list[tuple[str, bytes]]:
    """Audio analytics, tampering and an I/O port, rising then falling."""
    out = []
    for i, (path, source, item) in enumerate(
        [
            (
                "axis:AudioClassification/Screaming",
                {"AudioSource": "AudioDevice0Input0"},
                "Detected",
            ),
            (
                "axis:AudioClassification/GlassBreak",
                {"AudioSource": "AudioDevice0Input0"},
                "Detected",
            ),
            ("onvif:VideoSource/axis:Tampering", {"channel": "1"}, "tampering"),
            ("onvif:Device/axis:IO/Port", {"port": "1"}, "state"),
        ]
    ):
        out.append(axis_event(path, source, {item: "1"}, start_ms + 10 * i, serial))
        out.append(axis_event(path, source, {item: "0"}, start_ms + 10 * i + 5, serial))
    return out


def connection_message(connected: bool, serial: str = SERIAL) -> tuple[str, bytes]:
    payload = {"serial": serial, "connected": connected}
    return f"axis/{serial}/event/connection", json.dumps(payload).encode()


class Publisher:
    """A paho-mqtt client publishing with QoS 1; ``publish`` returns after the PUBACK."""

    def __init__(self, port: int, client_id: str = "axis-device-test", will: bool = False):
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if will:
            topic, payload = connection_message(False)
            self.client.will_set(topic, payload, qos=1, retain=True)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(10), "publisher could not connect to Mosquitto"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def vanish(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker sends the last will."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def read_topic(
    bootstrap: str, topic: str = "alerts.axis"
) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    """Every record now in ``topic`` (all partitions): (key, value, headers)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes, bytes, dict[str, bytes]]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    out.append((r.key or b"", r.value or b"", dict(r.headers)))
        return out
    finally:
        await consumer.stop()
