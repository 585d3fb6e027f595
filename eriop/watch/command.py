"""``eriop watch``: a dispatcher's terminal view of new alerts.

It subscribes to the channel ``eriop.alerts`` first, then reads the last N entries
of the stream ``eriop:stream:alerts`` (the catch-up, most severe first), then
prints alerts as they arrive. An alert published between the subscription and
the catch-up arrives twice and is shown once: alerts are told apart by their id.

Pub/sub drops messages while a subscriber is disconnected, so the view also
reads the stream from the last entry it has seen, every few seconds and after
every reconnect: an alert missed on the channel still appears, once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from eriop.watch.view import Seen, View
from pipeline.errors import EXIT_UNAVAILABLE
from pipeline.retry import RetryPolicy
from pipeline.settings import Settings
from pipeline.sinks.redis.live import CH_ALERTS, STREAM_ALERTS

#: a console reconnecting to Redis
RECONNECT = RetryPolicy(initial_s=1.0, cap_s=30.0)

#: how often the stream is read for alerts the channel did not deliver
SWEEP_S: Final = 5.0
PAGE: Final = 1000


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


def _want_color(args: argparse.Namespace) -> bool:
    mode = getattr(args, "color", "auto")
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _decode(raw: Any) -> dict[str, Any] | None:
    try:
        alert = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return alert if isinstance(alert, dict) else None


def _entries(response: Any) -> list[tuple[str, bytes]]:
    """``(entry id, alert JSON)`` pairs of an XRANGE/XREVRANGE reply."""
    out: list[tuple[str, bytes]] = []
    for eid, fields in response or ():
        raw = (fields or {}).get(b"alert", b"")
        key = eid.decode() if isinstance(eid, bytes) else str(eid)
        out.append((key, raw if isinstance(raw, bytes) else str(raw).encode()))
    return out


async def _close(pubsub: aioredis.client.PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


class Watcher:
    """Owns the Redis client and what has been shown."""

    def __init__(self, client: aioredis.Redis, view: View) -> None:
        self.client = client
        self.view = view
        self.seen = Seen()
        #: the newest stream entry read; the next stream read starts after it
        self.last_id = "0-0"

    def _first_time(self, alert: Mapping[str, Any], raw: bytes) -> bool:
        key = alert.get("id")
        alert_id = str(key) if key else "sha:" + hashlib.sha256(raw).hexdigest()
        return self.seen.add(alert_id)

    def show(self, raw: bytes) -> None:
        alert = _decode(raw)
        if alert is None:
            _err("eriop watch: skipped a message that is not an alert object")
        elif self._first_time(alert, raw):
            _out(self.view.line(alert))

    async def subscribe(self) -> aioredis.client.PubSub:
        """Subscribed, and confirmed by the server, before anything is read."""
        pubsub = self.client.pubsub()
        await pubsub.subscribe(CH_ALERTS)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None and msg.get("type") == "subscribe":
                return pubsub
        raise RedisError(f"no confirmation of the subscription to {CH_ALERTS}")

    async def catch_up(self, count: int) -> None:
        """The last ``count`` alerts of the stream, grouped by severity."""
        entries = _entries(await self.client.xrevrange(STREAM_ALERTS, count=max(count, 1)))
        if entries:
            self.last_id = entries[0][0]
        alerts: list[dict[str, Any]] = []
        for _eid, raw in reversed(entries[:count] if count > 0 else []):
            alert = _decode(raw)
            if alert is not None and self._first_time(alert, raw):
                alerts.append(alert)
        _out(self.view.banner(f"last {len(alerts)} alerts from {STREAM_ALERTS}"))
        for line in self.view.catch_up(alerts):
            _out(line)

    async def sweep(self) -> None:
        """Stream entries after the last one read, shown unless already shown."""
        while True:
            reply = await self.client.xrange(STREAM_ALERTS, min=f"({self.last_id}", count=PAGE)
            entries = _entries(reply)
            for eid, raw in entries:
                self.last_id = eid
                self.show(raw)
            if len(entries) < PAGE:
                return

    async def live(self, pubsub: aioredis.client.PubSub | None, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; reconnects with backoff when Redis goes away."""
        backoff = RECONNECT.backoff()
        if pubsub is not None:
            await self.sweep()
        while not stop.is_set():
            try:
                if pubsub is None:
                    pubsub = await self.subscribe()
                    await self.sweep()
                    backoff.reset()
                await self._follow(pubsub, stop)
            except (RedisError, OSError) as exc:
                _err(f"eriop watch: Redis connection lost ({exc}); reconnecting")
                if pubsub is not None:
                    await _close(pubsub)
                    pubsub = None
                await backoff.wait(stop)
        if pubsub is not None:
            await _close(pubsub)

    async def _follow(self, pubsub: aioredis.client.PubSub, stop: asyncio.Event) -> None:
        last_sweep = time.monotonic()
        while not stop.is_set():
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None and msg.get("type") == "message":
                data = msg["data"]
                self.show(data if isinstance(data, bytes) else str(data).encode())
            if time.monotonic() - last_sweep >= SWEEP_S:
                await self.sweep()
                last_sweep = time.monotonic()


async def run_watch(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``eriop watch``; returns the exit code."""
    url = settings.redis_url.get_secret_value()
    client = aioredis.from_url(url, socket_connect_timeout=5, health_check_interval=15)
    watcher = Watcher(client, View(color=_want_color(args)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        pubsub = None if args.once else await watcher.subscribe()
        await watcher.catch_up(int(args.catch_up))
        if pubsub is None:
            return 0
        _out(watcher.view.banner(f"live: new alerts on {CH_ALERTS} (Ctrl-C to stop)"))
        await watcher.live(pubsub, stop)
        return 0
    except (RedisError, OSError) as exc:
        _err(f"eriop watch: Redis at {_safe_url(url)} unavailable: {exc}")
        return EXIT_UNAVAILABLE
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await client.aclose()
