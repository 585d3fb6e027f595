"""The alert outbox relay: publishes what the alert transaction committed.

New alerts go to Redis (``eriop.alerts`` and the capped stream) and to the
``alerts.normalized`` topic; changes to ``eriop.alert_updates``. An entry is
deleted only after every publish succeeded, so a crash between the database
commit and the publish repeats a message rather than losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.db import Database, translate
from pipeline.errors import BrokerUnavailable, TransientError
from pipeline.kafka import OUT_NORMALIZED
from pipeline.sinks.redis_live import CH_ALERT_UPDATES, RedisLive

log = logging.getLogger(__name__)

_CLAIM = """
SELECT id, payload FROM alert_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        live: RedisLive,
        producer: AIOKafkaProducer,
        *,
        batch: int = 500,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._db = db
        self._live = live
        self._producer = producer
        self._batch = batch
        self._poll = poll_interval_s
        self._wake = asyncio.Event()
        self._stopping = False

    def notify(self) -> None:
        """Called after an alert transaction commits."""
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            self._wake.clear()
            try:
                await self.drain()
                backoff = 0.5
            except TransientError as exc:
                log.warning("outbox relay waiting for a dependency: %s", exc.reason)
            except Exception:
                # the relay must outlive any single failure: entries stay in the
                # outbox and are retried, and the error is logged for operators
                log.exception("outbox relay failed; retrying")
            else:
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self) -> int:
        """Publish and delete pending entries; returns how many were relayed."""
        total = 0
        while True:
            n = await self._relay_once()
            total += n
            if n < self._batch:
                break
        await self._update_pending()
        return total

    async def drain_safely(self) -> None:
        """Drain once, leaving what cannot be published for the running relay."""
        try:
            await self.drain()
        except TransientError as exc:
            log.warning("outbox not drained yet: %s", exc.reason)
        except Exception:
            log.exception("outbox not drained; the relay retries")

    async def _relay_once(self) -> int:
        try:
            async with self._db.connection() as conn, conn.transaction():
                rows = await conn.fetch(_CLAIM, self._batch)
                if not rows:
                    return 0
                created = [
                    r["payload"] for r in rows if r["payload"].get("event") == "alert.created"
                ]
                updated = [
                    r["payload"] for r in rows if r["payload"].get("event") != "alert.created"
                ]
                await self._publish(created, updated)
                await conn.execute(
                    "DELETE FROM alert_outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
                return len(rows)
        except TransientError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    async def _publish(self, created: list[dict[str, Any]], updated: list[dict[str, Any]]) -> None:
        try:
            await self._live.publish_alerts(created)
            await self._live.publish(CH_ALERT_UPDATES, updated)
        except TransientError:
            metrics.REDIS_PUBLISH.labels("eriop.alerts", "error").inc()
            raise
        try:
            futures = [
                await self._producer.send(
                    OUT_NORMALIZED, orjson.dumps(p), key=str(p["external_id"]).encode()
                )
                for p in created
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BrokerUnavailable(f"alerts.normalized unavailable: {exc}") from exc

    async def _update_pending(self) -> None:
        try:
            async with self._db.connection() as conn:
                n = await conn.fetchval("SELECT count(*) FROM alert_outbox")
            metrics.OUTBOX_PENDING.set(n)
        except TransientError:
            pass
