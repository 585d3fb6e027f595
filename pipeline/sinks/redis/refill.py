"""Refilling Redis from PostgreSQL when it comes back empty.

Redis keeps the dispatchers' live state in memory only: a restart without
persistence, a failover to an empty replica or a ``FLUSHALL`` loses it, and
units that do not move afterwards would vanish from the map. A marker key
(:data:`MARKER`) is set after every fill; while the marker is there nothing
happens, and when it is gone the state is rebuilt from the database:

- ``eriop:resource:<id>`` and the geo set for every resource the pipeline has
  placed (one with fixes in ``location_history``), from
  ``resources.current_location`` and its newest unflagged fix;
- ``eriop:device:<id>`` last-seen, from ``device_last_seen``;
- the alert stream's recent history (the newest :data:`HISTORY` alerts whose
  publication is complete; those still in the outbox are published by the
  relay).

Refilling is idempotent, and a short lock keeps two workers from doing it at
the same moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from pipeline import metrics
from pipeline.clients.postgres import Database, translate
from pipeline.decoders.envelope import iso_utc
from pipeline.sinks.postgres.alert_intents import alert_message
from pipeline.sinks.redis.live import STREAM_ALERTS, RedisLive
from schemas.canonical import CanonicalAlert

log = logging.getLogger(__name__)

MARKER: Final = "eriop:live:filled"
_LOCK: Final = "eriop:live:refilling"
#: alerts put back into the stream after a loss
HISTORY: Final = 1000

_RESOURCES: Final = """
SELECT r.id, r.type, r.current_location AS location, lh.time, lh.speed, lh.heading,
       lh.accuracy, lh.source
FROM resources r
JOIN LATERAL (
    SELECT time, speed, heading, accuracy, source FROM location_history
    WHERE resource_id = r.id
      AND NOT COALESCE(metadata->'flags' ?| ARRAY['out_of_order', 'teleport', 'low_accuracy'],
                       FALSE)
    ORDER BY time DESC LIMIT 1
) lh ON true
WHERE r.current_location IS NOT NULL"""
_DEVICES: Final = "SELECT device_id, device_type, last_seen AS time FROM device_last_seen"
_ALERTS: Final = """
SELECT * FROM (
    SELECT a.id, a.source, a.external_id, a.type, a.severity, a.status, a.title,
           a.description, a.location, a.address, a.metadata, a.received_at,
           a.processed_at, a.created_at
    FROM alerts a
    WHERE NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE o.alert_id = a.id)
    ORDER BY a.created_at DESC LIMIT $1
) newest ORDER BY created_at"""

#: the fences that hold each (lon, lat), as ids
FencesAt = Callable[[Sequence[tuple[float, float]]], list[frozenset[str]]]


class LiveStateRefill:
    def __init__(self, db: Database, live: RedisLive, fences_at: FencesAt) -> None:
        self._db = db
        self._live = live
        self._fences_at = fences_at

    async def check(self) -> bool:
        """Refill when the marker is gone; True when a refill ran. Raises the
        pipeline's transient errors while Redis or PostgreSQL is down."""
        if await self._live.exists(MARKER):
            return False
        if not await self._live.set_if_absent(_LOCK, "1", ttl_s=60):
            return False  # another worker is at it
        started = time.monotonic()
        counts = await self._refill()
        await self._live.set_value(MARKER, iso_utc_now())
        await self._live.delete(_LOCK)
        metrics.LIVE_STATE_REFILLS.inc()
        log.warning(
            "Redis was empty: refilled %d positions, %d devices, %d stream alerts in %.1fs",
            *counts,
            time.monotonic() - started,
        )
        return True

    async def _refill(self) -> tuple[int, int, int]:
        try:
            async with self._db.connection() as conn:
                resources = await conn.fetch(_RESOURCES)
                devices = await conn.fetch(_DEVICES)
                alerts = await conn.fetch(_ALERTS, HISTORY)
        except Exception as exc:
            raise translate(exc) from exc
        points = [(r["location"].lon, r["location"].lat) for r in resources]
        inside = self._fences_at(points) if points else []
        await self._live.update_positions(
            [
                (str(r["id"]), _position(r, fences), r["location"].lon, r["location"].lat)
                for r, fences in zip(resources, inside, strict=True)
            ]
        )
        await self._live.touch_devices(
            {str(d["device_id"]): (iso_utc(d["time"]), d["device_type"]) for d in devices}
        )
        await self._live.append_stream(STREAM_ALERTS, [orjson.dumps(_message(a)) for a in alerts])
        return len(resources), len(devices), len(alerts)


def iso_utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _position(row: Any, fences: frozenset[str]) -> dict[str, str]:
    fields = {
        "lat": row["location"].lat,
        "lon": row["location"].lon,
        "time": iso_utc(row["time"]) if row["time"] is not None else None,
        "speed": row["speed"],
        "heading": row["heading"],
        "accuracy": row["accuracy"],
        "source": row["source"],
        "resource_type": row["type"],
        "geofences": ",".join(sorted(fences)),
    }
    return {k: str(v) for k, v in fields.items() if v is not None}


def _message(row: Any) -> dict[str, Any]:
    alert = CanonicalAlert.model_construct(
        source=row["source"],
        external_id=row["external_id"],
        type=row["type"],
        severity=row["severity"],
        title=row["title"],
        description=row["description"],
        location=row["location"],
        address=row["address"],
        raw_payload={},
        metadata=row["metadata"] or {},
        received_at=row["received_at"],
        processed_at=row["processed_at"],
    )
    return alert_message(alert, row["id"], row["status"])
