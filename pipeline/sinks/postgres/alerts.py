"""Alert writes: one transaction per batch holding the new rows, the patches to
existing alerts, activity rows, the outbox entries and the consumed offsets.

Deduplication is ``ON CONFLICT (source, external_id) DO NOTHING``: the first
write wins and a conflict is a counted duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg
import orjson

from pipeline import metrics
from pipeline.clients.postgres import Database, translate
from pipeline.decoders.envelope import iso_utc
from pipeline.errors import WriteRejected
from pipeline.sinks.outbox import OutboxEntry
from pipeline.sinks.postgres.offsets import load_offsets, offset_columns, save_offsets
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
from schemas.records import RawRecord

log = logging.getLogger(__name__)

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

# A batch of new alerts in one statement, committed on its own: the rows, their
# outbox entries and the consumed offsets. One round trip and one commit per
# batch, however many alerts it holds; when a flood keeps the CPUs busy, every
# round trip waits its turn for both processes, so their number bounds how many
# alerts a second the path can take. Ids are made here so that the consoles'
# message can carry them; a conflict on (source, external_id) inserts nothing
# and so queues no message. ``ord`` keeps the outbox in batch order.
_STORE_ALERTS = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[],
                         $6::text[], $7::text[], $8::text[], $9::geography[], $10::jsonb[],
                         $11::jsonb[], $12::jsonb[], $13::timestamptz[], $14::timestamptz[],
                         $15::jsonb[])
        WITH ORDINALITY AS i(id, source, external_id, type, severity, status, title,
                             description, location, address, raw_payload, metadata,
                             received_at, processed_at, message, ord)
), stored AS (
    INSERT INTO alerts (id, source, external_id, type, severity, status, title, description,
                        location, address, raw_payload, metadata, received_at, processed_at)
    SELECT id, source, external_id, type, severity, status, title, description,
           location, address, raw_payload, metadata, received_at, processed_at
    FROM input ORDER BY ord
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO alert_outbox (alert_id, payload)
    SELECT i.id, i.message FROM input i JOIN stored s ON s.id = i.id ORDER BY i.ord
    RETURNING id, alert_id
), positions AS (
    INSERT INTO ingest_offsets (group_id, topic, partition, next_offset)
    SELECT $16, t, p, o FROM unnest($17::text[], $18::int[], $19::bigint[]) AS x(t, p, o)
    ON CONFLICT (group_id, topic, partition) DO UPDATE
    SET next_offset = GREATEST(ingest_offsets.next_offset, EXCLUDED.next_offset),
        updated_at = now()
)
SELECT alert_id, id FROM queued"""

#: intents a batch may hold and still be stored by the one-statement path
_SIMPLE = (StoreAlert, SetRedis, Discard)


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


#: what the driver or the server raises for a record that will never be stored
_REFUSED = (asyncpg.PostgresError, UnicodeEncodeError, orjson.JSONEncodeError)


def _overall(outcomes: Sequence[Outcome]) -> Outcome:
    """A record's outcome from its intents': stored wins, then duplicate."""
    if "stored" in outcomes:
        return "stored"
    if "duplicate" in outcomes:
        return "duplicate"
    return "skipped"


class RecordRejected(Exception):
    """The database refused one record of the batch for good; the batch was
    rolled back and is retried without it once it is dead-lettered."""

    def __init__(self, index: int, error: WriteRejected) -> None:
        super().__init__(error.reason)
        self.index = index
        self.error = error


