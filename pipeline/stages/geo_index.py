"""Jurisdictions and geofences: PostGIS polygons held in a shapely STRtree.

The index reloads itself when the ``geofences`` table changes (count or newest
``updated_at``), so polygons can be edited without restarting the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from pipeline.clients.postgres import Database
from pipeline.errors import TransientError
from schemas.canonical import CanonicalAlert

log = logging.getLogger(__name__)

_LOAD = """
SELECT g.id, g.name, g.kind, g.agency_id, a.code AS agency_code,
       ST_AsBinary(g.area::geometry) AS wkb
FROM geofences g LEFT JOIN agencies a ON a.id = g.agency_id
WHERE g.active"""
_VERSION = "SELECT count(*), max(updated_at) FROM geofences WHERE active"


@dataclass(frozen=True, slots=True)
class Fence:
    id: str
    name: str
    kind: str
    agency_id: str | None
    agency_code: str | None


class GeoIndex:
    """Point-in-polygon lookups; empty until the first load."""

    def __init__(self, db: Database | None = None, *, refresh_s: float = 30.0) -> None:
        self._db = db
        self._refresh_s = refresh_s
        self._tree: STRtree | None = None
        self._fences: list[Fence] = []
        self._geoms: list[BaseGeometry] = []
        self._version: tuple[Any, ...] | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()

    def load(self, fences: list[tuple[Fence, BaseGeometry]]) -> None:
        self._fences = [f for f, _ in fences]
        self._geoms = [g for _, g in fences]
        self._tree = STRtree(self._geoms) if self._geoms else None

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload from the database when it changed; True when reloaded."""
        if self._db is None:
            return False
        async with self._lock:
            if not force and time.monotonic() - self._checked < self._refresh_s:
                return False
            self._checked = time.monotonic()
            try:
                async with self._db.connection() as conn:
                    version = tuple(await conn.fetchrow(_VERSION))
                    if not force and version == self._version:
                        return False
                    rows = await conn.fetch(_LOAD)
            except TransientError as exc:
                log.warning("geofences not refreshed: %s", exc.reason)
                return False
            fences = [
                (
                    Fence(
                        str(r["id"]),
                        r["name"],
                        r["kind"],
                        str(r["agency_id"]) if r["agency_id"] else None,
                        r["agency_code"],
                    ),
                    shapely.from_wkb(r["wkb"]),
                )
                for r in rows
            ]
            self.load(fences)
            self._version = version
            log.info("loaded %d geofences", len(fences))
            return True

    def containing(self, lon: float, lat: float) -> list[Fence]:
        return self.containing_many([(lon, lat)])[0]

    def containing_many(self, points: Sequence[tuple[float, float]]) -> list[list[Fence]]:
        """The fences holding each (lon, lat) point: one tree query for the lot."""
        if self._tree is None or not points:
            return [[] for _ in points]
        # one vectorised query costs about what a single-point query does; the
        # points made from two lists of numbers, not from a list of pairs (which
        # numpy takes apart at about 0.25 µs a pair)
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        which, hits = self._tree.query(shapely.points(xs, ys), predicate="intersects")
        out: list[list[Fence]] = [[] for _ in points]
        for p, i in sorted(zip(which.tolist(), hits.tolist(), strict=True)):
            out[p].append(self._fences[i])
        return out

    def jurisdiction(self, lon: float, lat: float) -> Fence | None:
        for fence in self.containing(lon, lat):
            if fence.kind == "jurisdiction" and fence.agency_id:
                return fence
        return None


def enrich_alert(alert: CanonicalAlert, geo: GeoIndex) -> CanonicalAlert:
    """Record the agency whose jurisdiction holds the alert's location."""
    if alert.location is None or "agency" in alert.metadata:
        return alert
    fence = geo.jurisdiction(alert.location.lon, alert.location.lat)
    if fence is None:
        return alert
    agency = {
        "id": fence.agency_id,
        "code": fence.agency_code,
        "jurisdiction": fence.name,
        "source": "jurisdiction",
    }
    return alert.model_copy(update={"metadata": {**alert.metadata, "agency": agency}})
