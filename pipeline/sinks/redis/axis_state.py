"""Redis-backed collaborators of the Axis edge tracker.

Edge state is written to Redis only after the alert transaction commits: a
batch that is retried must see the state as it was, or a rising edge whose
alert was never stored would be taken for a continuing condition.
"""

from __future__ import annotations

import logging
import time
from uuid import UUID

from pipeline.clients.postgres import Database
from pipeline.errors import RedisUnavailable
from pipeline.sinks.redis.live import RedisLive
from schemas.canonical import DeviceInfo

log = logging.getLogger(__name__)


def state_key(serial: str) -> str:
    return f"eriop:axis:state:{serial}"


class BufferedAxisState:
    """AxisStateStore over the hash ``eriop:axis:state:<serial>``.

    ``set`` holds a change until its batch commits (``flush``); ``discard``
    drops the changes of a batch that is retried. Committed changes that Redis
    could not take yet are kept and written with the next flush.
    """

    def __init__(self, live: RedisLive) -> None:
        self._live = live
        self._pending: dict[tuple[str, str], str] = {}
        self._committed: dict[tuple[str, str], str] = {}

    async def get(self, serial: str, field: str) -> str | None:
        key = (serial, field)
        known = self._pending.get(key) or self._committed.get(key)
        if known is not None:
            return known
        try:
            return await self._live.hget(state_key(serial), field)
        except RedisUnavailable as exc:
            # an unknown state makes a true value a rising edge: during a Redis
            # outage a continuing condition may alert twice, but never not at all
            log.warning("axis state unknown (Redis): %s", exc.reason)
            return None

    async def set(self, serial: str, field: str, value: str) -> None:
        self._pending[(serial, field)] = value

    def discard(self) -> None:
        self._pending.clear()

    async def flush(self) -> None:
        self._committed.update(self._pending)
        self._pending.clear()
        by_serial: dict[str, dict[str, str]] = {}
        for (serial, field), value in self._committed.items():
            by_serial.setdefault(serial, {})[field] = value
        for serial, mapping in by_serial.items():
            await self._live.hset(state_key(serial), mapping)
            for field in mapping:
                self._committed.pop((serial, field), None)


_EQUIPMENT = """
SELECT id, name, current_location, agency_id, updated_at FROM resources
WHERE type = 'equipment' AND upper(identifier) = upper($1)
ORDER BY updated_at DESC"""


class PgDeviceDirectory:
    """DeviceDirectory over ``resources``, cached for ``ttl_s`` seconds."""

    def __init__(self, db: Database, ttl_s: float = 300.0) -> None:
        self._db = db
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, list[DeviceInfo]]] = {}

    async def equipment_by_identifier(self, serial: str) -> list[DeviceInfo]:
        key = serial.upper()
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        async with self._db.connection() as conn:
            rows = await conn.fetch(_EQUIPMENT, key)
        found = [
            DeviceInfo(
                resource_id=UUID(str(r["id"])),
                name=r["name"],
                location=r["current_location"],
                agency_id=UUID(str(r["agency_id"])) if r["agency_id"] else None,
                updated_at=r["updated_at"],
            )
            for r in rows
        ]
        self._cache[key] = (time.monotonic(), found)
        return found
