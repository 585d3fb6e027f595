"""Geofence enter/leave detection for moving resources.

The set of fences a resource is inside is kept in memory and mirrored in its
Redis hash (field ``geofences``), so a restarted worker does not announce every
resource as entering the fences it was already in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from pipeline import metrics
from pipeline.decoders.envelope import iso_utc
from pipeline.errors import TransientError
from pipeline.sinks.redis.live import RedisLive, resource_key
from pipeline.stages.geo_index import Fence, GeoIndex

_NOWHERE: frozenset[str] = frozenset()


class Move(NamedTuple):
    """A resource's new accepted position."""

    resource_id: str
    lon: float
    lat: float
    when: datetime


class GeofenceTracker:
    def __init__(self, geo: GeoIndex, live: RedisLive) -> None:
        self._geo = geo
        self._live = live
        self._inside: dict[str, frozenset[str]] = {}

    async def prime(self, resource_ids: Sequence[str]) -> None:
        unknown = [r for r in resource_ids if r not in self._inside]
        if not unknown:
            return
        try:
            hashes = await self._live.hgetall_many([resource_key(r) for r in unknown])
        except TransientError:
            return
        for rid, h in zip(unknown, hashes, strict=True):
            if "geofences" in h:
                self._inside[rid] = frozenset(x for x in h["geofences"].split(",") if x)

    def track(self, moves: Sequence[Move]) -> list[tuple[list[dict[str, Any]], frozenset[str]]]:
        """For each move in order: events for the fences entered and left, and the
        new inside-set. The point lookups are one query for the whole batch."""
        holding = self._geo.containing_many([(m.lon, m.lat) for m in moves])
        out: list[tuple[list[dict[str, Any]], frozenset[str]]] = []
        inside = self._inside
        for m, fences in zip(moves, holding, strict=True):
            before = inside.get(m.resource_id)
            if not fences:
                if not before:
                    # outside every fence before and after (most moves): no events
                    inside[m.resource_id] = _NOWHERE
                    out.append(([], _NOWHERE))
                    continue
                now_inside = _NOWHERE
            else:
                now_inside = frozenset([f.id for f in fences])
                if now_inside == before:
                    # inside the same fences as before (most other moves)
                    out.append(([], before))
                    continue
            out.append(self._transitions(m, fences, now_inside, before))
        return out

    def _transitions(
        self,
        move: Move,
        fences: list[Fence],
        now_inside: frozenset[str],
        before: frozenset[str] | None,
    ) -> tuple[list[dict[str, Any]], frozenset[str]]:
        resource_id, lon, lat, when = move
        self._inside[resource_id] = now_inside
        if before is None:
            return [], now_inside
        by_id = {f.id: f for f in fences}
        events = []
        for fid in sorted(now_inside - before):
            f = by_id[fid]
            events.append(_event("enter", resource_id, fid, f.name, f.kind, lon, lat, when))
        for fid in sorted(before - now_inside):
            events.append(_event("leave", resource_id, fid, None, None, lon, lat, when))
        for e in events:
            metrics.GEOFENCE_EVENTS.labels(e["transition"]).inc()
        return events, now_inside

    def reset(self) -> None:
        self._inside.clear()


def _event(
    transition: str,
    resource_id: str,
    fence_id: str,
    name: str | None,
    kind: str | None,
    lon: float,
    lat: float,
    when: datetime,
) -> dict[str, Any]:
    return {
        "event": f"geofence.{transition}",
        "transition": transition,
        "resource_id": resource_id,
        "geofence_id": fence_id,
        "name": name,
        "kind": kind,
        "location": {"lon": lon, "lat": lat},
        "time": iso_utc(when),
    }
