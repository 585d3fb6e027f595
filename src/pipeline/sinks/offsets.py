"""Consumed Kafka positions kept in PostgreSQL, next to the rows they produced."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.db import Database

_LOAD = """
SELECT topic, partition, next_offset FROM ingest_offsets
WHERE group_id = $1 AND topic = ANY($2::text[])"""


async def load_offsets(
    db: Database, group_id: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    """The next offset to read per (topic, partition), as last committed with rows."""
    async with db.connection() as conn:
        rows = await conn.fetch(_LOAD, group_id, list(topics))
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
