"""A batch that fails on a pipeline bug is retried record by record: only the
record that triggers the bug is given up on; outages are not."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pipeline.errors import DatabaseUnavailable
from pipeline.flows.common import isolating
from schemas.records import RawRecord


def records(n: int) -> list[RawRecord]:
    return [RawRecord("alerts.json", 0, i, 0, None, b"{}") for i in range(n)]


async def test_only_the_poison_record_is_given_up() -> None:
    stored: list[int] = []
    given_up: list[int] = []

    async def attempt(batch: Sequence[RawRecord]) -> None:
        if any(r.offset == 3 for r in batch):
            raise TypeError("bug triggered by record 3")
        stored.extend(r.offset for r in batch)

    async def give_up(record: RawRecord, exc: BaseException) -> None:
        assert isinstance(exc, TypeError)
        given_up.append(record.offset)

    await isolating(records(6), attempt, give_up)
    assert stored == [0, 1, 2, 4, 5]
    assert given_up == [3]


async def test_a_clean_batch_is_written_once() -> None:
    calls: list[int] = []

    async def attempt(batch: Sequence[RawRecord]) -> None:
        calls.append(len(batch))

    async def give_up(record: RawRecord, exc: BaseException) -> None:
        raise AssertionError("nothing to give up")

    await isolating(records(4), attempt, give_up)
    assert calls == [4]


async def test_outages_are_not_isolated_away() -> None:
    async def attempt(batch: Sequence[RawRecord]) -> None:
        raise DatabaseUnavailable("down")

    async def give_up(record: RawRecord, exc: BaseException) -> None:
        raise AssertionError("an outage must never dead-letter a record")

    with pytest.raises(DatabaseUnavailable):
        await isolating(records(3), attempt, give_up)
