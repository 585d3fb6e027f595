"""Batched, idempotent writes of telemetry and location fixes.

The common case, a batch of keys never seen before, is one binary COPY into
the table: the same cost as a raw COPY. The rows are encoded for it by
pipeline.sinks.postgres.copy_binary, before the COPY starts, so a value the
table cannot take is refused before anything is sent (where that module's
extension is not loaded, asyncpg encodes them). Before the COPY the store
awaits its gate, where the volume path gives way to alerts in hand
(pipeline.priority), and again before each further piece of about
``look_every`` rows' bytes. The COPY stays one statement, so giving way costs
no round trips. When a key repeats (a replay, a retransmit, two
messages with the same point) the COPY fails on the unique key; its savepoint
is rolled back and the batch goes through a staging table and ``INSERT ... ON
CONFLICT DO NOTHING`` instead, so the first write wins and nothing is stored
twice. Offsets advance in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, Final, Protocol, cast
from uuid import UUID

import asyncpg

from pipeline import metrics
from pipeline.clients.postgres import Database, translate
from pipeline.sinks.postgres.copy_binary import (
    FLOAT,
    HEADER,
    JSONB,
    POINT,
    TEXT,
    TIME,
    TRAILER,
    UUID_,
    compiled_encoder,
)
from pipeline.sinks.postgres.offsets import load_offsets, save_offsets
from pipeline.sinks.postgres.partitions import PartitionCache
from schemas.canonical import GeoPoint, LocationRow, TelemetryRow

TELEMETRY_COLUMNS = (
    "time", "device_id", "device_type", "metric_name", "metric_value", "metric_text",
    "location", "metadata",
)  # fmt: skip
LOCATION_COLUMNS = (
    "time", "resource_id", "resource_type", "location", "speed", "heading", "accuracy",
    "source", "metadata",
)  # fmt: skip

#: the rows' encoder for a binary COPY; None: asyncpg encodes them
ENCODER: Final = compiled_encoder()
TELEMETRY_KINDS = (TIME, UUID_, TEXT, TEXT, FLOAT, TEXT, POINT, JSONB)
LOCATION_KINDS = (TIME, UUID_, TEXT, POINT, FLOAT, FLOAT, FLOAT, TEXT, JSONB)

_LAST_SEEN = """
INSERT INTO device_last_seen (device_id, device_type, last_seen)
SELECT d, t, s FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(d, t, s)
ON CONFLICT (device_id) DO UPDATE
SET last_seen = GREATEST(device_last_seen.last_seen, EXCLUDED.last_seen),
    device_type = EXCLUDED.device_type, updated_at = now()"""

_MOVE = """
UPDATE resources r SET current_location = m.loc, updated_at = now()
FROM unnest($1::uuid[], $2::geography[]) AS m(id, loc)
WHERE r.id = m.id"""


_KEYS: Final = {
    "telemetry": ("device_id", "metric_name", "time"),
    "location_history": ("resource_id", "time"),
}


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How many rows were new; ``keys`` names them when only some were
    (None: every row was new)."""

    inserted: int
    keys: set[tuple[Any, ...]] | None


class Gate(Protocol):
    """Where the volume path gives way (pipeline.priority.Yielder)."""

    async def wait(self) -> None:
        """Return when the volume path may go on."""

    def wait_blocking(self) -> None:
        """The same, for code that cannot await."""


class _Open:
    async def wait(self) -> None:
        return None

    def wait_blocking(self) -> None:
        return None


