"""Make sure the time-series partition for a row exists before it is written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import asyncpg

_WEEK = timedelta(days=7)


def week_start(t: datetime) -> date:
    d = t.astimezone(UTC).date()
    return d - timedelta(days=d.weekday())


class PartitionCache:
    """Remembers which weekly partitions exist, so the database is asked only
    the first time a batch touches a new week."""

    def __init__(self) -> None:
        self._known: dict[str, set[date]] = {}

    async def ensure(
        self, conn: asyncpg.Connection, parent: str, times: Sequence[datetime]
    ) -> None:
        known = self._known.setdefault(parent, set())
        if not times:
            return
        # Usual case: every week from the oldest row's to the newest's is known,
        # so no row needs its own week computed.
        week, last = week_start(min(times)), week_start(max(times))
        while week in known and week < last:
            week += _WEEK
        if week == last and week in known:
            return
        missing: dict[date, datetime] = {}
        for t in times:
            wk = week_start(t)
            if wk not in known and wk not in missing:
                missing[wk] = t
        for wk, t in sorted(missing.items()):
            await conn.execute("SELECT eriop_ensure_partition($1, $2)", parent, t)
            known.add(wk)

    def forget(self) -> None:
        """After a failed transaction the partitions it created may be gone."""
        self._known.clear()
