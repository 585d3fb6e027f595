"""Measurements: committed progress, the raw COPY ceiling, alert latency.

Progress is read from ``ingest_offsets``, which the worker writes in the same
transaction as the rows: a committed offset means committed rows. The rate is
taken between the first and the last commit seen, so it is the steady
consume-and-store rate without the worker's start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import psutil
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from eriop.bench.load import ALERTS, alert, producer, stamp_of
from pipeline.clients.postgres import _init_connection
from pipeline.errors import EriopError
from pipeline.sinks.redis.live import CH_ALERTS

_OFFSETS = "SELECT topic, partition, next_offset FROM ingest_offsets WHERE group_id = $1"


@dataclass(frozen=True, slots=True)
class Progress:
    records: int
    #: seconds from the first commit seen to the last, and what was committed by the first
    steady_s: float
    steady_records: int
    #: seconds from the watch's start (the load fully produced) to the last commit
    total_s: float
    #: cores each part of the stack kept busy between the first and last commit
    cpu: dict[str, float] | None = None

    @property
    def rate(self) -> float:
        """Records per second over the steady window."""
        if self.steady_s <= 0 or self.steady_records <= 0:
            return self.records / self.total_s if self.total_s > 0 else 0.0
        return self.steady_records / self.steady_s


class CpuMeter:
    """CPU time used by each part of the stack, for "what bounds this number":
    the worker (with its bulk processes), the broker, PostgreSQL (every backend),
    and everything else on the machine (the benchmark's own load generators
    included)."""

    PARTS = ("worker", "broker", "postgres", "other")

    def __init__(self, worker_pids: Sequence[int], broker_pid: int | None) -> None:
        self._workers = list(worker_pids)
        self._broker = broker_pid

    def _worker_tree(self) -> set[int]:
        pids = set(self._workers)
        for pid in self._workers:
            with contextlib.suppress(psutil.Error):
                pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
        return pids

    def read(self) -> tuple[float, dict[str, float]]:
        """(monotonic time, CPU seconds so far by part) of the processes alive now."""
        workers = self._worker_tree()
        used = dict.fromkeys(self.PARTS, 0.0)
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is None:
                continue
            if proc.pid in workers:
                part = "worker"
            elif proc.pid == self._broker:
                part = "broker"
            elif proc.info["name"] == "postgres":
                part = "postgres"
            else:
                part = "other"
            used[part] += times.user + times.system
        return time.monotonic(), used


def cores_between(
    a: tuple[float, dict[str, float]], b: tuple[float, dict[str, float]]
) -> dict[str, float]:
    """Cores each part kept busy between two readings, and in all."""
    seconds = b[0] - a[0]
    if seconds <= 0:
        return {}
    out = {k: round(max(b[1][k] - a[1].get(k, 0.0), 0.0) / seconds, 2) for k in b[1]}
    out["all"] = round(sum(out.values()), 2)
    return out


async def committed(
    conn: asyncpg.Connection, group: str, ends: Mapping[tuple[str, int], int]
) -> int:
    rows = await conn.fetch(_OFFSETS, group)
    pos = {(r["topic"], r["partition"]): int(r["next_offset"]) for r in rows}
    return sum(min(pos.get(tp, 0), end) for tp, end in ends.items())


async def watch_commits(
    dsn: str,
    group: str,
    ends: Mapping[tuple[str, int], int],
    *,
    timeout: float,
    interval: float = 0.05,
    cpu: CpuMeter | None = None,
    on_first: Callable[[], None] | None = None,
) -> Progress:
    """Poll until every produced record is committed by ``group``; ``on_first``
    is called when the first commit is seen."""
    total = sum(ends.values())
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    first: tuple[float, int] | None = None
    cpu_first = cpu_last = None
    try:
        while True:
            now = time.monotonic()
            done = await committed(conn, group, ends)
            if done and first is None:
                first = (now, done)
                cpu_first = cpu.read() if cpu else None
                if on_first is not None:
                    on_first()
            if done >= total:
                cpu_last = cpu.read() if cpu else None
                break
            if now - started > timeout:
                raise EriopError(f"only {done} of {total} records committed in {timeout:.0f}s")
            await asyncio.sleep(interval)
    finally:
        await conn.close()
    assert first is not None
    shares = cores_between(cpu_first, cpu_last) if cpu_first and cpu_last else None
    return Progress(total, now - first[0], total - first[1], now - started, shares)


async def count_rows(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - constant
    finally:
        await conn.close()


async def fetch_rows(dsn: str, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows a worker stored, in storage order, decoded as the worker encodes them."""
    conn = await asyncpg.connect(dsn)
    try:
        await _init_connection(conn)
        cols = ", ".join(columns)
        records = await conn.fetch(f"SELECT {cols} FROM {table}")  # noqa: S608 - constants
    finally:
        await conn.close()
    return [tuple(r) for r in records]


