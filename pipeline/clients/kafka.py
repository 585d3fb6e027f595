"""Kafka clients built from settings, and topic administration.

aiokafka exceptions are translated here into :class:`BrokerUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, UnknownError
from aiokafka.protocol.group import LeaveGroupRequest

from pipeline.clients.kafka_records import install as install_raw_records
from pipeline.clients.kafka_records import raw_records
from pipeline.errors import BrokerUnavailable, ConfigError
from pipeline.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

ALERT_TOPICS = ("alerts.alarm", "alerts.axis", "alerts.cap", "alerts.json")
BULK_TOPICS = ("telemetry.raw", "gps.raw")
INBOUND_TOPICS = ALERT_TOPICS + BULK_TOPICS
OUT_NORMALIZED = "alerts.normalized"
OUT_DLQ = "eriop.dlq"
ALL_TOPICS = (*INBOUND_TOPICS, OUT_NORMALIZED, OUT_DLQ)


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Security options shared by producers, consumers and the admin client."""
    opts: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=kafka.ssl_cafile)
        if kafka.ssl_certfile:
            ctx.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
        opts["ssl_context"] = ctx
    if kafka.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = kafka.sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            opts["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return opts


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    kafka = settings.kafka
    if not kafka.idempotence:
        log.warning(
            "Kafka producer idempotence is OFF (ERIOP_KAFKA__IDEMPOTENCE=false). "
            "Acceptable for the embedded development broker only; a retried send "
            "may duplicate a dead letter or a normalized alert on Apache Kafka."
        )
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": kafka.idempotence,
        "linger_ms": 2,
        "max_request_size": max(settings.max_message_bytes + 65536, 1_048_576),
        "request_timeout_ms": 30000,
        **client_options(kafka),
    }
    opts.update(overrides)
    return AIOKafkaProducer(**opts)


async def start_producer(producer: AIOKafkaProducer, *, idempotence: bool) -> None:
    """Start ``producer``; a broker that refuses idempotence is a configuration error."""
    try:
        await producer.start()
    except UnknownError as exc:
        if idempotence:
            raise ConfigError(
                "the broker refused an idempotent producer (InitProducerId failed); the "
                "embedded development broker does not support it: set "
                "ERIOP_KAFKA__IDEMPOTENCE=false there (keep it on for Apache Kafka)"
            ) from exc
        raise BrokerUnavailable(f"producer cannot connect: {exc}") from exc
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"producer cannot connect: {exc}") from exc


async def broker_health(producer: AIOKafkaProducer, timeout_s: float = 5.0) -> dict[str, Any]:
    """Whether the producer reaches a broker now: ``{"ok": bool, "error"?: str}``."""
    try:
        client = producer.client
        ready = await asyncio.wait_for(client.ready(client.get_random_node()), timeout_s)
        return {"ok": bool(ready)}
    except Exception as exc:  # a health probe reports; it never raises
        return {"ok": False, "error": str(exc)[:200] or type(exc).__name__}


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer for a batch consumer: its records are :class:`RawRecord`
    (pipeline.clients.kafka_records)."""
    install_raw_records()
    kafka = settings.kafka
    opts: dict[str, Any] = {
        "key_deserializer": raw_records,
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        # the embedded broker waits about half the session timeout before it
        # completes a join; short timeouts keep starts and rebalances quick there
        "session_timeout_ms": 6000 if settings.embedded_broker else 30000,
        "heartbeat_interval_ms": 1000 if settings.embedded_broker else 3000,
        "rebalance_timeout_ms": 6000 if settings.embedded_broker else 60000,
        "max_partition_fetch_bytes": max(settings.max_message_bytes + 65536, 1_048_576),
        "fetch_max_wait_ms": settings.effective_fetch_wait_ms,
        **client_options(kafka),
    }
    opts.update(overrides)
    return AIOKafkaConsumer(**opts)


async def ensure_topics(settings: Settings, topics: Iterable[str] = ALL_TOPICS) -> list[str]:
    """Create missing topics; returns the names created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=15000,
        **client_options(settings.kafka),
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new = [
                NewTopic(t, settings.kafka.partitions, settings.kafka.replication_factor)
                for t in missing
            ]
            resp = await admin.create_topics(new)
            for topic, code, *_ in getattr(resp, "topic_errors", []):
                if code not in (0, 36):  # 36: already exists (a concurrent creator)
                    raise BrokerUnavailable(f"creating topic {topic} failed with error {code}")
        return missing
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap} unavailable: {exc}") from exc
    except OSError as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap} unreachable: {exc}") from exc
    finally:
        await admin.close()


async def leave_group(consumer: AIOKafkaConsumer) -> None:
    """Leave the consumer's group before it stops, also from a first generation numbered 0.

    aiokafka leaves a group only from generation 1 on, which is where Apache Kafka
    starts. The embedded broker numbers the first generation 0, so a member that
    stopped in it would hold its partitions until its session timed out, and its
    successor would wait that long for them. Static members never leave, as in
    aiokafka: a successor takes their place.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or coordinator.generation != 0 or not coordinator.member_id:
        return
    if getattr(coordinator, "_group_instance_id", None) is not None:
        return
    try:
        await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
    except KafkaError as exc:
        log.info("leaving %s failed (its session will time out): %s", coordinator.group_id, exc)


def fetch_wait(consumer: AIOKafkaConsumer) -> int:
    """How long the started consumer's fetches may wait at the broker, in ms."""
    return int(consumer._fetcher._fetch_max_wait_ms)


def set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Change how long the consumer's next fetches may wait at the broker for data.

    aiokafka reads it from its fetcher for every fetch request it builds; a
    started consumer has one.
    """
    consumer._fetcher._fetch_max_wait_ms = wait_ms