class TimeseriesStore:
    """``gate`` is awaited before each COPY and asked every ``look_every`` rows in it."""

    def __init__(
        self,
        db: Database,
        group_id: str,
        *,
        look_every: int = 1000,
        gate: Gate | None = None,
    ) -> None:
        self._db = db
        self._group = group_id
        self._partitions = PartitionCache()
        self._every = look_every
        self._gate: Gate = _Open() if gate is None else gate

    async def load_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        return await load_offsets(self._db, self._group, topics)

    async def write_telemetry(
        self,
        rows: Sequence[TelemetryRow],
        offsets: Mapping[tuple[str, int], int],
        last_seen: Mapping[UUID, tuple[str, datetime]] | None = None,
    ) -> WriteResult:
        """Store rows; the result tells which were new."""

        async def extra(conn: asyncpg.Connection) -> None:
            if last_seen:
                ids = list(last_seen)
                await conn.execute(
                    _LAST_SEEN,
                    ids,
                    [last_seen[i][0] for i in ids],
                    [last_seen[i][1] for i in ids],
                )

        return await self._write(
            "telemetry", TELEMETRY_COLUMNS, TELEMETRY_KINDS, rows, offsets, extra
        )

    async def write_locations(
        self,
        rows: Sequence[LocationRow],
        offsets: Mapping[tuple[str, int], int],
        moves: Mapping[UUID, GeoPoint] | None = None,
    ) -> WriteResult:
        """Store fixes and move resources to their newest accepted position."""

        async def extra(conn: asyncpg.Connection) -> None:
            if moves:
                ids = list(moves)
                await conn.execute(_MOVE, ids, [moves[i] for i in ids])

        return await self._write(
            "location_history", LOCATION_COLUMNS, LOCATION_KINDS, rows, offsets, extra
        )

    async def _write(
        self,
        table: str,
        columns: Sequence[str],
        kinds: Sequence[int],
        rows: Sequence[tuple[object, ...]],
        offsets: Mapping[tuple[str, int], int],
        extra: Callable[[asyncpg.Connection], Awaitable[None]],
    ) -> WriteResult:
        started = time.perf_counter()
        stream = "telemetry" if table == "telemetry" else "gps"
        try:
            async with self._db.connection() as conn, conn.transaction():
                result = WriteResult(0, None)
                if rows:
                    times = cast(list[datetime], list(map(itemgetter(0), rows)))
                    await self._partitions.ensure(conn, table, times)
                    result = await self._copy_idempotent(conn, table, columns, kinds, rows)
                await extra(conn)
                await save_offsets(conn, self._group, offsets)
        except Exception as exc:
            self._partitions.forget()
            err = translate(exc)
            metrics.DB_ERRORS.labels(stream, getattr(err, "error_code", "internal_error")).inc()
            raise err from exc
        metrics.DB_WRITE_SECONDS.labels(stream).observe(time.perf_counter() - started)
        metrics.ROWS_WRITTEN.labels(table).inc(result.inserted)
        if len(rows) > result.inserted:
            metrics.ROWS_DUPLICATE.labels(table).inc(len(rows) - result.inserted)
        return result

    def _paced(self, rows: Sequence[tuple[object, ...]]) -> Iterator[tuple[object, ...]]:
        """The rows, for asyncpg to encode, asking the gate (blocking) every
        ``look_every`` of them."""
        every = self._every
        pause = self._gate.wait_blocking
        for start in range(0, len(rows), every):
            if start:
                pause()
            yield from rows[start : start + every]

    async def _pieces(self, data: bytes, count: int) -> AsyncIterator[memoryview]:
        """A binary COPY's bytes in pieces of about ``look_every`` rows, awaiting
        the gate before each piece after the first."""
        view = memoryview(data)
        step = max(len(data) * self._every // max(count, 1), 1)
        for start in range(0, len(data), step):
            if start:
                await self._gate.wait()
            yield view[start : start + step]

    async def _copy(
        self,
        conn: asyncpg.Connection,
        table: str,
        columns: list[str],
        rows: Sequence[tuple[object, ...]],
        data: bytes | None,
    ) -> None:
        if data is None:
            records = rows if len(rows) <= self._every else self._paced(rows)
            await conn.copy_records_to_table(table, records=records, columns=columns)
        else:
            source = self._pieces(data, len(rows))
            await conn.copy_to_table(table, source=source, columns=columns, format="binary")

    async def _copy_idempotent(
        self,
        conn: asyncpg.Connection,
        table: str,
        columns: Sequence[str],
        kinds: Sequence[int],
        rows: Sequence[tuple[object, ...]],
    ) -> WriteResult:
        cols = list(columns)
        data = None if ENCODER is None else HEADER + ENCODER(rows, kinds, cols) + TRAILER
        await self._gate.wait()
        try:
            async with conn.transaction():
                await self._copy(conn, table, cols, rows, data)
            return WriteResult(len(rows), None)
        except asyncpg.UniqueViolationError:
            pass
        stage = f"{table}_stage"
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await self._copy(conn, stage, cols, rows, data)
        names = ", ".join(columns)
        key = ", ".join(_KEYS[table])
        # table and column names are module constants, never input
        new = await conn.fetch(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "  # noqa: S608
            f"ON CONFLICT DO NOTHING RETURNING {key}"
        )
        await conn.execute(f"TRUNCATE {stage}")
        return WriteResult(len(new), {tuple(r) for r in new})
