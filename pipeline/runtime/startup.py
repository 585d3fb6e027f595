"""Start-up of every ERIOP process: waiting for dependencies, settling the collector."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pipeline import metrics
from pipeline.clients.kafka import ALERT_TOPICS, BULK_TOPICS
from pipeline.errors import ERROR_CODES, ConfigError, EriopError
from pipeline.retry import CONNECT

T = TypeVar("T")

#: Young-generation collections run per this many container allocations (the
#: interpreter's default is 700). A telemetry batch allocates a few hundred
#: thousand short-lived dicts and tuples that reference counting frees; at the
#: default, the collector ran hundreds of times per batch and walked the batch
#: in hand each time, about a third of the decode time.
GC_YOUNG_THRESHOLD = 50_000


def collection_paused(
    handle: Callable[[Sequence[T]], Awaitable[None]],
) -> Callable[[Sequence[T]], Awaitable[None]]:
    """``handle`` with automatic garbage collection paused while a batch is in hand.

    A volume batch holds about fifteen container objects per record until it
    is stored; a young-generation collection in the middle of it walks tens of
    thousands of them and frees none (reference counting frees them once the
    batch is done). Those collections took about 1 µs of CPU per GPS fix
    (docs/benchmarks.md). Paused, the collector runs between batches, as
    :func:`settle_gc` set it, over what is left; cyclic garbage made during a
    batch is collected then.
    """

    async def paused(batch: Sequence[T]) -> None:
        if not gc.isenabled():
            return await handle(batch)
        gc.disable()
        try:
            return await handle(batch)
        finally:
            gc.enable()

    return paused


def settle_gc() -> None:
    """Once started: what was built until now (modules, clients, caches) is left
    out of every later collection, and young collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


async def wait_for(
    what: str,
    attempt: Callable[[], Awaitable[Any]],
    *,
    deadline_s: float | None,
    say: Callable[[str], None],
) -> Any:
    """Retry a start-up step with backoff, saying plainly what is awaited."""
    backoff = CONNECT.backoff()
    started = time.monotonic()
    while True:
        try:
            return await attempt()
        except ConfigError:
            raise  # waiting does not fix a wrong setting
        except EriopError as exc:
            waited = time.monotonic() - started
            if deadline_s is not None and waited >= deadline_s:
                raise
            delay = backoff.next_delay()
            say(f"waiting for {what}: {exc.reason} (retrying in {delay:.1f}s)")
            await asyncio.sleep(delay)


def initialize_metrics(role: str, partitions: int) -> None:
    """Every core series of a process of ``role`` at 0 from start (metrics.initialize)."""
    topics: list[str] = []
    streams: list[str] = []
    tables: list[str] = []
    if role != "bulk":
        topics += ALERT_TOPICS
        streams.append("alerts")
        tables += ["alerts", "telemetry"]
    if role != "alerts":
        topics += BULK_TOPICS
        streams += ["telemetry", "gps"]
        tables += ["telemetry", "location_history"]
    metrics.initialize(
        topics=topics,
        streams=streams,
        tables=tables,
        dead_letter_codes=[(stage or "decode", code) for code, stage in ERROR_CODES.items()],
        partitions=partitions,
    )
