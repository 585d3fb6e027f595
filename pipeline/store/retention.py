"""Data retention: the design's retention table, applied by a periodic job.

On every run, in this order:

- partitions of a table with a retention in ``eriop_partition_policies`` whose whole
  range lies before ``now - retention`` are archived (when the policy names an archive
  table), detached and dropped, one partition per transaction: telemetry after two
  years, location history after one, audit logs after one year into
  ``audit_logs_archive``. Tables TimescaleDB manages are left to its own policies;
- messages older than two years move to ``messages_archive``;
- archived audit logs older than seven years are deleted;
- partitions for the next four weeks are created ahead of the clock.

The work is done by the SQL functions of migration 0005, which carry the owner's
rights, so the job runs under the worker's least-privilege role. Only one process
runs it at a time (an advisory lock); the others skip that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import asyncpg

from pipeline import metrics
from pipeline.clients.postgres import Database
from pipeline.errors import EriopError, TransientError

log = logging.getLogger(__name__)

#: advisory lock held while a run is in progress ("ERRT")
RETENTION_LOCK_KEY: Final = 0x45525254
#: partitions are kept from a day back to four weeks ahead of the clock
_ENSURE_AHEAD: Final = (
    "SELECT eriop_ensure_partitions_around_now(interval '1 day', interval '28 days')"
)

#: a removal copies or counts a whole partition: longer than the pool's query timeout
STEP_TIMEOUT_S: Final = 3600.0
#: the table is busy (lock_timeout of the SQL functions, or a deadlock with a writer):
#: ingest goes first, the removal waits for the next run
_BUSY = (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError)

_COUNT_PARTITIONS = """
SELECT count(*) FROM eriop_partition_policies p
JOIN pg_inherits i ON i.inhparent = to_regclass(p.parent)
WHERE NOT p.managed_by_timescaledb"""


@dataclass(slots=True)
class RetentionReport:
    """What one run did; every count is in rows unless it says partitions."""

    dropped_partitions: list[str] = field(default_factory=list)
    #: expired partitions (or steps) left for the next run because they were busy
    postponed: list[str] = field(default_factory=list)
    #: rows removed with their partition, by parent table
    dropped: dict[str, int] = field(default_factory=dict)
    #: rows copied into an archive table, by source table
    archived: dict[str, int] = field(default_factory=dict)
    #: rows deleted from an archive at the end of their life, by archive table
    purged: dict[str, int] = field(default_factory=dict)
    created_partitions: int = 0
    skipped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.dropped_partitions or self.archived or self.purged or self.postponed)

    def summary(self) -> str:
        if self.skipped:
            return "skipped: another process is running retention"
        parts = [f"{len(self.dropped_partitions)} partitions dropped"]
        parts += [f"{t}: {n} rows dropped" for t, n in sorted(self.dropped.items())]
        parts += [f"{t}: {n} rows archived" for t, n in sorted(self.archived.items())]
        parts += [f"{t}: {n} rows purged" for t, n in sorted(self.purged.items())]
        parts.append(f"{self.created_partitions} partitions created ahead")
        if self.postponed:
            parts.append(f"postponed (busy): {', '.join(self.postponed)}")
        return "; ".join(parts)


def _count(bucket: dict[str, int], table: str, action: str, n: int) -> None:
    if n > 0:
        bucket[table] = bucket.get(table, 0) + n
        metrics.RETENTION_ROWS.labels(table, action).inc(n)


async def run_retention(conn: asyncpg.Connection, now: datetime) -> RetentionReport:
    """One retention run on ``conn``; ``now`` may hold the cut-off back, never forward.

    Each removal commits on its own, so an interrupted run keeps what it finished
    and the next run continues. Raises asyncpg errors unchanged.
    """
    report = RetentionReport()
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_KEY):
        report.skipped = True
        return report
    try:
        await _retire_partitions(conn, now, report)
        moved = await _step(conn, report, "messages", "SELECT eriop_archive_messages($1)", now)
        _count(report.archived, "messages", "archived", moved)
        purged = await _step(
            conn, report, "audit_logs_archive", "SELECT eriop_purge_audit_archive($1)", now
        )
        _count(report.purged, "audit_logs_archive", "purged", purged)
        before = int(await conn.fetchval(_COUNT_PARTITIONS))
        await conn.execute(_ENSURE_AHEAD)
        report.created_partitions = int(await conn.fetchval(_COUNT_PARTITIONS)) - before
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)
    return report


async def _step(
    conn: asyncpg.Connection, report: RetentionReport, what: str, sql: str, now: datetime
) -> int:
    """One removal in its own transaction; 0 (and postponed) when it met a lock."""
    try:
        async with conn.transaction():
            return int(await conn.fetchval(sql, now, timeout=STEP_TIMEOUT_S))
    except _BUSY as exc:
        report.postponed.append(what)
        log.warning("retention: %s postponed to the next run: %s", what, exc)
        return 0


async def _retire_partitions(
    conn: asyncpg.Connection, now: datetime, report: RetentionReport
) -> None:
    expired = await conn.fetch(
        "SELECT parent, partition_name, archive_table FROM eriop_expired_partitions($1)", now
    )
    for row in expired:
        parent, name = row["parent"], row["partition_name"]
        try:
            async with conn.transaction():
                result = await conn.fetchrow(
                    "SELECT row_count, archived FROM eriop_retire_partition($1, $2, $3)",
                    parent,
                    name,
                    now,
                    timeout=STEP_TIMEOUT_S,
                )
        except _BUSY as exc:
            report.postponed.append(name)
            log.warning("retention: %s postponed to the next run: %s", name, exc)
            continue
        if result is None:
            continue
        rows, archived = int(result["row_count"]), int(result["archived"])
        report.dropped_partitions.append(name)
        if row["archive_table"] is not None:
            _count(report.archived, parent, "archived", archived)
        else:
            _count(report.dropped, parent, "dropped", rows)
        log.info("retention: %s removed (%d rows, %d archived)", name, rows, archived)


class RetentionJob:
    """Runs :func:`run_retention` now and every ``interval_s`` seconds after.

    A failed run is logged and tried again at the next interval; it never stops
    the worker.
    """

    def __init__(self, db: Database, interval_s: float = 3600.0) -> None:
        self._db = db
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self.last_report: RetentionReport | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> RetentionReport | None:
        """One run; None when it failed (the reason is in ``last_error`` and the log)."""
        try:
            async with self._db.connection() as conn:
                report = await run_retention(conn, datetime.now(UTC))
        except TransientError as exc:
            self.last_error = exc.reason
            log.warning("retention postponed: %s", exc.reason)
            return None
        except EriopError as exc:
            self.last_error = exc.reason
            log.error("retention failed: %s", exc.reason)
            return None
        self.last_error = None
        self.last_report = report
        if report.changed:
            log.info("retention: %s", report.summary())
        return report

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug here must not take ingest down with it
                self.last_error = "unexpected error (see the log)"
                log.exception("retention failed unexpectedly")
            await asyncio.sleep(self._interval)
