"""Line supervision: every frame a receiver accepts is a check-in for its account.

The receiver calls :meth:`LineSupervisor.check_in` for each frame (events and
``NULL`` link tests alike); it only notes the time. Once per tick the check-ins
are written to PostgreSQL, missed deadlines are raised, and changes delivered:

* deadline = max(last check-in, supervisor start) + interval + grace: a restart
  never makes every account look silent, and an account that went silent while
  no receiver ran is raised one interval after the start;
* a missed deadline sets ``outage_since`` (the last check-in) and records a
  ``failed`` change in the same transaction; a newer check-in clears it and
  records ``restored``. Row locks let one receiver win when several (main and
  backup paths) share the database;
* changes are produced to ``alerts.alarm`` (docs/formats.md 1.12, keyed by
  account), then handed to ``notify`` (Redis), in order, under an advisory lock,
  and deleted. A crash in between repeats a delivery, which the alert's
  ``external_id`` (account + ``outage_since``) makes harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import asyncpg

from pipeline import metrics
from pipeline.clients.postgres import Database
from pipeline.decoders.alarm.supervision import LineChange, checkin_intervals, line_change_envelope
from pipeline.errors import BrokerUnavailable, EriopError, RedisUnavailable
from pipeline.retry import CONNECT, RetryPolicy
from pipeline.settings import AlarmAccount, AlarmSettings

log = logging.getLogger(__name__)

#: the receiver's way into Kafka (``KafkaPublisher.publish``): key, value
Publish = Callable[[bytes | None, bytes], Awaitable[None]]
#: where changes are announced besides Kafka (``RedisLineState``)
Notify = Callable[[LineChange], Awaitable[None]]

_EMIT_LOCK: Final = 0x4C494E45  # "LINE": one receiver delivers changes at a time
_BATCH: Final = 500
_RETRY: Final = RetryPolicy(initial_s=0.5, cap_s=10.0)
_UTC_NOW: Final = partial(datetime.now, UTC)
_KINDS: Final[dict[type, str]] = {BrokerUnavailable: "kafka", RedisUnavailable: "redis"}

_LOCK_FAILED: Final = """
SELECT account, outage_since FROM line_supervision
WHERE account = ANY($1::text[]) AND outage_since IS NOT NULL
ORDER BY account
FOR UPDATE
"""
_UPSERT: Final = """
INSERT INTO line_supervision AS s (account, line, last_check_in)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT (account) DO UPDATE SET
    line = CASE WHEN EXCLUDED.last_check_in >= s.last_check_in THEN EXCLUDED.line ELSE s.line END,
    last_check_in = GREATEST(s.last_check_in, EXCLUDED.last_check_in),
    updated_at = now()
"""
_RESTORE: Final = """
WITH ended AS (
    UPDATE line_supervision SET outage_since = NULL, updated_at = now()
    WHERE account = ANY($1::text[])
    RETURNING account
)
INSERT INTO line_supervision_events (account, line, state, since, at)
SELECT e.account, e.line, 'restored', e.since, e.at
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
    AS e(account, line, since, at)
