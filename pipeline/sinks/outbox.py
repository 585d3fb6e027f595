"""The alert outbox relay: publishes what the alert transaction committed.

New alerts go to Redis (``eriop.alerts`` and the capped stream) and to the
``alerts.normalized`` topic; changes to ``eriop.alert_updates``. An entry is
deleted only after every publish succeeded, so a crash between the database
commit and the publish repeats a message rather than losing it.

Two ways lead out of the outbox:

- the fast path: the ingestor hands the entries it has just committed to
  :meth:`OutboxRelay.hand`; they go to Redis at once, with no database read in
  front of the publish, and then, in a second stage that the next publish does
  not wait for, to Kafka, after which they are deleted;
- the safety net: :meth:`OutboxRelay.drain` claims entries from the table
  (``FOR UPDATE SKIP LOCKED``) and publishes them. It runs at start (what an
  earlier run committed and did not publish), at shutdown, and every
  ``poll_interval_s`` for entries older than ``stale_s`` that no process has
  in hand, such as those of a worker that crashed and did not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.clients.kafka import OUT_NORMALIZED
from pipeline.clients.postgres import Database, translate
from pipeline.errors import BrokerUnavailable, TransientError
from pipeline.priority import PriorityFlag
from pipeline.retry import ALERT_PATH
from pipeline.sinks.redis.live import CH_ALERT_UPDATES, RedisLive

log = logging.getLogger(__name__)

_CLAIM = """
SELECT id, payload FROM alert_outbox
WHERE NOT (id = ANY($2::bigint[])) AND ($3::interval IS NULL OR created_at < now() - $3)
ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
_DELETE = "DELETE FROM alert_outbox WHERE id = ANY($1::bigint[])"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A committed outbox row: its id and the message it stands for."""

    id: int
    payload: dict[str, Any]


def _split(entries: Sequence[OutboxEntry]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    created = [e.payload for e in entries if e.payload.get("event") == "alert.created"]
    updated = [e.payload for e in entries if e.payload.get("event") != "alert.created"]
    return created, updated


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        live: RedisLive,
        producer: AIOKafkaProducer,
        *,
        batch: int = 500,
        poll_interval_s: float = 1.0,
        stale_s: float = 30.0,
        max_in_hand: int = 20_000,
        priority: PriorityFlag | None = None,
    ) -> None:
        self._db = db
        self._live = live
        self._producer = producer
        self._batch = batch
        self._poll = poll_interval_s
        self._stale = timedelta(seconds=stale_s)
        self._max_in_hand = max_in_hand
        #: held while committed alerts wait for their Redis message
        self._priority = priority
        #: committed, not yet on Redis
        self._handed: list[OutboxEntry] = []
        #: on Redis, not yet on Kafka and deleted
        self._finishing: list[OutboxEntry] = []
        self._wake = asyncio.Event()
        self._finish_wake = asyncio.Event()
        self._stopping = False
        self._next_poll = 0.0

    def hand(self, entries: Sequence[OutboxEntry]) -> None:
        """Called right after an alert transaction commits, with its outbox rows."""
        room = self._max_in_hand - len(self._handed) - len(self._finishing)
        # past the bound the rows wait in the table for the safety net (an
        # outage of Redis or Kafka must not grow memory without limit)
        taken = entries[: max(room, 0)]
        if taken and not self._handed and self._priority is not None:
            self._priority.hold()
        self._handed.extend(taken)
        self._wake.set()

    def _in_hand(self) -> list[int]:
        return [e.id for e in self._handed] + [e.id for e in self._finishing]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_poll = loop.time() + self._poll
        finisher = asyncio.create_task(
            self._serve(self._finish_wake, self._finish, lambda: None), name="outbox-finisher"
        )
        try:
            await self._serve(
                self._wake, self._cycle, lambda: max(self._next_poll - loop.time(), 0)
            )
        finally:
            finisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await finisher

    async def _serve(
        self,
        wake: asyncio.Event,
        step: Callable[[], Awaitable[None]],
        wait_s: Callable[[], float | None],
    ) -> None:
        """Run ``step`` whenever ``wake`` is set (or ``wait_s`` passes), retrying a
        failed step with backoff: its entries stay in hand and in the table."""
        backoff = ALERT_PATH.backoff()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait_s())
            wake.clear()
            try:
                await step()
                backoff.reset()
                continue
            except TransientError as exc:
                log.warning("outbox relay waiting for a dependency: %s", exc.reason)
            except Exception:
                # the relay must outlive any single failure; operators see it in the log
                log.exception("outbox relay failed; retrying")
            await backoff.wait()
            wake.set()

    async def _cycle(self) -> None:
        await self._publish_handed()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_poll:
            await self.drain(stale_only=True)
            self._next_poll = loop.time() + self._poll

    async def _publish_handed(self) -> None:
        while self._handed:
            entries = self._handed[: self._batch]
            await self._publish_redis(*_split(entries))
            del self._handed[: len(entries)]
            self._finishing.extend(entries)
            self._finish_wake.set()
            if not self._handed and self._priority is not None:
                self._priority.release()

    async def _finish(self) -> None:
        finished = bool(self._finishing)
        while self._finishing:
            entries = self._finishing[: self._batch]
            created, _ = _split(entries)
            await self._publish_kafka(created)
            try:
                async with self._db.connection() as conn:
                    await conn.execute(_DELETE, [e.id for e in entries])
            except TransientError:
                raise
            except Exception as exc:
                raise translate(exc) from exc
            del self._finishing[: len(entries)]
        if finished:
            # the backlog gauge as it is now, not as the last poll found it (that
            # may have counted these entries while they were in hand)
            await self._update_pending()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self, *, stale_only: bool = False) -> int:
        """Publish what is in hand, then claim and publish entries from the table
        (all of them, or with ``stale_only`` those older than ``stale_s``);
        returns how many were relayed."""
        total = 0
        if not stale_only:
            # only while the relay loop is not running (start, shutdown, tests):
            # the loop's finisher owns what is in hand while it runs
            total = len(self._handed) + len(self._finishing)
            await self._publish_handed()
            await self._finish()
        while True:
            n = await self._relay_once(self._stale if stale_only else None)
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

    async def _relay_once(self, older_than: timedelta | None) -> int:
        try:
            async with self._db.connection() as conn, conn.transaction():
                rows = await conn.fetch(_CLAIM, self._batch, self._in_hand(), older_than)
                if not rows:
                    return 0
                entries = [OutboxEntry(r["id"], r["payload"]) for r in rows]
                created, updated = _split(entries)
                await self._publish_redis(created, updated)
                await self._publish_kafka(created)
                await conn.execute(_DELETE, [e.id for e in entries])
                return len(rows)
        except TransientError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    async def _publish_redis(
        self, created: list[dict[str, Any]], updated: list[dict[str, Any]]
    ) -> None:
        try:
            await self._live.publish_alerts(created)
            await self._live.publish(CH_ALERT_UPDATES, updated)
        except TransientError:
            metrics.REDIS_PUBLISH.labels("eriop.alerts", "error").inc()
            raise

    async def _publish_kafka(self, created: list[dict[str, Any]]) -> None:
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
