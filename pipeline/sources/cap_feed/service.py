"""``eriop cap-poller``: one polling loop per configured source.

A source is polled every ``interval_s``; after a failure the next poll waits
a jittered, doubling delay (``retry_initial_s`` up to ``retry_cap_s``),
never longer than the interval would. Failures are counted by kind and
``eriop_cap_last_success_timestamp_seconds`` shows how long a source has been
silent (alert rule ``EriopCapSourceFailing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pipeline import metrics_front_doors as metrics
from pipeline.clients.kafka import ensure_topics
from pipeline.clients.postgres import Database
from pipeline.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    DecodeError,
    TransientError,
    ValidationError,
)
from pipeline.retry import CONNECT, RetryPolicy
from pipeline.settings import Settings
from pipeline.sources.cap_feed.fetch import Fetcher
from pipeline.sources.cap_feed.poller import DOOR, TOPIC, SourcePoller, describe
from pipeline.sources.cap_feed.state import FeedStore
from pipeline.sources.forward import KafkaForwarder

log = logging.getLogger(__name__)


class PollerService:
    def __init__(
        self,
        settings: Settings,
        *,
        forwarder: KafkaForwarder | None = None,
        fetcher: Fetcher | None = None,
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        feeds = settings.cap_feeds
        self.forwarder = forwarder or KafkaForwarder(settings, DOOR)
        self.fetcher = fetcher or Fetcher(feeds)
        self.db = db or Database(settings.database_url.get_secret_value(), max_size=3)
        self.store = FeedStore(self.db)
        self.pollers = [
            SourcePoller(s, feeds, self.fetcher, self.store, self.forwarder) for s in feeds.sources
        ]
        self._policy = RetryPolicy(
            initial_s=feeds.retry_initial_s,
            cap_s=max(feeds.retry_cap_s, feeds.retry_initial_s),
            jitter=0.3,
        )
        self.last_error: dict[str, str] = {}
        self.polls = 0

    async def start(self, stop: asyncio.Event) -> bool:
        backoff = CONNECT.backoff()
        while not stop.is_set():
            try:
                await self.db.start()
                break
            except DatabaseUnavailable as exc:
                log.warning("PostgreSQL not reachable yet: %s", exc.reason)
                await backoff.wait(stop)
        if stop.is_set() or not await self.forwarder.start(stop):
            return False
        with contextlib.suppress(BrokerUnavailable):  # the topic may exist or be auto-created
            await ensure_topics(self.settings, [TOPIC])
        for p in self.pollers:
            name = p.source.name
            metrics.CAP_ALERT_AFTER.labels(name).set(p.source.effective_alert_after_s)
            state = await self.store.source(name)
            since = state.last_success_at.timestamp() if state and state.last_success_at else None
            # never succeeded: count the silence from now, not from 1970
            metrics.CAP_LAST_SUCCESS.labels(name).set(since or time.time())
        return True

    async def run(self, stop: asyncio.Event) -> None:
        if not self.pollers:
            log.warning("no CAP sources configured (ERIOP_CAP_FEEDS__SOURCES): idle")
        await asyncio.gather(stop.wait(), *(self._loop(p, stop) for p in self.pollers))

    async def _loop(self, poller: SourcePoller, stop: asyncio.Event) -> None:
        src = poller.source
        backoff = self._policy.backoff()
        while not stop.is_set():
            delay = src.interval_s
            try:
                report = await poller.poll()
                self.polls += 1
                if report.ok:
                    backoff.reset()
                    self.last_error.pop(src.name, None)
                else:
                    self.last_error[src.name] = ", ".join(sorted(set(report.entry_errors)))
                    delay = min(delay, backoff.next_delay())
            except (TransientError, DecodeError, ValidationError) as exc:
                kind = "kafka" if isinstance(exc, BrokerUnavailable) else exc.error_code
                metrics.FRONT_DOOR_ERRORS.labels(DOOR, src.name, kind).inc()
                self.last_error[src.name] = describe(exc)
                log.warning("%s: poll failed: %s", src.name, exc.reason)
                delay = min(delay, backoff.next_delay())
                await self._note_failure(poller, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _note_failure(self, poller: SourcePoller, exc: Exception) -> None:
        # a malformed or oversize index is read whole next time: drop its validators
        forget = isinstance(exc, DecodeError | ValidationError)
        with contextlib.suppress(DatabaseUnavailable):
            await self.store.failed(
                poller.source.name, poller.source.url, str(exc), forget_validators=forget
            )

    async def health(self) -> dict[str, Any]:
        db = await self.db.health()
        sources = {
            p.source.name: {"ok": p.source.name not in self.last_error,
                            "error": self.last_error.get(p.source.name)}
            for p in self.pollers
        }  # fmt: skip
        ok = bool(db.get("ok")) and self.forwarder.started
        return {
            "ok": ok,
            "database": db,
            "kafka": {"ok": self.forwarder.started},
            "sources": sources,
        }

    async def close(self) -> None:
        await self.fetcher.close()
        await self.forwarder.close()
        await self.db.close()
