"""Small helpers for tests that drive a running worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaProducer

from eriop.traffic import Message


async def wait_until(
    probe: Callable[[], Awaitable[object]], *, timeout: float = 60, what: str = "condition"
) -> object:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def produce(bootstrap: str, messages: Iterable[Message]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144)
    await producer.start()
    n = 0
    try:
        futures = []
        for topic, key, value, headers in messages:
            futures.append(await producer.send(topic, value, key=key, headers=headers or None))
            n += 1
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n
