"""Redis-backed collaborators of the Axis edge tracker.

Edge state is written to Redis only after the alert transaction commits: a
batch that is retried must see the state as it was, or a rising edge whose
alert was never stored would be taken for a continuing condition.
"""

from __future__ import annotations

import time
from uuid import UUID

from pipeline.db import Database
from pipeline.decoders.axis import DeviceInfo
from pipeline.sinks.redis_live import RedisLive


def state_key(serial: str) -> str:
    return f"eriop:axis:state:{serial}"


class BufferedAxisState:
    """AxisStateStore over the hash ``eriop:axis:state:<serial>``."""

    def __init__(self, live: RedisLive) -> None:
        self._live = live
        self._pending: dict[tuple[str, str], str] = {}

    async def get(self, serial: str, field: str) -> str | None:
        pending = self._pending.get((serial, field))
        if pending is not None:
            return pending
        return await self._live.hget(state_key(serial), field)

    async def set(self, serial: str, field: str, value: str) -> None:
        self._pending[(serial, field)] = value

    def discard(self) -> None:
        self._pending.clear()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        by_serial: dict[str, dict[str, str]] = {}
        for (serial, field), value in pending.items():
            by_serial.setdefault(serial, {})[field] = value
        for serial, mapping in by_serial.items():
            await self._live.hset(state_key(serial), mapping)


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
