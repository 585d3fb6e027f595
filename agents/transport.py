"""Faust's Kafka transport with the fetch long-poll as a setting.

A consumer's fetch waits up to ``fetch_max_wait_ms`` for data. Apache Kafka
answers as soon as a record arrives, so the wait costs nothing there; the
embedded development broker answers only when the wait expires, so the wait
becomes alert latency. Faust fixes it at 1500 ms; here it is
``ERIOP_KAFKA__FETCH_MAX_WAIT_MS`` (short on the embedded broker).
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait_ms", None)
        if wait is not None:
            # read when the consumer starts its fetcher, so setting it here applies
            consumer._fetch_max_wait_ms = int(wait)
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer: ClassVar[Any] = Consumer


class App(faust.App):
    """A Faust app that consumes through :class:`Transport`."""

    fetch_max_wait_ms: int | None = None

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
