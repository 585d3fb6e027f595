"""Composition root: builds the running graph from settings.

Everything that owns a connection is created here, started in dependency
order, and closed in reverse with a bounded budget. The alert agent (agents/)
only feeds records into :attr:`Runtime.alerts`; the bulk consumer is owned here,
or, in the worker, the child processes that run it (:mod:`pipeline.runtime.bulk`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, Literal

from prometheus_client import generate_latest

from pipeline import __version__, metrics
from pipeline.clients.kafka import (
    BULK_TOPICS,
    broker_health,
    ensure_topics,
    make_consumer,
    make_producer,
    start_producer,
)
from pipeline.clients.postgres import Database
from pipeline.errors import TransientError
from pipeline.flows.alerts import AlertIngestor, Clock, utc_now
from pipeline.flows.bulk import BulkIngestor
from pipeline.priority import PriorityFlag, Yielder
from pipeline.runtime.http import StatusServer
from pipeline.runtime.metrics_merge import merge_exposition
from pipeline.runtime.startup import collection_paused, initialize_metrics, wait_for
from pipeline.runtime.supervisor import BulkChild, claim_member_slot
from pipeline.settings import Settings
from pipeline.sinks.kafka.dlq import DeadLetterPublisher
from pipeline.sinks.outbox import OutboxRelay
from pipeline.sinks.postgres.alerts import AlertStore
from pipeline.sinks.postgres.timeseries import TimeseriesStore
from pipeline.sinks.redis.axis_state import BufferedAxisState, PgDeviceDirectory
from pipeline.sinks.redis.live import RedisLive
from pipeline.sinks.redis.live_state import LiveState
from pipeline.sinks.redis.refill import LiveStateRefill
from pipeline.sources.kafka_batch import BatchConsumer
from pipeline.sources.positions import GroupAssignment
from pipeline.stages.axis_edges import AxisEdgeTracker
from pipeline.stages.geo_index import GeoIndex
from pipeline.stages.geofence import GeofenceTracker
from pipeline.stages.resolve import LiveLastFixLoader, ResourceResolver
from pipeline.store.durability import check_database
from pipeline.store.retention import RetentionJob

log = logging.getLogger(__name__)

#: ``all``: both paths in this process; ``alerts``: the alert path, with the
#: volume path in supervised child processes; ``bulk``: one of those children
Role = Literal["all", "alerts", "bulk"]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        role: Role = "all",
        status: tuple[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        #: where /metrics and /health are served from start() on (None: nowhere)
        self.status = (
            StatusServer(status[0], status[1], metrics=self.metrics_page, health=self.health)
            if status is not None
            else None
        )
        s = settings
        #: alerts in hand, seen by the volume path in this process or its children
        self.priority = PriorityFlag.for_role(role == "bulk", s.bulk.priority_fd)
        gate = Yielder(
            self.priority,
            max_wait_s=s.bulk.yield_max_ms / 1000,
            max_share=s.bulk.yield_max_share,
        )
        self.db = Database(s.database_url.get_secret_value())
        self.redis = RedisLive(s.redis_url.get_secret_value())
        self.producer = make_producer(s)
        self.geo = GeoIndex(self.db, refresh_s=s.geo_refresh_s)
        self.retention = RetentionJob(self.db, interval_s=s.retention_interval_s)
        self.dlq = DeadLetterPublisher(self.producer)
        self.relay = OutboxRelay(self.db, self.redis, self.producer, priority=self.priority)
        self.alert_store = AlertStore(self.db, s.kafka.alerts_group)
        self.axis_state = BufferedAxisState(self.redis)
        self.refill = LiveStateRefill(self.db, self.redis, self._fences_at)
        self.alerts = AlertIngestor(
            s,
            store=self.alert_store,
            dlq=self.dlq,
            live=self.redis,
            relay=self.relay,
            axis=AxisEdgeTracker(
                self.axis_state, PgDeviceDirectory(self.db, s.axis.resource_cache_s), s.axis
            ),
            axis_state=self.axis_state,
            geo=self.geo,
            clock=clock,
            priority=self.priority,
        )
        self.ts_store = TimeseriesStore(
            self.db, s.kafka.bulk_group, look_every=s.bulk.yield_every_rows, gate=gate
        )
        self.live = LiveState(self.redis, interval_s=s.gps.publish_interval_s)
        self.bulk = BulkIngestor(
            s,
            store=self.ts_store,
            dlq=self.dlq,
            resolver=ResourceResolver(self.db),
            last_fixes=LiveLastFixLoader(self.db, self.redis),
            live=self.live,
            geofences=GeofenceTracker(self.geo, self.redis),
            clock=clock,
        )
        self.bulk_consumer: BatchConsumer | None = None
        self.bulk_children: list[BulkChild] = []
        if role == "alerts":
            count = s.bulk.process_count(s.kafka.partitions)
            slot, self._slot_lock = claim_member_slot(s.kafka.bulk_group)
            member = f"{socket.gethostname()}-{slot}"
            self.bulk_children = [
                BulkChild(
                    i,
                    log_level=s.log_level,
                    member=member,
                    priority_fd=self.priority.fd if self.priority else -1,
                )
                for i in range(count)
            ]
        else:
            self.bulk_consumer = BatchConsumer(
                # a batch may wait linger_ms to fill anyway (Settings.idle_fetch_wait_ms)
                make_consumer(
                    s,
                    s.kafka.bulk_group,
                    fetch_max_wait_ms=s.idle_fetch_wait_ms,
                    group_instance_id=s.bulk.instance_id or None,
                ),
                BULK_TOPICS,
                collection_paused(self.bulk.handle),
                self.ts_store.load_offsets,
                max_records=s.batch.telemetry_max_records,
                linger_ms=s.batch.linger_ms,
                assignment=GroupAssignment(s.kafka.bulk_group),
                before_fetch=gate.wait,
            )
        #: the consumer groups this process takes part in
        self.groups: list[GroupAssignment] = []
        if role != "bulk":
            self.alert_assignment = GroupAssignment(s.kafka.alerts_group)
            self.groups.append(self.alert_assignment)
        if self.bulk_consumer is not None:
            self.groups.append(self.bulk_consumer.assignment)
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    async def connect(self, *, deadline_s: float | None, say: Callable[[str], None]) -> None:
        """Reach every dependency, retrying with a clear message while one is down."""
        s = self.settings
        await wait_for("Kafka", lambda: ensure_topics(s), deadline_s=deadline_s, say=say)
        await wait_for("PostgreSQL", self.db.start, deadline_s=deadline_s, say=say)
        async with self.db.connection() as conn:
            await check_database(conn, allow_unsafe=s.allow_unsafe_database)
        await wait_for("Redis", self.redis.start, deadline_s=deadline_s, say=say)
        await wait_for("Kafka producer", self._start_producer, deadline_s=deadline_s, say=say)

    async def _start_producer(self) -> None:
        await start_producer(self.producer, idempotence=self.settings.kafka.idempotence)

    async def start(self) -> None:
        """Start background work; call after :meth:`connect`."""
        metrics.BUILD_INFO.info({"version": __version__})
        initialize_metrics(self.role, self.settings.kafka.partitions)
        await self.geo.refresh(force=True)
        self._tasks = [
            asyncio.create_task(self._maintenance(), name="maintenance"),
            asyncio.create_task(self._refresh_geofences(), name="geofences"),
        ]
        # every stream's pause gauge exists from the start, in the process that runs it
        if self.role != "bulk":
            metrics.CONSUMER_PAUSED.labels("alerts").set(0)
        if self.bulk_consumer is not None:
            metrics.CONSUMER_PAUSED.labels("bulk").set(0)
        if self.role != "bulk":
            self._tasks.append(asyncio.create_task(self._watch_live_state(), name="refill"))
            await self.relay.drain_safely()
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        if self.bulk_consumer is not None:
            self._tasks.append(asyncio.create_task(self.live.run(), name="live-state"))
            await self.bulk_consumer.start()
        for child in self.bulk_children:
            await child.start()
        if self.role != "bulk":
            await self.retention.start()
        if self.status is not None:
            await self.status.start()
        self.started = True
        metrics.WORKER_UP.set(1)

    def _fences_at(self, points: Sequence[tuple[float, float]]) -> list[frozenset[str]]:
        return [frozenset(f.id for f in held) for held in self.geo.containing_many(points)]

    async def _watch_live_state(self) -> None:
        """Redis that comes back empty is refilled from PostgreSQL within a second."""
        while True:
            with contextlib.suppress(TransientError):  # down: the next look tries again
                await self.refill.check()
            await asyncio.sleep(1.0)

    async def _refresh_geofences(self) -> None:
        while True:
            await asyncio.sleep(self.settings.geo_refresh_s)
            await self.geo.refresh()

    async def _maintenance(self) -> None:
        """Dependency gauges, refreshed even when nobody asks for /health."""
        while True:
            await asyncio.sleep(30)
            await self.health()

    async def close(self, timeout: float = 15.0) -> None:
        """Bounded graceful shutdown: stop consuming, flush, then disconnect."""
        metrics.WORKER_UP.set(0)
        self.alerts.retrier.stopping = True
        self.bulk.retrier.stopping = True
        budget = max(timeout - 2, 1)
        if self.bulk_consumer is not None:
            await self.bulk_consumer.stop(budget / 2)
        await asyncio.gather(*(c.stop(budget / 2) for c in self.bulk_children))
        await self.relay.stop()
        await self.live.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.retention.close()
        if self.role != "bulk":
            try:
                await asyncio.wait_for(self.relay.drain_safely(), budget / 4)
            except TimeoutError:
                log.warning("outbox not fully drained at shutdown; it resumes at next start")
        await self.producer.stop()
        if self.status is not None:
            await self.status.close()
        await self.redis.close()
        await self.db.close(budget / 4)
        if self.priority is not None:
            self.priority.close()

    async def health(self) -> dict[str, Any]:
        db = await self.db.health()
        redis = await self.redis.health()
        kafka = await broker_health(self.producer)
        for name, rep in (("postgres", db), ("redis", redis), ("kafka", kafka)):
            metrics.DEPENDENCY_UP.labels(name).set(1 if rep["ok"] else 0)
        deps = {"postgres": db, "redis": redis, "kafka": kafka}
        ok = db["ok"] and kafka["ok"] and self.started
        paused = self.alerts.retrier.paused or self.bulk.retrier.paused
        groups = {
            g.group: {
                "partitions": g.partitions,
                "rebalancing": g.rebalancing,
                "since_s": round(g.age_s(), 1),
            }
            for g in self.groups
        }
        ready = ok and not paused and all(g.partitions > 0 for g in self.groups)
        if self.bulk_children:
            reports = await asyncio.gather(*(c.health() for c in self.bulk_children))
            bulk_ok = all(r["ok"] for r in reports)
            deps["bulk_processes"] = {"ok": bulk_ok, "processes": list(reports)}
            ok = ok and bulk_ok
            ready = ready and all(r.get("ready") for r in reports)
        return {
            "status": "ok" if ok and redis["ok"] else ("degraded" if ok else "unhealthy"),
            "ok": ok,
            "ready": ready,
            "paused": paused,
            "groups": groups,
            "dependencies": deps,
        }

    async def metrics_page(self) -> bytes:
        """This process's metrics, merged with those of its bulk processes."""
        own = generate_latest(metrics.REGISTRY)
        if not self.bulk_children:
            return own
        pages = await asyncio.gather(*(c.metrics_page() for c in self.bulk_children))
        return merge_exposition([own.decode(), *pages])
