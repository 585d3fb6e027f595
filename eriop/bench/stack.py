"""What ``eriop bench`` runs against: fresh databases, brokers and worker processes.

Every scenario gets its own broker (memory only, empty), its own database
cloned from one freshly migrated template (so every table and index is
identical), and a flushed Redis database. The worker is the real ``eriop
worker`` in its own process, as in production; its resident memory is sampled
with psutil while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import redis

from eriop import workerproc
from eriop.dev import stack as devstack
from pipeline.store.migrate import create_database, migrate


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class Databases:
    """A migrated template and the per-scenario clones made from it."""

    def __init__(self, database_url: str, tag: str) -> None:
        self.admin = with_path(database_url, "/postgres")
        self._base = database_url
        self.template = f"eriop_bench_{tag}_tmpl"
        self._made: list[str] = []

    def dsn(self, name: str) -> str:
        return with_path(self._base, f"/{name}")

    async def prepare(self) -> None:
        await create_database(self.dsn(self.template))
        self._made.append(self.template)
        await migrate(self.dsn(self.template))

    async def clone(self) -> str:
        """A fresh, migrated, empty database; its DSN."""
        name = f"eriop_bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        self._made.append(name)
        return self.dsn(name)

    async def drop(self, *dsns: str) -> None:
        """Drop clones as soon as they are measured: a dropped database gives
        autovacuum nothing to do in the scenarios that follow."""
        conn = await asyncpg.connect(self.admin)
        try:
            for dsn in dsns:
                name = urlsplit(dsn).path.lstrip("/")
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                if name in self._made:
                    self._made.remove(name)
        finally:
            await conn.close()

    async def drop_all(self) -> None:
        # clones first: a template cannot be dropped while copies are made from it
        await self.drop(*(self.dsn(name) for name in reversed(self._made)))

    async def checkpoint(self) -> None:
        """Flush dirty pages now, so no checkpoint lands inside a timed section."""
        conn = await asyncpg.connect(self.admin)
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            pass  # without superuser the timed sections just carry that noise
        finally:
            await conn.close()


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def broker(log_dir: Path) -> Iterator[devstack.Broker]:
    """A fresh embedded broker for one scenario."""
    b = devstack.Broker(devstack.free_port()).start(str(log_dir / "broker.log"))
    try:
        yield b
    finally:
        b.stop()


class RssSampler:
    """Peak resident memory of a process and its children, sampled on a
    background thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = 0
        self._window_peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = int(self._proc.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return
            # the worker's bulk process is part of the worker
            for child in self._children():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    rss += int(child.memory_info().rss)
            with self._lock:
                self._peak = max(self._peak, rss)
                self._window_peak = max(self._window_peak, rss)
            self._stop.wait(self._interval)

    def _children(self) -> list[psutil.Process]:
        try:
            return list(self._proc.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []

    def window(self) -> int:
        """Peak since the previous call (bytes), and start a new window."""
        with self._lock:
            peak, self._window_peak = self._window_peak, 0
        return peak

    @property
    def peak(self) -> int:
        with self._lock:
            return self._peak

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)


def worker_env(bootstrap: str, dsn: str, redis_url: str, group: str) -> dict[str, str]:
    return workerproc.worker_env(
        bootstrap, dsn, redis_url,
        ERIOP_KAFKA__ALERTS_GROUP=f"{group}-alerts", ERIOP_KAFKA__BULK_GROUP=f"{group}-bulk",
    )  # fmt: skip


class Worker(workerproc.WorkerProcess):
    """An ``eriop worker`` process whose memory (with its children's) is sampled."""

    rss: RssSampler | None = None

    def start(self, *extra: str) -> Worker:
        super().start(*extra)
        self.rss = RssSampler(self.pid).start()
        return self

    async def ready(self, timeout: float = 90.0) -> None:
        await asyncio.to_thread(self.wait_healthy, timeout)

    def stop(self, timeout: float = 40.0) -> tuple[int, float]:
        """SIGTERM and wait (the worker flushes what it holds)."""
        if self.proc is None:
            return 0, 0.0
        try:
            return super().stop(timeout)
        finally:
            if self.rss is not None:
                self.rss.stop()
