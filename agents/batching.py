"""Alert batches without an idle tick.

Faust's ``Stream.take_events(max, within)`` wakes every ``within`` seconds
whether or not anything arrived; at the alert path's 2 ms that is 500 wake-ups
a second of an idle worker. :func:`take_batches` waits for the first event
without a timeout, then lingers ``within`` for more (or until ``max_`` are
in), so an idle alert path sleeps. Otherwise it follows ``take_events``: the
events are buffered by a stream processor, acknowledged once the batch was
handled, and at most ``max_`` are handed over at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from faust.streams import Stream
from faust.types import EventT
from mode.utils.futures import notify
from mode.utils.locks import Event

from pipeline.priority import PriorityFlag


async def take_batches(
    stream: Stream[Any], max_: int, within: float, held: PriorityFlag | None = None
) -> AsyncIterator[list[EventT[Any]]]:
    """Batches of at most ``max_`` events; ``held`` is held from the first event
    of a batch until the batch was handled, so the volume path gives way from
    the moment an alert is in the worker's hands."""
    events: list[EventT[Any]] = []
    first = Event()
    full = Event()
    consumed = Event()
    consuming: asyncio.Future[None] | None = None

    async def add(value: Any) -> Any:
        nonlocal consuming
        if consuming is not None:
            # the batch in hand is being handled: wait, so it does not grow
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("an event arrived without current_event")
        if not events and held is not None:
            held.hold()
        events.append(event)
        first.set()
        if len(events) >= max_:
            full.set()
            consumed.clear()
            await stream.wait(consumed)
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # acknowledged below, once handled
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))  # type: ignore[arg-type]
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(first)
            await stream.wait_for_stopped(full, timeout=within)
            if not events:
                continue
            consuming = asyncio.get_running_loop().create_future()
            try:
                yield list(events)
            finally:
                for event in events:
                    await stream.ack(event)
                events.clear()
                if held is not None:
                    held.release()
                notify(consuming)
                first.clear()
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add)
