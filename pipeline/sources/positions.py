"""Seek to the positions stored in PostgreSQL when partitions are assigned.

Durability does not rest on Kafka commits: every consumer (the alert
agent's and the telemetry/GPS batch consumers) keeps its positions in
``ingest_offsets``, written in the same transaction as the rows, and on every
assignment seeks to them with this one function.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from pipeline import metrics


class TopicPartitionLike(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


TP = TypeVar("TP", bound="TopicPartitionLike")
OffsetLoader = Callable[[Sequence[str]], Awaitable[dict[tuple[str, int], int]]]


async def seek_to_stored(
    assigned: Iterable[TP], load_offsets: OffsetLoader, seek: Callable[[TP, int], Any]
) -> int:
    """Seek each assigned partition that has a stored position; returns how many.

    ``seek`` may be a plain or an async function.
    """
    mine = list(assigned)
    if not mine:
        return 0
    stored = await load_offsets(sorted({tp.topic for tp in mine}))
    moved = 0
    for tp in mine:
        pos = stored.get((tp.topic, tp.partition))
        if pos is None:
            continue
        result = seek(tp, pos)
        if inspect.isawaitable(result):
            await result
        moved += 1
    return moved


class GroupAssignment:
    """What a consumer group's rebalances look like from this process, as metrics:
    partitions assigned, a rebalance in progress, and the time since the last one
    completed. A group that rejoins forever (a wedged coordinator) shows as
    rebalancing, or as nothing assigned, for as long as it lasts."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.partitions = 0
        self.rebalancing = True
        self._since = time.monotonic()
        metrics.CONSUMER_PARTITIONS.labels(group).set(0)
        metrics.CONSUMER_REBALANCING.labels(group).set(1)  # until the first assignment
        metrics.CONSUMER_REBALANCE_AGE.labels(group).set_function(self.age_s)

    def age_s(self) -> float:
        return time.monotonic() - self._since

    def revoked(self) -> None:
        self.rebalancing = True
        metrics.CONSUMER_REBALANCING.labels(self.group).set(1)

    def assigned(self, partitions: int) -> None:
        self.partitions = partitions
        self.rebalancing = False
        self._since = time.monotonic()
        metrics.CONSUMER_PARTITIONS.labels(self.group).set(partitions)
        metrics.CONSUMER_REBALANCING.labels(self.group).set(0)
