"""A telemetry flood for ``eriop bench``, in a process of its own.

The flood runs beside the alert latency measurement; in its own process it
does not delay the benchmark's Redis subscriber, which would inflate the
latencies it reports. It builds its messages first, says ``ready``, and then
produces in one of two ways:

- following a worker, "as fast as the pipeline can take it": it keeps the
  worker's backlog at ``MAX_LAG`` messages, reading how far the worker has
  committed from ``ingest_offsets``. The pipeline never runs dry, while the
  flood spends no CPU building a backlog the worker could never reach (an
  open-loop producer at the worker's solo rate takes from the worker the very
  CPU it needs, and so measures the producer);
- at a fixed rate, for measuring the broker with no worker at all.

On SIGTERM, or when its messages run out, it prints what it sent as one JSON line.

    python -m eriop.bench.flood BOOTSTRAP COUNT POINTS PARTITIONS PREFIX follow DSN GROUP MAX_LAG
    python -m eriop.bench.flood BOOTSTRAP COUNT POINTS PARTITIONS PREFIX rate RATE
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from eriop.bench.load import TELEMETRY, Out, producer, telemetry

_stopping = False


def _stop(_signum: int, _frame: object) -> None:
    global _stopping
    _stopping = True


_COMMITTED = """
SELECT COALESCE(sum(next_offset), 0) FROM ingest_offsets WHERE group_id = $1 AND topic = $2"""


async def _produce(
    bootstrap: str, messages: list[Out], allowed: Callable[[], Awaitable[int]], tick_s: float
) -> tuple[int, float]:
    """Produce up to ``allowed()`` messages in all, asking again every tick; (sent, seconds)."""
    p = producer(bootstrap, linger_ms=2)
    await p.start()
    sent = 0
    started = time.monotonic()
    try:
        while sent < len(messages) and not _stopping:
            upto = min(await allowed(), len(messages))
            for m in messages[sent:upto]:
                await p.send(m.topic, m.value, key=m.key, partition=m.partition)
            sent = max(sent, upto)
            await asyncio.sleep(tick_s)
        await p.flush()
    finally:
        await p.stop()
    return sent, time.monotonic() - started


async def follow(
    bootstrap: str, dsn: str, group: str, messages: list[Out], max_lag: int
) -> tuple[int, float]:
    """Keep the group's uncommitted backlog at ``max_lag`` messages; (sent, seconds)."""
    conn = await asyncpg.connect(dsn)

    async def allowed() -> int:
        return int(await conn.fetchval(_COMMITTED, group, TELEMETRY)) + max_lag

    try:
        return await _produce(bootstrap, messages, allowed, tick_s=0.02)
    finally:
        await conn.close()


async def paced(bootstrap: str, messages: list[Out], rate: float) -> tuple[int, float]:
    """Produce at ``rate`` messages/s; (sent, seconds)."""
    started = time.monotonic()

    async def allowed() -> int:
        return int(rate * (time.monotonic() - started)) + 1

    return await _produce(bootstrap, messages, allowed, tick_s=0.01)


def main(argv: list[str]) -> int:
    bootstrap, count, points, partitions, prefix, mode, *how = argv
    signal.signal(signal.SIGTERM, _stop)
    n = int(count)
    msgs = telemetry(
        n,
        int(points),
        # spread over the past, so no point is in the future when it is decoded
        start=datetime.now(UTC) - timedelta(milliseconds=n + 120_000),
        partitions=int(partitions),
        prefix=prefix,
    )
    print("ready", flush=True)
    if mode == "follow":
        dsn, group, max_lag = how
        sent, seconds = asyncio.run(follow(bootstrap, dsn, group, msgs, int(max_lag)))
    else:
        sent, seconds = asyncio.run(paced(bootstrap, msgs, float(how[0])))
    print(json.dumps({"sent": sent, "seconds": seconds}), flush=True)
    return 0


class Flood:
    """The parent's handle on a flood process."""

    def __init__(
        self, bootstrap: str, *, count: int, points: int, partitions: int, prefix: str
    ) -> None:
        self._args = [bootstrap, str(count), str(points), str(partitions), prefix]
        self._proc: asyncio.subprocess.Process | None = None

    async def _line(self, timeout: float) -> str:
        assert self._proc is not None
        assert self._proc.stdout is not None
        raw = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        return raw.decode().strip()

    async def follow(self, dsn: str, group: str, max_lag: int) -> None:
        """Start it, keeping ``group``'s backlog at ``max_lag`` messages."""
        await self._start("follow", dsn, group, str(max_lag))

    async def paced(self, rate: float) -> None:
        """Start it at a fixed ``rate`` of messages per second."""
        await self._start("rate", f"{rate:.1f}")

    async def _start(self, *mode: str, timeout: float = 120.0) -> None:
        """Start it and wait until its messages are built and it begins producing."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "eriop.bench.flood", *self._args, *mode,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        line = await self._line(timeout)
        if line != "ready":
            raise RuntimeError(f"telemetry flood failed to start: {line!r}")

    async def finish(self, timeout: float = 60.0) -> dict[str, float]:
        """Stop it; how many messages it sent and in how many seconds."""
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
        data: dict[str, float] = json.loads(await self._line(timeout))
        await asyncio.wait_for(self._proc.wait(), 30)
        return data

    async def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