async def raw_copy(
    dsn: str, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> tuple[float, float]:
    """Seconds for one binary COPY of ``rows`` into ``table`` and its commit, and
    the CPU seconds PostgreSQL spent meanwhile (every backend, as in :class:`CpuMeter`)."""
    conn = await asyncpg.connect(dsn)
    meter = CpuMeter([], None)
    try:
        await _init_connection(conn)
        before = meter.read()[1]["postgres"]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=rows, columns=list(columns))
        seconds = time.perf_counter() - started
        return seconds, meter.read()[1]["postgres"] - before
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class Latency:
    sent: int
    received: int
    seconds: float
    #: milliseconds from produce to the eriop.alerts message
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, sent: int, seconds: float, lat: Sequence[float]) -> Latency:
        ordered = sorted(lat)
        return cls(
            sent=sent,
            received=len(ordered),
            seconds=seconds,
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            max=ordered[-1] if ordered else 0.0,
            mean=sum(ordered) / len(ordered) if ordered else 0.0,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "rate_per_s": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.p50, 2),
            "p95_ms": round(self.p95, 2),
            "p99_ms": round(self.p99, 2),
            "max_ms": round(self.max, 2),
            "mean_ms": round(self.mean, 2),
        }


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return 0.0
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


class _Arrivals:
    """When each of the benchmark's alerts arrived, and whether all of them have."""

    def __init__(self, prefix: str, count: int) -> None:
        self.prefix = prefix
        self.count = count
        self.at: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.all_in = asyncio.Event()

    def note(self, payload: bytes, at: int) -> None:
        ext = str(orjson.loads(payload).get("external_id", ""))
        if stamp_of(ext, self.prefix) is not None:
            self.at[ext] = at
            if len(self.at) >= self.count:
                self.all_in.set()


async def _bare_consumer(bootstrap: str, partitions: int, arrivals: _Arrivals) -> None:
    """Receive the alerts as a plain consumer of ``alerts.json`` would, from its end."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=5)
    await c.start()
    try:
        tps = [TopicPartition(ALERTS, p) for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_end(*tps)
        for tp in tps:  # resolve the end now, before the first alert is sent
            await c.position(tp)
        arrivals.ready.set()
        while True:
            batch = await c.getmany(timeout_ms=100)
            at = time.time_ns()
            for msgs in batch.values():
                for m in msgs:
                    arrivals.note(m.value, at)
    finally:
        await c.stop()


async def _subscriber(redis_url: str, arrivals: _Arrivals) -> None:
    """Receive the alerts' messages on ``eriop.alerts``, as a console does."""
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(CH_ALERTS)
        arrivals.ready.set()
        async for msg in pubsub.listen():
            at = time.time_ns()
            if msg.get("type") == "message":
                arrivals.note(msg["data"], at)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()


async def alert_latency(
    bootstrap: str,
    redis_url: str,
    prefix: str,
    *,
    rate: float,
    count: int,
    settle_s: float = 15.0,
    bare_partitions: int | None = None,
) -> Latency:
    """Produce ``count`` alerts at ``rate``/s and time each to its Redis message.

    With ``bare_partitions``, time them instead to their arrival at a bare Kafka
    consumer of ``alerts.json``: the broker's and the machine's share of the
    latency, with no pipeline work. That is a run of its own, because one more
    consumer polling the broker slows everyone else's fetches.
    """
    arrivals = _Arrivals(prefix, count)
    if bare_partitions is None:
        listen = _subscriber(redis_url, arrivals)
    else:
        listen = _bare_consumer(bootstrap, bare_partitions, arrivals)
    reader = asyncio.create_task(listen)
    p = producer(bootstrap, linger_ms=0)
    await p.start()
    sent: dict[str, int] = {}
    try:
        await asyncio.wait_for(arrivals.ready.wait(), 30)
        started = time.monotonic()
        for seq in range(count):
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = time.time_ns()
            value = alert(prefix, seq, stamp)
            await p.send(ALERTS, value, key=b"eriop_bench")
            sent[f"{prefix}-{seq}-{stamp}"] = stamp
        seconds = time.monotonic() - started
        await p.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.all_in.wait(), settle_s)
    finally:
        await p.stop()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    at = arrivals.at
    lat = [(at[ext] - stamp) / 1e6 for ext, stamp in sent.items() if ext in at]
    return Latency.of(len(sent), seconds, lat)
