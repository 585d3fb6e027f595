"""The fetch wait that the alert consumer relies on is where the transport sets it."""

from __future__ import annotations

import asyncio

import aiokafka

from agents.transport import App, Transport
from pipeline.settings import Settings


def test_aiokafka_keeps_the_fetch_wait_where_the_transport_sets_it() -> None:
    async def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=123)

    consumer = asyncio.run(make())
    assert consumer._fetch_max_wait_ms == 123


def test_the_app_uses_the_transport() -> None:
    app = App("t", broker="kafka://127.0.0.1:1")
    assert isinstance(app.transport, Transport)
    assert Transport.Consumer._new_consumer_thread.__qualname__.startswith("Consumer.")


def test_fetch_wait_is_short_on_the_embedded_broker_only() -> None:
    assert Settings(embedded_broker=True).effective_fetch_wait_ms <= 10
    assert Settings(embedded_broker=False).effective_fetch_wait_ms == 500
    assert Settings(kafka={"fetch_max_wait_ms": 50}).effective_fetch_wait_ms == 50
