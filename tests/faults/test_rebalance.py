"""Workers joining and leaving the consumer groups while traffic flows (rebalances).

Alerts (with duplicate deliveries and backup-path copies) and telemetry stream
in at a steady rate. Meanwhile a second worker joins both consumer groups, takes
over part of the partitions and consumes, then stops with SIGTERM (its
partitions go back to the first worker: the alert group's at once, as it
leaves; the volume group's once its static members' sessions time out); a
third joins, consumes and is SIGKILLed (it never leaves: its partitions stay
with a dead member until the session timeout evicts it). Each worker that took part must
have consumed on both paths beside the first one, or the test proves nothing;
traffic keeps arriving until after the last departure.

At the end nothing is lost and nothing is stored twice: every alert and every
telemetry point exactly once, every partition drained, positions never ahead of
the rows they cover, nothing dead-lettered, every stored alert on the Redis
alert stream, and the first worker's accounting balances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from eriop.dev.stack import Broker
from eriop.workerproc import WorkerProcess
from pipeline.clients.kafka import ALERT_TOPICS, BULK_TOPICS
from pipeline.runtime.metrics_merge import metric_sum
from tests.faults.conftest import (
    Ledger,
    Sizes,
    Workers,
    Workload,
    all_stored,
    assert_exactly_once,
    dead_letters,
    eventually,
    produce,
    snapshot,
    timeout_for,
    uncovered,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(timeout_for(240))]

#: partitions of every topic (the worker creates them with its default)
PARTITIONS = 4
#: traffic keeps arriving for at least this long, and until the last worker left
TRAFFIC_S = 45.0
#: traffic of one slice, produced evenly over SLICE_S seconds
SLICE_S = 5.0
SLICE_ALERTS = 350
SLICE_ALARMS = 35
SLICE_POINTS = 5_000

Consumed = tuple[float, float]


async def test_workers_joining_and_leaving_mid_run_lose_and_duplicate_nothing(
    broker: Broker,
    fresh_db: str,
    redis_url: str,
    env: dict[str, str],
    workers: Workers,
    sizes: Sizes,
    tag: str,
) -> None:
    load = Workload(tag, sizes.seed)
    ledger = Ledger()
    first = workers.start(env, "first")
    await workers.healthy(first)
    began = time.monotonic()
    departed = asyncio.Event()
    producing = asyncio.create_task(
        _traffic(
            broker.bootstrap, load, ledger, until=departed, at_least_s=max(sizes.soak_s, TRAFFIC_S)
        )
    )
    timeline: list[str] = []

    def note(what: str) -> None:
        timeline.append(f"{time.monotonic() - began:5.1f}s {what}")

    seen: dict[str, Consumed] = {}
    try:
        await eventually(
            lambda: _consuming_both(workers, first), timeout=60, what="the first worker consuming"
        )
        note("first worker consuming on both paths")

        joins = workers.start(env, "joins-then-stops")
        seen["joins-then-stops"] = await _join(workers, joins, first, note)
        assert not producing.done(), "traffic ended before the second worker left"
        code, took = await asyncio.to_thread(joins.stop)
        note(f"second worker stopped with SIGTERM (exit {code}, {took:.1f}s)")
        assert code == 0, joins.log()
        assert not uncovered(ledger, await snapshot(fresh_db), env)
        await eventually(
            lambda: _holds_every_partition(workers, first, env),
            timeout=60,
            what="the first worker holding every partition again",
        )
        note("first worker holds every partition again")

        dies = workers.start(env, "joins-then-dies")
        seen["joins-then-dies"] = await _join(workers, dies, first, note)
        assert not producing.done(), "traffic ended before the third worker died"
        dies.kill()
        departed.set()
        note("third worker SIGKILLed")
        assert not uncovered(ledger, await snapshot(fresh_db), env)
    except BaseException:
        producing.cancel()
        print("\n".join(timeline))
        raise
    await producing
    note("traffic ended")

    await eventually(
        lambda: all_stored(fresh_db, env, ledger),
        timeout=timeout_for(90),
        what="the first worker draining",
    )
    note("drained")
    print("\n".join(timeline))

    # every worker that joined did work on both paths before it left
    for name, (on_alerts, on_bulk) in seen.items():
        assert on_alerts > 0, f"{name} consumed no alert records"
        assert on_bulk > 0, f"{name} consumed no telemetry records"

    repeats = await assert_exactly_once(fresh_db, redis_url, env, ledger)
    assert await dead_letters(broker.bootstrap) == []

    acc = await workers.balanced(first)
    mine = _consumed(acc)
    total = sum(mine) + sum(sum(c) for c in seen.values())
    print(
        f"consumed: first {mine}, others {seen}; {total - len(ledger.sent):.0f} of "
        f"{len(ledger.sent)} records consumed again after a rebalance; "
        f"{repeats} alerts repeated on the stream"
    )
    assert first.proc is not None
    assert first.proc.poll() is None, first.log()


async def _traffic(
    bootstrap: str, load: Workload, ledger: Ledger, *, until: asyncio.Event, at_least_s: float
) -> None:
    """Alerts (10% delivered twice, alarms 30% over a backup path) and telemetry at
    a steady rate, for ``at_least_s`` and until ``until`` is set plus two slices."""
    # in the past, and the last point still half an hour before the end
    base = datetime.now(UTC) - timedelta(seconds=at_least_s + 1800)
    began = time.monotonic()
    i = after = 0
    while after < 2 or time.monotonic() - began < at_least_s:
        part = load.mix(
            load.json_alerts(SLICE_ALERTS, 0.1, start=i * SLICE_ALERTS),
            load.alarms(SLICE_ALARMS, 0.3, start=i * SLICE_ALARMS),
            load.telemetry(SLICE_POINTS, start=base + timedelta(seconds=i * SLICE_S)),
        )
        await produce(bootstrap, part, ledger, over_s=SLICE_S)
        i += 1
        after += until.is_set()


async def _join(
    workers: Workers, new: WorkerProcess, first: WorkerProcess, note: Callable[[str], None]
) -> Consumed:
    """Wait until ``new`` consumes on both paths while ``first`` still does too;
    returns what ``new`` has consumed by then."""
    await workers.healthy(new)
    note(f"{new.log_path.stem} healthy")
    await eventually(
        lambda: _consuming_both(workers, new), timeout=60, what=f"{new.log_path.stem} consuming"
    )
    at_join = _consumed(await workers.accounting(first))
    note(f"{new.log_path.stem} consuming on both paths")

    async def first_continues() -> bool:
        now = _consumed(await workers.accounting(first))
        return now[0] > at_join[0] and now[1] > at_join[1]

    await eventually(
        first_continues, timeout=30, what="the first worker consuming beside the new one"
    )
    note("both consuming")
    return _consumed(await workers.accounting(new))


async def _holds_every_partition(workers: Workers, w: WorkerProcess, env: dict[str, str]) -> bool:
    """The departed worker's partitions went back to ``w``: of the alert group at once
    (it left), of the volume group once its static members' sessions timed out."""
    page = await workers.page(w)
    groups = (
        (env["ERIOP_KAFKA__ALERTS_GROUP"], len(ALERT_TOPICS)),
        (env["ERIOP_KAFKA__BULK_GROUP"], len(BULK_TOPICS)),
    )
    return all(
        metric_sum(page, "eriop_consumer_partitions_assigned", group=group) == topics * PARTITIONS
        for group, topics in groups
    )


async def _consuming_both(workers: Workers, w: WorkerProcess) -> bool:
    on_alerts, on_bulk = _consumed(await workers.accounting(w))
    return on_alerts > 0 and on_bulk > 0


def _consumed(acc: dict[str, dict[str, float]]) -> Consumed:
    """Records consumed on the alert topics and on the bulk topics."""
    return (
        sum(a["consumed"] for t, a in acc.items() if t in ALERT_TOPICS),
        sum(a["consumed"] for t, a in acc.items() if t in BULK_TOPICS),
    )
