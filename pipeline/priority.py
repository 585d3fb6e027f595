"""Alerts first, across processes.

The worker's alert path and its telemetry/GPS processes share the machine's
cores with PostgreSQL and Kafka. A lower CPU priority for the volume
processes is not enough: the COPY they feed runs in a PostgreSQL backend at
normal priority, and their fetches keep the broker busy. So the alert path
says when it has alerts in hand, in an 8-byte cell of a file both sides map,
and the volume path looks before each fetch and before each COPY chunk and
holds back while it is set. An alert then waits for at most one chunk of
someone else's work.

The cell holds 0 when the alert path is idle, else the ``CLOCK_MONOTONIC``
time (ns, the same clock in every process of the host) at which it last took
alerts in hand. The volume path holds back for at most ``max_wait_s`` per
look, for at most ``max_share`` of any second (an alert storm slows telemetry
down, it never stops it), and not at all for a hold older than ``stale_s``
(an alert path stuck behind an outage must not stop telemetry too).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from pipeline import metrics

_CELL: Final = struct.Struct("=Q")
#: where the cell's file goes: memory, when the host has /dev/shm
_SHM: Final = Path("/dev/shm")  # noqa: S108 - a private file of the worker
_SECOND_NS: Final = 1_000_000_000


class PriorityFlag:
    """The shared cell. The alert side :meth:`hold` and :meth:`release` (nested
    holds count); the volume side reads :meth:`held_since_ns`.

    The cell lives in a file without a name (created, then unlinked at once):
    the worker hands the descriptor to its children, and the file goes with the
    last process that holds it, SIGKILL included."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, _CELL.size)
        self._holds = 0

    @classmethod
    def create(cls) -> PriorityFlag:
        """A new cell, idle."""
        where = _SHM if _SHM.is_dir() and os.access(_SHM, os.W_OK) else None
        fd, name = tempfile.mkstemp(prefix="eriop-priority-", dir=where)
        os.unlink(name)
        os.write(fd, bytes(_CELL.size))
        return cls(fd)

    @classmethod
    def for_role(cls, child: bool, fd: int) -> PriorityFlag | None:
        """A new cell for the alert path; the worker's cell (inherited as ``fd``)
        for one of its telemetry/GPS processes (None when it runs without one)."""
        if not child:
            return cls.create()
        return cls(fd) if fd >= 0 else None

    def hold(self) -> None:
        # every hold renews the time: a busy alert path is not a stuck one
        _CELL.pack_into(self._map, 0, time.monotonic_ns() or 1)
        self._holds += 1

    def release(self) -> None:
        self._holds = max(self._holds - 1, 0)
        if self._holds == 0:
            _CELL.pack_into(self._map, 0, 0)

    def held_since_ns(self) -> int:
        """When the alert path took what it holds (monotonic ns), or 0."""
        value: int = _CELL.unpack_from(self._map, 0)[0]
        return value

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class Yielder:
    """The volume path's side: :meth:`wait` returns at once when no alert is in
    hand, or when this second's share of waiting is used up; else when the
    alerts are done, ``max_wait_s`` has passed, or the hold is older than
    ``stale_s``. With ``max_wait_s`` 0 it never waits."""

    def __init__(
        self,
        flag: PriorityFlag | None,
        *,
        max_wait_s: float = 0.2,
        max_share: float = 0.9,
        stale_s: float = 1.0,
        poll_s: float = 0.002,
    ) -> None:
        self._flag = flag if max_wait_s > 0 and max_share > 0 else None
        self._max_wait_ns = int(max_wait_s * 1e9)
        self._stale_ns = int(stale_s * 1e9)
        self._poll = poll_s
        self._budget_ns = int(max_share * _SECOND_NS)
        self._second = 0
        self._waited_ns = 0

    def _held(self, now: int) -> bool:
        assert self._flag is not None
        since = self._flag.held_since_ns()
        return since != 0 and now - since < self._stale_ns

    def _sleeps(self) -> Iterator[float]:
        """The sleeps of one look: none when no alert is in hand or this
        second's share is used up; else until the alerts are done or a bound ends it."""
        if self._flag is None:
            return
        started = now = time.monotonic_ns()
        if not self._held(now):
            return
        if now - self._second >= _SECOND_NS:
            self._second, self._waited_ns = now, 0
        limit = min(self._max_wait_ns, self._budget_ns - self._waited_ns)
        try:
            while self._held(now) and now - started < limit:
                yield self._poll
                now = time.monotonic_ns()
        finally:
            self._waited_ns += now - started
            metrics.BULK_YIELD_SECONDS.inc((now - started) / 1e9)

    async def wait(self) -> None:
        for pause in self._sleeps():
            await asyncio.sleep(pause)

    def wait_blocking(self) -> None:
        """:meth:`wait` for code that cannot await (rows fed to a COPY): the
        whole process sleeps, which is what giving way to the alert path means
        for a process whose work in hand is that COPY. The same bounds hold."""
        for pause in self._sleeps():
            time.sleep(pause)
