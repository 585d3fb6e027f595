"""Live positions and device last-seen in Redis, resilient to Redis outages.

The database is the record; Redis is a view of it for consoles. Updates are
kept in memory (the newest per resource or device, so the memory is bounded by
the fleet, not the traffic) until Redis takes them: when Redis comes back after
an outage, everything that changed meanwhile is re-synchronised.

``eriop.locations`` messages are coalesced: at most one per resource per
``interval_s``, carrying the newest position, so a flood cannot drown consoles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pipeline import metrics
from pipeline.decoders.envelope import iso_utc
from pipeline.errors import TransientError
from pipeline.sinks.redis.live import CH_GEOFENCE, CH_LOCATIONS, RedisLive

log = logging.getLogger(__name__)


class LiveState:
    def __init__(self, live: RedisLive, *, interval_s: float = 1.0) -> None:
        self._live = live
        self._interval = interval_s
        self._positions: dict[str, dict[str, Any]] = {}
        self._devices: dict[str, tuple[datetime, str]] = {}
        self._to_publish: dict[str, dict[str, Any]] = {}
        self._last_published: dict[str, float] = {}
        self._geofence_events: list[dict[str, Any]] = []
        self._stopping = False

    def position(self, resource_id: str, state: Mapping[str, Any]) -> None:
        self._positions[resource_id] = dict(state)
        self._to_publish[resource_id] = dict(state)

    def device_seen(self, device_id: str, last_seen: datetime, device_type: str) -> None:
        # compared as times: the text form has no fraction on whole seconds, so
        # "…:48Z" would sort after "…:48.500000Z"
        prev = self._devices.get(device_id)
        if prev is None or prev[0] < last_seen:
            self._devices[device_id] = (last_seen, device_type)

    def geofence_event(self, event: Mapping[str, Any]) -> None:
        self._geofence_events.append(dict(event))

    @property
    def pending(self) -> int:
        return len(self._positions) + len(self._devices) + len(self._geofence_events)

    async def sync(self) -> bool:
        """Push held state to Redis; False (state kept) when Redis is down."""
        positions, devices = dict(self._positions), dict(self._devices)
        events = list(self._geofence_events)
        try:
            if positions:
                await self._live.update_positions(
                    [
                        (
                            rid,
                            {k: str(v) for k, v in st.items() if v is not None},
                            st["lon"],
                            st["lat"],
                        )
                        for rid, st in positions.items()
                    ]
                )
                self._positions = {
                    k: v for k, v in self._positions.items() if v is not positions.get(k)
                }
            if devices:
                await self._live.touch_devices(
                    {k: (iso_utc(t), device_type) for k, (t, device_type) in devices.items()}
                )
                self._devices = {k: v for k, v in self._devices.items() if devices.get(k) != v}
            if events:
                await self._live.publish(CH_GEOFENCE, events)
                self._geofence_events = self._geofence_events[len(events) :]
            metrics.DEPENDENCY_UP.labels("redis").set(1)
            return True
        except TransientError as exc:
            metrics.DEPENDENCY_UP.labels("redis").set(0)
            metrics.REDIS_PUBLISH.labels("live_state", "error").inc()
            log.warning("live state held in memory until Redis returns: %s", exc.reason)
            return False

    async def publish_due(self) -> int:
        """Publish coalesced location messages whose interval has passed."""
        now = time.monotonic()
        due = {
            rid: st
            for rid, st in self._to_publish.items()
            if now - self._last_published.get(rid, -1e9) >= self._interval
        }
        if not due:
            return 0
        try:
            n = await self._live.publish(
                CH_LOCATIONS, [{"resource_id": rid, **st} for rid, st in due.items()]
            )
        except TransientError:
            return 0
        for rid in due:
            self._last_published[rid] = now
            self._to_publish.pop(rid, None)
        return n

    async def run(self) -> None:
        """Background loop: coalesced publishes and re-sync after outages."""
        tick = max(min(self._interval / 4, 0.25), 0.02)
        while not self._stopping:
            await asyncio.sleep(tick)
            if self.pending:
                await self.sync()
            await self.publish_due()

    async def stop(self) -> None:
        self._stopping = True
        await self.sync()
        await self.publish_due()
