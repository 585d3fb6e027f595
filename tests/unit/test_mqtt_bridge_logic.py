"""The MQTT bridge without brokers: records, subscriptions, PUBACK order and retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline.errors import BrokerUnavailable
from pipeline.retry import RetryPolicy
from pipeline.settings import MqttSettings
from pipeline.sources.forward import ForwardRejected, Headers
from pipeline.sources.mqtt.bridge import Bridge, record_for
from pipeline.sources.mqtt.connection import Delivery, MqttConnection, subscriptions

FAST = RetryPolicy(initial_s=0.001, cap_s=0.002)


def delivery(mid: int, payload: bytes = b'{"a":1}', retain: bool = False) -> Delivery:
    return Delivery(f"axis/S{mid}/event/x", payload, retain, 1, mid)


def test_record_is_topic_payload_and_retain_header() -> None:
    assert record_for(delivery(1)) == (b"axis/S1/event/x", b'{"a":1}', ())
    assert record_for(delivery(2, retain=True))[2] == (("mqtt-retain", b"1"),)


def test_shared_group_prefixes_every_filter() -> None:
    s = MqttSettings(topics=("axis/+/event/#", "site/#"), shared_group="eriop")
    assert subscriptions(s) == ["$share/eriop/axis/+/event/#", "$share/eriop/site/#"]
    assert subscriptions(MqttSettings()) == ["axis/+/event/#"]
    with pytest.raises(ValueError, match="shared_group"):
        MqttSettings(topics=("$share/g/a/#",))


async def test_manual_acknowledgement_is_switched_on() -> None:
    # aiomqtt 2.x keeps the paho client in `_client`; the bridge relies on it
    conn = MqttConnection(MqttSettings(client_id="t"))
    assert conn._client._client._manual_ack is True


class FakeKafka:
    """Fails the first ``failures`` sends of each key, refuses keys in ``refuse``."""

    def __init__(self, failures: int = 0, refuse: frozenset[bytes] = frozenset()) -> None:
        self.failures = failures
        self.refuse = refuse
        self.attempts: dict[bytes, int] = {}
        self.produced: list[bytes] = []
        self.release = asyncio.Event()

    async def enqueue(
        self, topic: str, key: bytes, value: bytes, headers: Headers = ()
    ) -> asyncio.Future[None]:
        n = self.attempts[key] = self.attempts.get(key, 0) + 1
        return asyncio.ensure_future(self._deliver(key, n))

    async def _deliver(self, key: bytes, n: int) -> None:
        await self.release.wait()
        if key in self.refuse:
            raise ForwardRejected("too large")
        if n <= self.failures:
            raise BrokerUnavailable("down")
        self.produced.append(key)


class FakeConn:
    def __init__(self, kafka: FakeKafka, until: int) -> None:
        self.kafka = kafka
        self.until = until
        self.enough = asyncio.Event()
        self.acked: list[int] = []
        self.produced_at_ack: list[int] = []

    def ack(self, d: Delivery) -> bool:
        self.acked.append(d.mid)
        self.produced_at_ack.append(len(self.kafka.produced))
        if len(self.acked) >= self.until:
            self.enough.set()
        return True


async def feed(items: list[Delivery], done: asyncio.Event) -> AsyncIterator[Delivery]:
    for d in items:
        yield d
    await done.wait()  # the connection stays open until the test stops


async def run(kafka: FakeKafka, items: list[Delivery], until: int) -> FakeConn:
    conn = FakeConn(kafka, until)
    bridge = Bridge(kafka, max_bytes=100, policy=FAST)
    stop, done = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(bridge.serve(conn, feed(items, done), stop, drain_s=5))
    await asyncio.sleep(0)
    assert conn.acked == []  # nothing acknowledged before Kafka answered
    kafka.release.set()
    await asyncio.wait_for(conn.enough.wait(), 10)
    stop.set()
    await task
    return conn


async def test_puback_in_arrival_order_after_kafka_even_with_retries() -> None:
    kafka = FakeKafka(failures=2)
    items = [delivery(i) for i in range(1, 6)]
    conn = await run(kafka, items, until=5)
    assert conn.acked == [1, 2, 3, 4, 5]
    assert all(kafka.attempts[d.topic.encode()] == 3 for d in items)
    # each ack came after its own record was produced
    assert all(n >= i + 1 for i, n in enumerate(conn.produced_at_ack))


async def test_empty_oversize_and_refused_are_acknowledged_not_forwarded() -> None:
    kafka = FakeKafka(refuse=frozenset({b"axis/S3/event/x"}))
    items = [delivery(1, b""), delivery(2, b"x" * 101), delivery(3), delivery(4)]
    conn = await run(kafka, items, until=4)
    assert conn.acked == [1, 2, 3, 4]
    assert kafka.produced == [b"axis/S4/event/x"]


class HeldKafka:
    """Every record waits for the test to answer it."""

    def __init__(self) -> None:
        self.sent: list[asyncio.Future[None]] = []
        self.grew = asyncio.Event()

    async def enqueue(
        self, topic: str, key: bytes, value: bytes, headers: Headers = ()
    ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append(fut)
        self.grew.set()
        return fut

    async def until_sent(self, n: int) -> None:
        while len(self.sent) < n:
            self.grew.clear()
            await asyncio.wait_for(self.grew.wait(), 10)


async def settle() -> None:
    # every ready callback runs: the reader, the acknowledger and the fake
    for _ in range(20):
        await asyncio.sleep(0)


async def test_window_holds_even_when_the_broker_sends_more() -> None:
    # Mosquitto 2.0.11 can send past the Receive Maximum; the bridge produces at
    # most `window` messages whose PUBACK is still due, whatever arrives
    kafka = HeldKafka()
    conn = FakeConn(FakeKafka(), until=30)
    bridge = Bridge(kafka, max_bytes=100, window=10, policy=FAST)
    stop, done = asyncio.Event(), asyncio.Event()
    items = [delivery(i) for i in range(1, 31)]
    task = asyncio.create_task(bridge.serve(conn, feed(items, done), stop, drain_s=5))
    await kafka.until_sent(10)
    await settle()
    assert len(kafka.sent) == 10
    assert conn.acked == []

    for fut in kafka.sent[:3]:
        fut.set_result(None)
    await kafka.until_sent(13)
    await settle()
    assert conn.acked == [1, 2, 3]
    assert len(kafka.sent) == 13  # three acknowledged, three more taken

    while len(conn.acked) < 30:
        for fut in kafka.sent:
            if not fut.done():
                fut.set_result(None)
        await settle()
        assert len(kafka.sent) - len(conn.acked) <= 10
    assert conn.acked == list(range(1, 31))
    stop.set()
    await task