class AlertStore:
    def __init__(self, db: Database, group_id: str) -> None:
        self._db = db
        self._group = group_id
        self._partitions = PartitionCache()

    async def load_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        return await load_offsets(self._db, self._group, topics)

    async def write(
        self,
        items: Sequence[tuple[RawRecord, Sequence[Intent]]],
        offsets: Mapping[tuple[str, int], int],
        dismissed_keys: frozenset[str] = frozenset(),
    ) -> BatchResult:
        """Store a batch and its offsets atomically; the outcome of each record."""
        if all(isinstance(i, _SIMPLE) for _, intents in items for i in intents):
            try:
                return await self._write_new(items, offsets, dismissed_keys)
            except Exception:
                # The statement is atomic, so nothing of it was stored (or, after
                # a lost reply, all of it, and the path below finds duplicates).
                # That path names a refused record, or raises the failure in the
                # form the retry logic understands.
                log.debug("one-statement alert write failed; writing one by one", exc_info=True)
        return await self._write_each(items, offsets, dismissed_keys)

    async def _write_new(
        self,
        items: Sequence[tuple[RawRecord, Sequence[Intent]]],
        offsets: Mapping[tuple[str, int], int],
        dismissed: frozenset[str],
    ) -> BatchResult:
        """New alerts only (and what needs no database): one statement."""
        result = BatchResult()
        alerts: list[tuple[UUID, CanonicalAlert, str, dict[str, Any]]] = []
        for _record, intents in items:
            for intent in intents:
                if isinstance(intent, StoreAlert):
                    a = intent.alert
                    status = "dismissed" if intent.dismiss_if_key in dismissed else a.status
                    alert_id = uuid4()
                    alerts.append((alert_id, a, status, alert_message(a, alert_id, status)))
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                _STORE_ALERTS,
                [x[0] for x in alerts],
                [x[1].source for x in alerts],
                [x[1].external_id for x in alerts],
                [x[1].type for x in alerts],
                [x[1].severity for x in alerts],
                [x[2] for x in alerts],
                [x[1].title for x in alerts],
                [x[1].description for x in alerts],
                [x[1].location for x in alerts],
                [x[1].address for x in alerts],
                [x[1].raw_payload for x in alerts],
                [x[1].metadata for x in alerts],
                [x[1].received_at for x in alerts],
                [x[1].processed_at for x in alerts],
                [x[3] for x in alerts],
                self._group,
                *offset_columns(offsets),
            )
        queued = {r["alert_id"]: r["id"] for r in rows}
        messages = iter(alerts)
        for _record, intents in items:
            outcomes: list[Outcome] = []
            for intent in intents:
                if isinstance(intent, StoreAlert):
                    alert_id, _, _, message = next(messages)
                    entry = queued.get(alert_id)
                    if entry is None:
                        metrics.ROWS_DUPLICATE.labels("alerts").inc()
                        outcomes.append("duplicate")
                    else:
                        metrics.ROWS_WRITTEN.labels("alerts").inc()
                        result.outbox.append(OutboxEntry(entry, message))
                        outcomes.append("stored")
                elif isinstance(intent, SetRedis):
                    result.redis_sets.append(intent)
                    outcomes.append("stored")
                else:
                    assert isinstance(intent, Discard)
                    result.discards.append((len(result.outcomes), intent.reason))
                    outcomes.append("skipped")
            result.outcomes.append(_overall(outcomes))
        return result

    async def _write_each(
        self,
        items: Sequence[tuple[RawRecord, Sequence[Intent]]],
        offsets: Mapping[tuple[str, int], int],
        dismissed_keys: frozenset[str],
    ) -> BatchResult:
        """Any batch, one statement per intent in one transaction; a record the
        database refuses is named by its index."""
        result = BatchResult()
        try:
            async with self._db.connection() as conn, conn.transaction():
                # no savepoint per record: a refused record aborts the transaction
                # anyway, and the index says which one to dead-letter before the retry
                for index, (_record, intents) in enumerate(items):
                    try:
                        outcome = await self._apply_all(conn, intents, dismissed_keys, result)
                    except _REFUSED as exc:
                        err = translate(exc)
                        if isinstance(err, WriteRejected):
                            raise RecordRejected(index, err) from exc
                        raise err from exc
                    result.outcomes.append(outcome)
                await save_offsets(conn, self._group, offsets)
        except RecordRejected:
            self._partitions.forget()
            raise
        except Exception as exc:
            self._partitions.forget()
            raise translate(exc) from exc
        return result

    async def _apply_all(
        self,
        conn: asyncpg.Connection,
        intents: Sequence[Intent],
        dismissed: frozenset[str],
        result: BatchResult,
    ) -> Outcome:
        return _overall([await self._apply(conn, i, dismissed, result) for i in intents])

    async def _apply(
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
            outs = [await self._apply(conn, i, dismissed, result) for i in p.on_miss]
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
