"""The volume path's batches run with automatic garbage collection paused."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator, Sequence

import pytest

from pipeline.runtime.startup import collection_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


async def test_the_collector_is_off_while_a_batch_is_handled_and_on_after() -> None:
    seen: list[bool] = []

    async def handle(batch: Sequence[int]) -> None:
        seen.append(gc.isenabled())
        await asyncio.sleep(0)  # other tasks may run meanwhile; still paused
        seen.append(gc.isenabled())

    gc.enable()
    await collection_paused(handle)([1, 2, 3])
    assert seen == [False, False]
    assert gc.isenabled()


async def test_the_collector_comes_back_when_the_batch_fails() -> None:
    async def handle(batch: Sequence[int]) -> None:
        raise RuntimeError("boom")

    gc.enable()
    with pytest.raises(RuntimeError, match="boom"):
        await collection_paused(handle)([1])
    assert gc.isenabled()


async def test_a_collector_that_was_off_stays_off() -> None:
    seen: list[bool] = []

    async def handle(batch: Sequence[int]) -> None:
        seen.append(gc.isenabled())

    gc.disable()
    await collection_paused(handle)([1])
    assert seen == [False]
    assert not gc.isenabled()


async def test_a_batch_allocating_past_the_young_threshold_triggers_no_collection() -> None:
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    async def handle(batch: Sequence[int]) -> None:
        # far more live containers than the young generation's threshold
        held = [{"i": i} for i in range(gc.get_threshold()[0] * 3)]
        assert held

    gc.enable()
    gc.callbacks.append(count)
    try:
        await collection_paused(handle)([1])
    finally:
        gc.callbacks.remove(count)
    assert collections == []
