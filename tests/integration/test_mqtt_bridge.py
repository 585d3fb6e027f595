"""eriop mqtt-bridge against a real Mosquitto and the embedded Kafka broker.

The devices are played by paho-mqtt clients (independent of the bridge's code),
publishing with QoS 1 what Axis devices publish: audio analytics, tampering, an
I/O port, the retained connection message and the last will.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from eriop.dev import stack as devstack
from pipeline.decoders.axis.event import AxisEvent, parse_axis
from pipeline.settings import AxisSettings, Settings
from pipeline.sources.mqtt.service import BridgeService
from schemas.records import RawRecord
from tests.integration.mqtt_helpers import (
    Publisher,
    axis_event,
    axis_mix,
    connection_message,
    mosquitto,
    read_topic,
)
from tests.integration.util import wait_until

pytestmark = pytest.mark.timeout(180)
__all__ = ["mosquitto"]

REPO = Path(__file__).resolve().parents[2]
START_MS = 1_741_944_600_000


def bridge_settings(bootstrap: str, mqtt_port: int, **mqtt: Any) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        embedded_broker=True,
        kafka={"idempotence": False, "partitions": 2},
        mqtt={"host": "127.0.0.1", "port": mqtt_port, **mqtt},
        shutdown_timeout_s=10,
    )


@asynccontextmanager
async def running_bridge(settings: Settings) -> AsyncIterator[BridgeService]:
    service = BridgeService(settings)
    stop = asyncio.Event()
    assert await service.start(stop)
    task = asyncio.create_task(service.run(stop))

    async def connected() -> bool:
        return service.mqtt_connected

    try:
        await wait_until(connected, timeout=20, what="the bridge's MQTT connection")
        yield service
    finally:
        stop.set()
        await task
        await service.close()


async def test_axis_messages_reach_alerts_axis_as_published(
    broker: devstack.Broker, mosquitto: devstack.Mosquitto
) -> None:
    device = Publisher(mosquitto.port)
    hello_topic, hello = connection_message(True)
    device.publish(hello_topic, hello, retain=True)  # before the bridge subscribes
    sent = axis_mix(START_MS)
    async with running_bridge(bridge_settings(broker.bootstrap, mosquitto.port, client_id="b1")):
        for topic, payload in sent:
            device.publish(topic, payload)
        dying = Publisher(mosquitto.port, client_id="axis-dying", will=True)
        dying.vanish()
        device.publish(*axis_event("axis:AudioClassification/Speech", {}, {"x": "1"}, START_MS))
        device.publish("axis/ACCC8E7B2F10/event/cleared", b"", retain=True)  # clears, not forwarded

        async def all_there() -> list[Any] | None:
            got = await read_topic(broker.bootstrap)
            return got if len(got) >= len(sent) + 3 else None

        records = await wait_until(all_there, timeout=30, what="records in alerts.axis")
    device.close()
    assert isinstance(records, list)
    by_value: dict[bytes, tuple[bytes, dict[str, bytes]]] = {v: (k, h) for k, v, h in records}
    assert len(records) == len(sent) + 3
    for topic, payload in sent:
        key, headers = by_value[payload]  # the payload is forwarded byte for byte
        assert key == topic.encode()
        assert "mqtt-retain" not in headers
    key, headers = by_value[hello]
    assert key == hello_topic.encode()
    assert headers["mqtt-retain"] == b"1"
    _, will = connection_message(False)
    key, headers = by_value[will]
    assert key == hello_topic.encode()
    assert "mqtt-retain" not in headers

    # the decoder reads them as the contract says: liveness for connection and will
    now = datetime(2025, 3, 14, 9, 31, tzinfo=UTC)
    events = [parse_axis(_raw(k, v, h), AxisSettings(), now) for k, v, h in records]
    axis = [e for e in events if isinstance(e, AxisEvent)]
    liveness = [e for e in axis if e.path == "connection"]
    assert sorted(bool(e.connected) for e in liveness) == [False, True]
    assert [e.retained for e in liveness if e.connected] == [True]
    alerts = {e.external_id for e in axis if e.mapping is not None}
    assert len(alerts) == len(sent)


def _raw(key: bytes, value: bytes, headers: dict[str, bytes]) -> RawRecord:
    return RawRecord("alerts.axis", 0, 0, START_MS + 60_000, key, value, tuple(headers.items()))


def _bridge_process(
    bootstrap: str, mqtt_port: int, log: Path
) -> tuple[subprocess.Popen[bytes], int]:
    env = {
        **os.environ,
        "ERIOP_KAFKA_BOOTSTRAP": bootstrap,
        "ERIOP_EMBEDDED_BROKER": "true",
        "ERIOP_KAFKA__IDEMPOTENCE": "false",
        "ERIOP_MQTT__HOST": "127.0.0.1",
        "ERIOP_MQTT__PORT": str(mqtt_port),
        "ERIOP_MQTT__CLIENT_ID": "eriop-bridge-killed",
        "ERIOP_MQTT__MAX_IN_FLIGHT": "20",
    }
    port = devstack.free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eriop.cli", "mqtt-bridge", "--metrics-port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, port


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_bridge_killed_mid_stream_loses_nothing_acknowledged(
    broker: devstack.Broker, mosquitto: devstack.Mosquitto, tmp_path: Path
) -> None:
    total = 400
    messages = [
        axis_event(
            "onvif:Device/axis:IO/Port", {"port": str(i % 4)}, {"state": str(i % 2)}, START_MS + i
        )
        for i in range(total)
    ]
    log = tmp_path / "bridge.log"
    first, first_port = _bridge_process(broker.bootstrap, mosquitto.port, log)
    device = Publisher(mosquitto.port)
    try:
        await wait_until(lambda: _ready(first_port), timeout=30, what="the first bridge")

        def publish_first_half() -> None:
            for topic, payload in messages[: total // 2]:
                device.publish(topic, payload)  # returns after Mosquitto's PUBACK

        publisher = asyncio.create_task(asyncio.to_thread(publish_first_half))

        async def some_forwarded() -> bool:
            return len(await read_topic(broker.bootstrap)) >= 20

        await wait_until(some_forwarded, timeout=60, what="the first records")
        first.send_signal(signal.SIGKILL)  # no drain, no DISCONNECT, PUBACKs pending
        first.wait(10)
        await publisher
        # published while no bridge runs: kept in the bridge's persistent session
        for topic, payload in messages[total // 2 :]:
            device.publish(topic, payload)
        assert len(await read_topic(broker.bootstrap)) < total
        second, second_port = _bridge_process(broker.bootstrap, mosquitto.port, log)
        try:
            await wait_until(lambda: _ready(second_port), timeout=30, what="the second bridge")

            async def everything() -> list[Any] | None:
                got = await read_topic(broker.bootstrap)
                return got if {v for _, v, _ in got} >= {p for _, p in messages} else None

            records = await wait_until(everything, timeout=90, what="every published message")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        device.close()
    assert isinstance(records, list)
    duplicates = len(records) - total
    # at most what was in flight (the broker's receive maximum) is produced twice
    assert 0 <= duplicates <= 20, duplicates
    now = datetime(2025, 3, 14, 9, 31, tzinfo=UTC)
    events = [parse_axis(_raw(k, v, h), AxisSettings(), now) for k, v, h in records]
    ids = [e.external_id for e in events if isinstance(e, AxisEvent)]
    assert len(set(ids)) == total  # what was produced twice is one alert downstream


async def test_two_bridges_share_a_subscription_and_produce_each_message_once(
    broker: devstack.Broker, mosquitto: devstack.Mosquitto
) -> None:
    total = 60
    settings = [
        bridge_settings(broker.bootstrap, mosquitto.port, client_id=f"b{i}", shared_group="eriop")
        for i in (1, 2)
    ]
    device = Publisher(mosquitto.port)
    async with running_bridge(settings[0]) as one, running_bridge(settings[1]) as two:
        for i in range(total):
            device.publish(
                *axis_event("axis:AudioClassification/Shout", {}, {"Detected": "1"}, START_MS + i)
            )

        async def all_forwarded() -> bool:
            return one.bridge.forwarded + two.bridge.forwarded >= total

        await wait_until(all_forwarded, timeout=30, what="both bridges forwarding")
    device.close()
    records = await read_topic(broker.bootstrap)
    assert len(records) == total
    assert len({json.loads(v)["timestamp"] for _, v, _ in records}) == total
    assert one.bridge.forwarded > 0
    assert two.bridge.forwarded > 0


async def test_bridge_reconnects_when_the_mqtt_broker_restarts(
    broker: devstack.Broker, mosquitto: devstack.Mosquitto
) -> None:
    settings = bridge_settings(broker.bootstrap, mosquitto.port, client_id="b-restart")
    async with running_bridge(settings) as service:
        device = Publisher(mosquitto.port)
        device.publish(*axis_event("axis:AudioClassification/Shout", {}, {"Detected": "1"}, 1))
        device.close()

        async def first() -> bool:
            return service.bridge.forwarded >= 1

        await wait_until(first, timeout=20, what="the first message")
        mosquitto.stop()  # this test's broker keeps nothing across a restart

        async def noticed() -> bool:
            return not service.mqtt_connected

        await wait_until(noticed, timeout=20, what="the bridge to notice the broker left")
        mosquitto.start()

        async def back() -> bool:
            return service.mqtt_connected

        await wait_until(back, timeout=30, what="the bridge to reconnect")
        device = Publisher(mosquitto.port, client_id="axis-after-restart")
        device.publish(*axis_event("axis:AudioClassification/Shout", {}, {"Detected": "1"}, 2))
        device.close()

        async def both() -> bool:
            return service.bridge.forwarded >= 2

        await wait_until(both, timeout=20, what="the message published after the restart")
    timestamps = sorted(
        json.loads(v)["timestamp"] for _, v, _ in await read_topic(broker.bootstrap)
    )
    assert timestamps == [1, 2]
    health = await service.health()
    assert not health["ok"]  # stopped: no longer connected
