"""The Faust app: alert agents, the runtime as a service, metrics and health pages.

Alert topics are consumed by one Faust agent (low volume; Faust gives the
group, rebalancing and timers). Each batch it takes is handed to
``Runtime.alerts.handle``, which returns only when the batch is durably stored
or dead-lettered. Faust's own offset commits are not relied on: positions are
kept in PostgreSQL with the rows, and every assignment seeks to them.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import faust
from faust.web import Request, Response, View
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST

from agents.transport import App
from pipeline import metrics
from pipeline.clients.kafka import ALERT_TOPICS
from pipeline.runtime.root import Runtime
from pipeline.settings import Settings
from schemas.records import RawRecord

log = logging.getLogger(__name__)


def _credentials(settings: Settings) -> Any:
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    ctx = None
    if k.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=k.ssl_cafile)
        if k.ssl_certfile:
            ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile)
    if k.security_protocol.startswith("SASL"):
        password = k.sasl_password.get_secret_value() if k.sasl_password else ""
        return faust.SASLCredentials(
            username=k.sasl_username, password=password, ssl_context=ctx,
            mechanism=k.sasl_mechanism or "PLAIN",
        )  # fmt: skip
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
        web_enabled=True,
        web_port=settings.metrics_port,
        web_bind="0.0.0.0",  # noqa: S104 - scraped by Prometheus from other hosts
        web_in_thread=False,
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
        async for events in stream.take_events(batch_max, within):
            records = [to_raw(e) for e in events]
            metrics.BATCH_SIZE.labels("alerts").observe(len(records))
            await runtime.alerts.handle(records)

    async def seek_to_stored(app_: faust.App, assigned: set[Any], **_: Any) -> None:
        mine = [tp for tp in assigned if tp.topic in ALERT_TOPICS]
        if not mine:
            return
        stored = await runtime.alert_store.load_offsets(sorted({tp.topic for tp in mine}))
        for tp in mine:
            pos = stored.get((tp.topic, tp.partition))
            if pos is not None:
                await app_.consumer.seek(tp, pos)

    app.on_partitions_assigned.connect(seek_to_stored)  # type: ignore[arg-type]

    @app.page("/metrics")
    async def metrics_page(view: View, request: Request) -> Response:
        # the exposition format's type without its charset parameter, which aiohttp
        # sets separately (UTF-8 is the default of text/plain for Prometheus)
        content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        return view.bytes(await runtime.metrics_page(), content_type=content_type)

    @app.page("/health")
    async def health_page(view: View, request: Request) -> Response:
        report = await runtime.health()
        return view.json(report, status=200 if report["ok"] else 503)

    return app
