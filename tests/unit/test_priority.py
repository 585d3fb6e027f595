"""Alerts first: the shared cell between the alert path and the volume path,
and how long the volume path holds back."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline import metrics
from pipeline.priority import PriorityFlag, Yielder


def write_cell(fd: int, value: int) -> None:
    os.pwrite(fd, struct.pack("=Q", value), 0)


@pytest.fixture
def flag() -> Iterator[PriorityFlag]:
    f = PriorityFlag.create()
    yield f
    f.close()


def test_a_hold_is_seen_through_another_mapping_of_the_cell(flag: PriorityFlag) -> None:
    # a telemetry/GPS process maps the descriptor it inherited
    other = PriorityFlag.for_role(True, os.dup(flag.fd))
    assert other is not None
    try:
        assert other.held_since_ns() == 0
        before = time.monotonic_ns()
        flag.hold()
        assert before <= other.held_since_ns() <= time.monotonic_ns()
        flag.release()
        assert other.held_since_ns() == 0
    finally:
        other.close()
    flag.hold()  # the worker's own mapping outlives the child's
    assert flag.held_since_ns() != 0


def test_holds_nest_and_each_renews_the_time(flag: PriorityFlag) -> None:
    flag.hold()
    first = flag.held_since_ns()
    flag.hold()
    # a busy alert path keeps the time fresh; only a stuck one leaves it old
    assert flag.held_since_ns() >= first
    flag.release()
    assert flag.held_since_ns() != 0
    flag.release()
    assert flag.held_since_ns() == 0
    flag.release()  # an extra release never goes below idle
    flag.hold()
    assert flag.held_since_ns() != 0


def test_the_cell_leaves_no_file_behind() -> None:
    # unnamed from the start: a SIGKILLed worker leaves nothing in /dev/shm
    f = PriorityFlag.create()
    try:
        assert os.readlink(f"/proc/self/fd/{f.fd}").endswith("(deleted)")
    finally:
        f.close()


def test_a_child_without_a_worker_has_no_cell() -> None:
    assert PriorityFlag.for_role(True, -1) is None


async def test_the_volume_path_waits_until_the_alerts_are_done(flag: PriorityFlag) -> None:
    gate = Yielder(flag, max_wait_s=30, poll_s=0.001)
    flag.hold()
    waiting = asyncio.create_task(gate.wait())
    # many poll rounds pass while the alerts are held
    for _ in range(20):
        await asyncio.sleep(0.001)
        assert not waiting.done()
    flag.release()
    await asyncio.wait_for(waiting, 5)


async def test_it_returns_at_once_when_no_alert_is_in_hand(flag: PriorityFlag) -> None:
    gate = Yielder(flag, max_wait_s=30)
    before = metrics.BULK_YIELD_SECONDS._value.get()
    await asyncio.wait_for(gate.wait(), 0.5)
    assert metrics.BULK_YIELD_SECONDS._value.get() == before


async def test_the_wait_is_bounded_and_counted(flag: PriorityFlag) -> None:
    gate = Yielder(flag, max_wait_s=0.02, poll_s=0.001)
    before = metrics.BULK_YIELD_SECONDS._value.get()
    flag.hold()
    started = time.monotonic()
    await asyncio.wait_for(gate.wait(), 5)
    assert flag.held_since_ns() != 0  # still held: the bound ended the wait
    assert time.monotonic() - started >= 0.02
    assert metrics.BULK_YIELD_SECONDS._value.get() - before >= 0.02


async def test_a_stale_hold_is_ignored(flag: PriorityFlag) -> None:
    # an alert path stuck behind an outage for longer than stale_s
    old = time.monotonic_ns() - 5_000_000_000
    write_cell(flag.fd, old)
    assert flag.held_since_ns() == old
    gate = Yielder(flag, max_wait_s=30, stale_s=1.0)
    await asyncio.wait_for(gate.wait(), 0.5)


async def test_a_zero_bound_turns_yielding_off(flag: PriorityFlag) -> None:
    flag.hold()
    await asyncio.wait_for(Yielder(flag, max_wait_s=0).wait(), 0.5)
    await asyncio.wait_for(Yielder(None).wait(), 0.5)


async def test_an_alert_storm_takes_at_most_its_share_of_each_second(
    flag: PriorityFlag,
) -> None:
    gate = Yielder(flag, max_wait_s=30, max_share=0.02, poll_s=0.001)
    flag.hold()
    started = time.monotonic()
    await asyncio.wait_for(gate.wait(), 5)
    assert time.monotonic() - started >= 0.02
    # the 20 ms of this second are used up: the volume path goes on (without the
    # share it would wait its 30 s)
    await asyncio.wait_for(gate.wait(), 1)
    assert flag.held_since_ns() != 0


def test_the_blocking_look_sleeps_until_the_alerts_are_done(flag: PriorityFlag) -> None:
    # the alert path is another process; a thread stands in for it here
    other = PriorityFlag.for_role(True, os.dup(flag.fd))
    assert other is not None
    gate = Yielder(other, max_wait_s=30, poll_s=0.001)
    flag.hold()
    release = threading.Timer(0.05, flag.release)
    started = time.monotonic()
    release.start()
    try:
        gate.wait_blocking()
    finally:
        release.join()
        other.close()
    assert time.monotonic() - started >= 0.05
    assert flag.held_since_ns() == 0


def test_the_blocking_look_has_the_same_bounds(flag: PriorityFlag) -> None:
    gate = Yielder(flag, max_wait_s=30, max_share=0.02, poll_s=0.001)
    flag.hold()
    started = time.monotonic()
    gate.wait_blocking()  # without the share this would sleep 30 s
    assert 0.02 <= time.monotonic() - started < 5
    gate.wait_blocking()  # this second's share is used up
    assert time.monotonic() - started < 5
    assert flag.held_since_ns() != 0
    Yielder(None).wait_blocking()
