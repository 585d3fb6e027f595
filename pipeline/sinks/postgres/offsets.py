"""Consumed Kafka positions kept in PostgreSQL, next to the rows they produced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from pipeline.clients.postgres import Database

_LOAD = """
SELECT topic, partition, next_offset FROM ingest_offsets
WHERE group_id = $1 AND topic = ANY($2::text[])"""

_SAVE = """
INSERT INTO ingest_offsets (group_id, topic, partition, next_offset)
SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)
ON CONFLICT (group_id, topic, partition) DO UPDATE
SET next_offset = GREATEST(ingest_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()"""

Offsets = Mapping[tuple[str, int], int]


def offset_columns(offsets: Offsets) -> tuple[list[str], list[int], list[int]]:
    """Topics, partitions and next offsets as the three arrays ``unnest`` takes."""
    keys = list(offsets)
    return [k[0] for k in keys], [k[1] for k in keys], [offsets[k] for k in keys]


async def save_offsets(conn: asyncpg.Connection, group_id: str, offsets: Offsets) -> None:
    """Record the next offsets in the caller's transaction; a position never moves back."""
    if offsets:
        await conn.execute(_SAVE, group_id, *offset_columns(offsets))


async def load_offsets(
    db: Database, group_id: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    """The next offset to read per (topic, partition), as last committed with rows."""
    async with db.connection() as conn:
        rows = await conn.fetch(_LOAD, group_id, list(topics))
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
