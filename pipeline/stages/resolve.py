"""Resource lookups for the GPS path: reference resolution and last fixes.

Both are read in bulk per batch and cached, so a flood of fixes costs one
query per batch for the resources it has not seen yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from pipeline.clients.postgres import Database
from pipeline.decoders.envelope import parse_timestamp
from pipeline.errors import InputError, TransientError
from pipeline.sinks.redis.live import RedisLive, resource_key
from pipeline.stages.plausibility import AcceptedFix, ResourceInfo, resolve_ref

_RESOURCES = """
SELECT id, type, identifier, (specifications->>'max_speed_mps')::float8 AS max_speed
FROM resources WHERE id = ANY($1::uuid[]) OR identifier = ANY($2::text[])"""

_LAST_UNFLAGGED = """
SELECT DISTINCT ON (resource_id) resource_id, time, location, accuracy
FROM location_history
WHERE resource_id = ANY($1::uuid[])
  AND NOT COALESCE(metadata->'flags' ?| ARRAY['out_of_order', 'teleport', 'low_accuracy'], FALSE)
ORDER BY resource_id, time DESC"""


def _as_uuid(ref: str) -> UUID | None:
    try:
        return UUID(ref)
    except ValueError:
        return None


class ResourceResolver:
    """Maps the refs GPS messages carry (UUID or identifier) to resources."""

    def __init__(self, db: Database, *, ttl_s: float = 60.0) -> None:
        self._db = db
        self._ttl = ttl_s
        self._by_id: dict[UUID, ResourceInfo] = {}
        self._by_identifier: dict[str, list[ResourceInfo]] = {}
        self._looked_up: dict[str, float] = {}
        self._resolved: dict[str, ResourceInfo] = {}  # memo, valid until the next fetch

    async def prefetch(self, refs: Iterable[str]) -> None:
        now = time.monotonic()
        wanted = {r for r in refs if now - self._looked_up.get(r, -1e9) > self._ttl}
        if not wanted:
            return
        ids = [u for u in (_as_uuid(r) for r in wanted) if u is not None]
        idents = [r for r in wanted if _as_uuid(r) is None]
        async with self._db.connection() as conn:
            rows = await conn.fetch(_RESOURCES, ids, idents)
        for ident in idents:
            self._by_identifier.pop(ident, None)
        for r in rows:
            info = ResourceInfo(
                id=r["id"], type=r["type"], identifier=r["identifier"], max_speed_mps=r["max_speed"]
            )
            self._by_id[info.id] = info
            if r["identifier"] in idents:
                self._by_identifier.setdefault(r["identifier"], []).append(info)
        for ref in wanted:
            self._looked_up[ref] = now
        self._resolved.clear()

    def resolve(self, ref: str) -> ResourceInfo:
        info = self._resolved.get(ref)
        if info is None:
            info = self._resolved[ref] = resolve_ref(ref, self._by_id, self._by_identifier)
        return info

    def forget(self, ref: str) -> None:
        self._looked_up.pop(ref, None)
        self._resolved.pop(ref, None)


class LiveLastFixLoader:
    """LastFixLoader: the Redis hash ``eriop:resource:<id>``, else the newest
    unflagged ``location_history`` row."""

    def __init__(self, db: Database, live: RedisLive) -> None:
        self._db = db
        self._live = live

    async def load(self, resource_ids: Sequence[UUID]) -> dict[UUID, AcceptedFix]:
        out: dict[UUID, AcceptedFix] = {}
        missing = list(resource_ids)
        try:
            hashes = await self._live.hgetall_many([resource_key(r) for r in resource_ids])
            missing = []
            for rid, h in zip(resource_ids, hashes, strict=True):
                fix = _from_hash(h)
                if fix is None:
                    missing.append(rid)
                else:
                    out[rid] = fix
        except TransientError:  # Redis down: the database has the same answer, slower
            missing = list(resource_ids)
        if missing:
            async with self._db.connection() as conn:
                rows = await conn.fetch(_LAST_UNFLAGGED, missing)
            for r in rows:
                loc = r["location"]
                out[r["resource_id"]] = AcceptedFix(
                    time=r["time"], lat=loc.lat, lon=loc.lon, accuracy=r["accuracy"]
                )
        return out


def _from_hash(h: dict[str, str]) -> AcceptedFix | None:
    if not h or "time" not in h:
        return None
    try:
        t: datetime = parse_timestamp(h["time"], "time")
        acc = h.get("accuracy")
        return AcceptedFix(
            time=t,
            lat=float(h["lat"]),
            lon=float(h["lon"]),
            accuracy=float(acc) if acc not in (None, "") else None,
        )
    except (KeyError, ValueError, InputError):
        return None
