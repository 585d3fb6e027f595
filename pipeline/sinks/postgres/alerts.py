"""Alert writes: one transaction per batch holding the new rows, the patches to
existing alerts, activity rows, the outbox entries and the consumed offsets.

Deduplication is ``ON CONFLICT (source, external_id) DO NOTHING``: the first
write wins and a conflict is a counted duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson

from pipeline import metrics
from pipeline.clients.postgres import Database, translate
from pipeline.errors import RecordRejected, WriteRejected
from pipeline.sinks.outbox import OutboxEntry
from pipeline.sinks.postgres.alert_intents import (
    BatchResult,
    IntentWriter,
    Outcome,
    alert_message,
    overall,
)
from pipeline.sinks.postgres.offsets import load_offsets, offset_columns, save_offsets
from pipeline.sinks.postgres.partitions import PartitionCache
from schemas.canonical import CanonicalAlert
from schemas.intents import (
    Discard,
    Intent,
    SetRedis,
    StoreAlert,
)
from schemas.records import RawRecord

log = logging.getLogger(__name__)

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


#: what the driver or the server raises for a record that will never be stored
_REFUSED = (asyncpg.PostgresError, UnicodeEncodeError, orjson.JSONEncodeError)


class AlertStore:
    def __init__(self, db: Database, group_id: str) -> None:
        self._db = db
        self._group = group_id
        self._partitions = PartitionCache()
        self._intents = IntentWriter(self._partitions)

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
            result.outcomes.append(overall(outcomes))
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
                        outcome = await self._intents.apply_all(
                            conn, intents, dismissed_keys, result
                        )
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
