"""The poller's memory in PostgreSQL (migration 0009): validators and seen entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.clients.postgres import Database


@dataclass(frozen=True, slots=True)
class SourceState:
    url: str
    etag: str | None
    last_modified: str | None
    last_success_at: datetime | None


class FeedStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def source(self, name: str) -> SourceState | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT url, etag, last_modified, last_success_at FROM cap_feed_sources "
                "WHERE source = $1",
                name,
            )
        return SourceState(**dict(row)) if row else None

    async def versions(self, name: str, entry_ids: list[str]) -> dict[str, str]:
        """The stored version of each of these entries that was forwarded before;
        marks them all as still in the feed."""
        async with self._db.connection() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE cap_feed_entries SET last_seen_at = now() "
                "WHERE source = $1 AND entry_id = ANY($2::text[]) RETURNING entry_id, version",
                name,
                entry_ids,
            )
        return {r["entry_id"]: r["version"] for r in rows}

    async def forwarded(
        self, name: str, entry_id: str, version: str, sender: str, identifier: str
    ) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO cap_feed_entries "
                "(source, entry_id, version, cap_sender, cap_identifier) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, entry_id) DO UPDATE SET "
                "version = EXCLUDED.version, cap_sender = EXCLUDED.cap_sender, "
                "cap_identifier = EXCLUDED.cap_identifier, forwarded_at = now(), "
                "last_seen_at = now()",
                name, entry_id, version, sender, identifier,
            )  # fmt: skip

    async def succeeded(
        self, name: str, url: str, etag: str | None, last_modified: str | None, keep: bool
    ) -> None:
        """A poll succeeded; ``keep``: store these validators (every entry was handled)."""
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO cap_feed_sources (source, url, etag, last_modified, last_success_at) "
                "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (source) DO UPDATE SET "
                "url = EXCLUDED.url, last_success_at = now(), updated_at = now(), "
                "etag = CASE WHEN $5 THEN EXCLUDED.etag ELSE cap_feed_sources.etag END, "
                "last_modified = CASE WHEN $5 THEN EXCLUDED.last_modified "
                "ELSE cap_feed_sources.last_modified END",
                name, url, etag if keep else None, last_modified if keep else None, keep,
            )  # fmt: skip

    async def failed(self, name: str, url: str, error: str, *, forget_validators: bool) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO cap_feed_sources (source, url, last_failure_at, last_error) "
                "VALUES ($1, $2, now(), $3) ON CONFLICT (source) DO UPDATE SET "
                "url = EXCLUDED.url, last_failure_at = now(), last_error = EXCLUDED.last_error, "
                "updated_at = now(), "
                "etag = CASE WHEN $4 THEN NULL ELSE cap_feed_sources.etag END, "
                "last_modified = CASE WHEN $4 THEN NULL ELSE cap_feed_sources.last_modified END",
                name, url, error[:500], forget_validators,
            )  # fmt: skip

    async def forget_old(self, name: str, days: int) -> int:
        async with self._db.connection() as conn:
            done = await conn.execute(
                "DELETE FROM cap_feed_entries WHERE source = $1 "
                "AND last_seen_at < now() - make_interval(days => $2)",
                name,
                days,
            )
        return int(done.split()[-1])
