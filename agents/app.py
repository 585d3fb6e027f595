"""The Faust app: the alert agent, with the runtime as a service.

Alert topics are consumed by one Faust agent (low volume; Faust gives the
group, rebalancing and timers). Each batch it takes is handed to
``Runtime.alerts.handle``, which returns only when the batch is durably stored
or dead-lettered. Faust's own offset commits are not relied on: positions are
kept in PostgreSQL with the rows, and every assignment seeks to them.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from mode import Service

from agents.batching import take_batches
from agents.transport import App
from pipeline import metrics
from pipeline.clients.kafka import ALERT_TOPICS, client_options
from pipeline.runtime.root import Runtime
from pipeline.settings import Settings
from pipeline.sources.positions import seek_to_stored
from schemas.records import RawRecord

log = logging.getLogger(__name__)


def _credentials(settings: Settings) -> Any:
    """Faust's form of the security options :func:`client_options` builds."""
    opts = client_options(settings.kafka)
    if opts["security_protocol"] == "PLAINTEXT":
        return None
    ctx = opts.get("ssl_context")
    if "sasl_mechanism" in opts:
        return faust.SASLCredentials(
            username=opts["sasl_plain_username"],
            password=opts.get("sasl_plain_password", ""),
            ssl_context=ctx,
            mechanism=opts["sasl_mechanism"],
        )
    return faust.SSLCredentials(ctx)


def to_raw(event: Any) -> RawRecord:
    m = event.message
    headers = m.headers.items() if isinstance(m.headers, dict) else (m.headers or ())
    return RawRecord(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        timestamp_ms=round(m.timestamp * 1000),
        key=m.key,
        value=m.value,
        headers=tuple((k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in headers),
    )


def create_app(settings: Settings, runtime: Runtime) -> faust.App:
    embedded = settings.embedded_broker
    app = App(
        settings.kafka.alerts_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=_credentials(settings),
        store="memory://",
        # /metrics and /health are served by the runtime's own server
        web_enabled=False,
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0 if embedded else 30.0,
        broker_heartbeat_interval=1.0 if embedded else 3.0,
        broker_rebalance_timeout=6.0 if embedded else 60.0,
        broker_commit_every=1000,
        stream_buffer_maxsize=1024,
        worker_redirect_stdouts=False,
        datadir=f"/tmp/eriop-faust-{settings.kafka.alerts_group}",  # noqa: S108
    )
    app.fetch_max_wait_ms = settings.effective_fetch_wait_ms
    topic = app.topic(*ALERT_TOPICS, key_serializer="raw", value_serializer="raw")
    batch_max = settings.batch.alerts_max_records
    within = max(settings.batch.alert_linger_ms, 1) / 1000

    @app.service
    class RuntimeService(Service):
        """Starts the runtime before agents consume and closes it last."""

        async def on_start(self) -> None:
            await runtime.start()

        async def on_stop(self) -> None:
            await runtime.close(settings.shutdown_timeout_s)

    @app.agent(topic, concurrency=1)
    async def alerts(stream: Any) -> None:
        async for events in take_batches(stream, batch_max, within, runtime.priority):
            records = [to_raw(e) for e in events]
            metrics.BATCH_SIZE.labels("alerts").observe(len(records))
            await runtime.alerts.handle(records)

    async def revoked(app_: faust.App, revoked: set[Any], **_: Any) -> None:
        runtime.alert_assignment.revoked()

    async def assigned(app_: faust.App, assigned: set[Any], **_: Any) -> None:
        mine = [tp for tp in assigned if tp.topic in ALERT_TOPICS]
        await seek_to_stored(mine, runtime.alert_store.load_offsets, app_.consumer.seek)
        runtime.alert_assignment.assigned(len(mine))

    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]

    return app