"""
_FAIL: Final = """
WITH cfg AS (
    SELECT * FROM unnest($1::text[], $2::float8[]) AS c(account, interval_s)
), due AS (
    SELECT s.account FROM line_supervision s LEFT JOIN cfg ON cfg.account = s.account
    WHERE s.outage_since IS NULL
      AND COALESCE(cfg.interval_s, $3) > 0
      AND GREATEST(s.last_check_in, $4)
          + make_interval(secs => COALESCE(cfg.interval_s, $3) + $5) <= $6
    FOR UPDATE OF s SKIP LOCKED
), failed AS (
    UPDATE line_supervision s SET outage_since = s.last_check_in, updated_at = now()
    FROM due WHERE s.account = due.account
    RETURNING s.account, s.line, s.last_check_in
)
INSERT INTO line_supervision_events (account, line, state, since, at)
SELECT account, line, 'failed', last_check_in, $6 FROM failed
"""


class LineSupervisor:
    """Check-ins in, one failure and one restore per outage out."""

    def __init__(
        self,
        settings: AlarmSettings,
        *,
        database: Database,
        publish: Publish,
        receiver: str,
        notify: Notify | None = None,
        accounts: Callable[[], Mapping[str, AlarmAccount]] | None = None,
        clock: Callable[[], datetime] = _UTC_NOW,
    ) -> None:
        self._settings = settings
        self._db = database
        self._publish = publish
        self._receiver = receiver
        self._notify = notify
        # the receiver's reloadable accounts, when it has them
        self._accounts = accounts or (lambda: settings.accounts)
        self._clock = clock
        self._pending: dict[str, tuple[str | None, datetime]] = {}
        self._started_at: datetime | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_tick = 0.0

    def check_in(self, account: str, line: str | None, at: datetime) -> None:
        """Note a frame from ``account`` (never blocks; written at the next tick)."""
        account = account.upper()
        seen = self._pending.get(account)
        if seen is None or at >= seen[1]:
            self._pending[account] = (line, at)

    async def start(self) -> None:
        """Start the ticks in the background; PostgreSQL may come up later."""
        self._started_at = self._clock()
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="line-supervision")

    async def close(self, timeout: float = 5.0) -> None:
        """Stop ticking and write the check-ins still held, within ``timeout``."""
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                await asyncio.wait_for(task, timeout)
            except TimeoutError:
                log.warning("line supervision did not stop within %.0f s", timeout)
            with contextlib.suppress(EriopError, TimeoutError):
                await asyncio.wait_for(self._flush(), timeout)
        await self._db.close()

    async def health(self) -> dict[str, Any]:
        """Ok while ticks complete (PostgreSQL reachable, deliveries going through)."""
        age = time.monotonic() - self._last_tick if self._last_tick else None
        ok = age is not None and age < max(30.0, 10 * self._settings.supervision_tick_s)
        return {"ok": ok, "last_check_age_s": None if age is None else round(age, 1)}

    async def _run(self) -> None:
        connect = CONNECT.backoff()
        while not self._stop.is_set():
            try:
                await self._db.start()
                break
            except EriopError as exc:
                metrics.SUPERVISION_ERRORS.labels("database").inc()
                log.warning("line supervision waits for PostgreSQL: %s", exc)
                await connect.wait(self._stop)
        retry = _RETRY.backoff()
        while not self._stop.is_set():
            try:
                await self.tick()
                retry.reset()
            except Exception as exc:  # never let supervision die: count, log, retry
                kind = _KINDS.get(type(exc), "database" if isinstance(exc, EriopError) else "bug")
                metrics.SUPERVISION_ERRORS.labels(kind).inc()
                log.warning(
                    "line supervision step failed, retrying: %s", exc, exc_info=kind == "bug"
                )
                await retry.wait(self._stop)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.supervision_tick_s)

    async def tick(self) -> None:
        """Write check-ins, raise missed deadlines, deliver changes, count."""
        await self._flush()
        await self._check()
        await self._deliver()
        async with self._db.connection() as conn:
            failed = await conn.fetchval(
                "SELECT count(*) FROM line_supervision WHERE outage_since IS NOT NULL"
            )
        metrics.SUPERVISION_ACCOUNTS_FAILED.set(failed)
        metrics.SUPERVISION_LAST_CHECK.set(time.time())
        self._last_tick = time.monotonic()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        accounts = sorted(pending)  # rows locked in one order by every receiver
        try:
            async with self._db.connection() as conn, conn.transaction():
                failed = await conn.fetch(_LOCK_FAILED, accounts)
                await conn.execute(
                    _UPSERT,
                    accounts,
                    [pending[a][0] for a in accounts],
                    [pending[a][1] for a in accounts],
                )
                ended = [(r[0], r[1]) for r in failed if pending[r[0]][1] > r[1]]
                if ended:
                    await conn.execute(
                        _RESTORE,
                        [a for a, _ in ended],
                        [pending[a][0] for a, _ in ended],
                        [since for _, since in ended],
                        [pending[a][1] for a, _ in ended],
                    )
        except BaseException:
            for account, seen in pending.items():
                self.check_in(account, *seen)
            raise

    async def _check(self) -> None:
        assert self._started_at is not None
        overrides = checkin_intervals(self._accounts())
        s = self._settings
        async with self._db.connection() as conn, conn.transaction():
            await conn.execute(
                _FAIL,
                list(overrides),
                list(overrides.values()),
                s.checkin_interval_s,
                self._started_at,
                s.checkin_grace_s,
                self._clock(),
            )

    async def _deliver(self) -> None:
        async with self._db.connection() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _EMIT_LOCK):
                return  # another receiver is delivering
            rows = await conn.fetch(
                "SELECT id, account, line, state, since, at, produced "
                "FROM line_supervision_events ORDER BY id LIMIT $1",
                _BATCH,
            )
            produced, done, error = await self._send(rows)
            await conn.execute("DELETE FROM line_supervision_events WHERE id = ANY($1)", done)
            await conn.execute(
                "UPDATE line_supervision_events SET produced = true WHERE id = ANY($1)",
                [i for i in produced if i not in set(done)],
            )
        if error is not None:
            raise error

    async def _send(
        self, rows: list[asyncpg.Record]
    ) -> tuple[list[int], list[int], EriopError | None]:
        """Produce what is not yet produced, then notify, each in order; stop a
        pass at its first failure (a later change must not overtake it)."""
        produced: list[int] = []
        ready: list[tuple[int, LineChange]] = []
        error: EriopError | None = None
        intervals = checkin_intervals(self._accounts())
        for r in rows:
            change = LineChange(
                account=r["account"],
                line=r["line"],
                state=r["state"],
                since=r["since"],
                at=r["at"],
                interval_s=intervals.get(r["account"], self._settings.checkin_interval_s),
            )
            if not r["produced"]:
                value = line_change_envelope(change, self._receiver)
                try:
                    await self._publish(r["account"].encode(), value)
                except EriopError as exc:
                    error = exc
                    break
                produced.append(r["id"])
                metrics.SUPERVISION_CHANGES.labels(change.state).inc()
                log.info("line supervision: account %s %s", change.account, change.state)
            ready.append((r["id"], change))
        done: list[int] = []
        for row_id, change in ready:
            if self._notify is not None:
                try:
                    await self._notify(change)
                except EriopError as exc:
                    error = error or exc
                    break
            done.append(row_id)
        return produced, done, error
