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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis

from pipeline.bench_load import ALERTS, alert, producer, stamp_of
from pipeline.db import _init_connection
from pipeline.errors import ConfigError
from pipeline.sinks.redis_live import CH_ALERTS

_OFFSETS = "SELECT topic, partition, next_offset FROM ingest_offsets WHERE group_id = $1"


@dataclass(frozen=True, slots=True)
class Progress:
    records: int
    #: seconds from the first commit seen to the last, and what was committed by the first
    steady_s: float
    steady_records: int
    #: seconds from the watch's start (the load fully produced) to the last commit
    total_s: float

    @property
    def rate(self) -> float:
        """Records per second over the steady window."""
        if self.steady_s <= 0 or self.steady_records <= 0:
            return self.records / self.total_s if self.total_s > 0 else 0.0
        return self.steady_records / self.steady_s


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
) -> Progress:
    """Poll until every produced record is committed by ``group``."""
    total = sum(ends.values())
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    first: tuple[float, int] | None = None
    try:
        while True:
            now = time.monotonic()
            done = await committed(conn, group, ends)
            if done and first is None:
                first = (now, done)
            if done >= total:
                break
            if now - started > timeout:
                raise ConfigError(f"only {done} of {total} records committed in {timeout:.0f}s")
            await asyncio.sleep(interval)
    finally:
        await conn.close()
    assert first is not None
    return Progress(total, now - first[0], total - first[1], now - started)


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
) -> float:
    """Seconds for one binary COPY of ``rows`` into ``table`` and its commit."""
    conn = await asyncpg.connect(dsn)
    try:
        await _init_connection(conn)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=rows, columns=list(columns))
        return time.perf_counter() - started
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

    def as_dict(self) -> dict[str, float | int]:
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


async def alert_latency(
    bootstrap: str,
    redis_url: str,
    prefix: str,
    *,
    rate: float,
    count: int,
    settle_s: float = 15.0,
) -> Latency:
    """Produce ``count`` alerts at ``rate``/s and time each to its Redis message."""
    received: dict[str, int] = {}
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CH_ALERTS)
    all_in = asyncio.Event()

    async def listen() -> None:
        async for msg in pubsub.listen():
            at = time.time_ns()
            if msg.get("type") != "message":
                continue
            ext = str(orjson.loads(msg["data"]).get("external_id", ""))
            if stamp_of(ext, prefix) is not None:
                received[ext] = at
                if len(received) >= count:
                    all_in.set()

    reader = asyncio.create_task(listen())
    p = producer(bootstrap, linger_ms=0)
    await p.start()
    sent: dict[str, int] = {}
    started = time.monotonic()
    try:
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
            await asyncio.wait_for(all_in.wait(), settle_s)
    finally:
        await p.stop()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    lat = sorted((received[ext] - stamp) / 1e6 for ext, stamp in sent.items() if ext in received)
    return Latency(
        sent=len(sent),
        received=len(lat),
        seconds=seconds,
        p50=percentile(lat, 50),
        p95=percentile(lat, 95),
        p99=percentile(lat, 99),
        max=lat[-1] if lat else 0.0,
        mean=sum(lat) / len(lat) if lat else 0.0,
    )
