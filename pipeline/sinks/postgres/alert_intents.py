"""One intent of an alert batch applied inside the batch's open transaction:
a new alert and its outbox entry, a patch to an existing alert (restore,
cancel, still present, re-arm), activity rows. The batch itself, its fast
one-statement path and its offsets are :mod:`pipeline.sinks.postgres.alerts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from pipeline import metrics
from pipeline.decoders.envelope import iso_utc
from pipeline.sinks.outbox import OutboxEntry
from pipeline.sinks.postgres.partitions import PartitionCache
from schemas.canonical import CanonicalAlert, TelemetryRow
from schemas.intents import (
    Discard,
    Intent,
    PatchAlert,
    SetRedis,
    StoreAlert,
    StoreLocations,
    StoreTelemetry,
)

Outcome = Literal["stored", "duplicate", "skipped"]

_INSERT_ALERT = """
INSERT INTO alerts (source, external_id, type, severity, status, title, description,
                    location, address, raw_payload, metadata, received_at, processed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (source, external_id) DO NOTHING
RETURNING id, created_at"""

_TARGET_OPEN_MATCH = """
SELECT id FROM alerts
WHERE source = $1 AND metadata->>'match_key' = $2 AND metadata->>'restored_at' IS NULL
ORDER BY received_at DESC, created_at DESC LIMIT 1 FOR UPDATE"""
_TARGET_RESTORED_MATCH = """
SELECT id FROM alerts
WHERE source = $1 AND metadata->>'match_key' = $2 AND metadata->>'restored_at' IS NOT NULL
ORDER BY received_at DESC, created_at DESC LIMIT 1 FOR UPDATE"""
_TARGET_EXTERNAL = "SELECT id FROM alerts WHERE source = $1 AND external_id = $2 FOR UPDATE"

# absent keys only: the patch on the left, existing metadata wins on the right
_PATCH_ABSENT = """
UPDATE alerts SET metadata = $2::jsonb || metadata,
       status = CASE WHEN status = 'new' AND $3::text IS NOT NULL THEN $3 ELSE status END
WHERE id = $1 RETURNING id, source, external_id, status"""
_PATCH_OVERWRITE = """
UPDATE alerts SET metadata = metadata || $2::jsonb WHERE id = $1
RETURNING id, source, external_id, status"""
_PATCH_REARM = """
UPDATE alerts SET metadata = (metadata - 'restored_at') || $2::jsonb
    || jsonb_build_object('retriggers', COALESCE((metadata->>'retriggers')::int, 0) + 1)
WHERE id = $1 RETURNING id, source, external_id, status"""

_INSERT_TELEMETRY = """
INSERT INTO telemetry (time, device_id, device_type, metric_name, metric_value, metric_text,
                       location, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (device_id, metric_name, time) DO NOTHING"""

_OUTBOX = "INSERT INTO alert_outbox (alert_id, payload) VALUES ($1, $2) RETURNING id"


def alert_message(alert: CanonicalAlert, alert_id: object, status: str) -> dict[str, Any]:
    """The message consoles receive for a newly stored alert."""
    loc = alert.location
    return {
        "event": "alert.created",
        "id": str(alert_id),
        "source": alert.source,
        "external_id": alert.external_id,
        "type": alert.type,
        "severity": alert.severity,
        "status": status,
        "title": alert.title,
        "description": alert.description,
        "location": {"lon": loc.lon, "lat": loc.lat} if loc else None,
        "address": alert.address,
        "received_at": iso_utc(alert.received_at),
        "occurred_at": alert.metadata.get("occurred_at"),
        "agency": alert.metadata.get("agency"),
    }


@dataclass(slots=True)
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    redis_sets: list[SetRedis] = field(default_factory=list)
    created: int = 0
    discards: list[tuple[int, str]] = field(default_factory=list)
    #: the outbox rows this batch committed, for the relay's fast path
    outbox: list[OutboxEntry] = field(default_factory=list)


def overall(outcomes: Sequence[Outcome]) -> Outcome:
    """A record's outcome from its intents': stored wins, then duplicate."""
    if "stored" in outcomes:
        return "stored"
    if "duplicate" in outcomes:
        return "duplicate"
    return "skipped"


class IntentWriter:
    """Applies intents with a connection in an open transaction."""

    def __init__(self, partitions: PartitionCache) -> None:
        self._partitions = partitions

    async def apply_all(
        self,
        conn: asyncpg.Connection,
        intents: Sequence[Intent],
        dismissed: frozenset[str],
        result: BatchResult,
    ) -> Outcome:
        return overall([await self.apply(conn, i, dismissed, result) for i in intents])

    async def apply(
        self,
        conn: asyncpg.Connection,
        intent: Intent,
        dismissed: frozenset[str],
        result: BatchResult,
    ) -> Outcome:
        if isinstance(intent, StoreAlert):
            return await self._store_alert(conn, intent, dismissed, result)
        if isinstance(intent, PatchAlert):
            return await self._patch(conn, intent, dismissed, result)
        if isinstance(intent, StoreTelemetry):
            await self._store_activity(conn, intent.rows)
            return "stored"
        if isinstance(intent, SetRedis):
            result.redis_sets.append(intent)
            return "stored"
        if isinstance(intent, Discard):
            result.discards.append((len(result.outcomes), intent.reason))
            return "skipped"
        if isinstance(intent, StoreLocations):
            raise TypeError("location rows do not arrive on alert topics")
        raise TypeError(f"unknown intent {intent!r}")

    async def _store_alert(
        self,
        conn: asyncpg.Connection,
        intent: StoreAlert,
        dismissed: frozenset[str],
        result: BatchResult,
    ) -> Outcome:
        a = intent.alert
        status = "dismissed" if intent.dismiss_if_key in dismissed else a.status
        row = await conn.fetchrow(
            _INSERT_ALERT,
            a.source,
            a.external_id,
            a.type,
            a.severity,
            status,
            a.title,
            a.description,
            a.location,
            a.address,
            a.raw_payload,
            a.metadata,
            a.received_at,
            a.processed_at,
        )
        if row is None:
            metrics.ROWS_DUPLICATE.labels("alerts").inc()
            return "duplicate"
        metrics.ROWS_WRITTEN.labels("alerts").inc()
        message = alert_message(a, row["id"], status)
        result.outbox.append(OutboxEntry(await conn.fetchval(_OUTBOX, row["id"], message), message))
        return "stored"

    async def _patch(
        self,
        conn: asyncpg.Connection,
        p: PatchAlert,
        dismissed: frozenset[str],
        result: BatchResult,
    ) -> Outcome:
        if p.match_key is not None:
            query = _TARGET_RESTORED_MATCH if p.kind == "rearm" else _TARGET_OPEN_MATCH
            target = await conn.fetchval(query, p.source, p.match_key)
        else:
            target = await conn.fetchval(_TARGET_EXTERNAL, p.source, p.external_id)
        if target is None:
            metrics.ALERT_PATCHES.labels(p.kind, "no_target").inc()
            if not p.on_miss:
                result.discards.append((len(result.outcomes), f"{p.kind}_no_target"))
                return "skipped"
            outs = [await self.apply(conn, i, dismissed, result) for i in p.on_miss]
            return "stored" if "stored" in outs else outs[0] if outs else "skipped"
        if p.kind == "still_present":
            row = await conn.fetchrow(_PATCH_OVERWRITE, target, p.metadata_patch)
        elif p.kind == "rearm":
            row = await conn.fetchrow(_PATCH_REARM, target, p.metadata_patch)
        else:
            row = await conn.fetchrow(_PATCH_ABSENT, target, p.metadata_patch, p.status_from_new)
        metrics.ALERT_PATCHES.labels(p.kind, "applied").inc()
        update = {
            "event": "alert.updated",
            "kind": p.kind,
            "id": str(row["id"]),
            "source": row["source"],
            "external_id": row["external_id"],
            "status": row["status"],
            "patch": p.metadata_patch,
        }
        result.outbox.append(OutboxEntry(await conn.fetchval(_OUTBOX, row["id"], update), update))
        return "stored"

    async def _store_activity(self, conn: asyncpg.Connection, rows: Sequence[TelemetryRow]) -> None:
        await self._partitions.ensure(conn, "telemetry", [r.time for r in rows])
        await conn.executemany(_INSERT_TELEMETRY, [tuple(r) for r in rows])
        metrics.ROWS_WRITTEN.labels("telemetry").inc(len(rows))
