"""SIGKILL of the worker at random moments while alerts and telemetry stream in.

After every kill the database must hold every record whose offset it committed
(positions and rows share one transaction); at the end every alert is stored
exactly once, every telemetry point exactly once, nothing is left unconsumed,
and every stored alert is on the Redis alert stream.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from eriop.dev.stack import Broker
from tests.faults.conftest import (
    Ledger,
    Sizes,
    Workers,
    Workload,
    all_stored,
    assert_exactly_once,
    counts,
    eventually,
    produce,
    snapshot,
    timeout_for,
    unbalanced,
    uncovered,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(timeout_for(300))]


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    broker: Broker,
    fresh_db: str,
    redis_url: str,
    env: dict[str, str],
    workers: Workers,
    sizes: Sizes,
    tag: str,
) -> None:
    rnd = random.Random(sizes.seed)
    load = Workload(tag, sizes.seed)
    planned = load.mix(
        load.json_alerts(sizes.alerts, dup_ratio=0.1),
        load.alarms(max(sizes.alerts // 20, 1), dup_ratio=0.3),
        load.telemetry(sizes.points, start=datetime.now(UTC) - timedelta(minutes=30)),
    )
    ledger = Ledger()
    # traffic keeps arriving through the kill phase (a restart after a kill takes
    # about 15 s on the embedded broker: the dead member's session has to expire),
    # so that every kill hits work in progress on both paths
    producing = asyncio.create_task(
        produce(broker.bootstrap, planned, ledger, over_s=max(sizes.soak_s, sizes.kills * 16.0))
    )
    kills: list[str] = []
    began = time.monotonic()
    try:
        for i in range(sizes.kills):
            w = workers.start(env, f"run{i}")
            await workers.healthy(w)
            before = await counts(fresh_db)

            async def working(before: dict[str, int] = before) -> bool:
                # both paths store in this run, or have nothing left to store
                now = await counts(fresh_db)
                produced = (
                    len(ledger.idents("alert")),
                    sum(s.expect.rows for s in ledger.of("points")),
                )
                alerts = now["alerts"] > before["alerts"] or now["alerts"] >= produced[0]
                points = now["points"] > before["points"] or now["points"] >= produced[1]
                return alerts and points

            await eventually(working, timeout=60, what=f"run {i} storing records")
            await asyncio.sleep(rnd.uniform(0.0, 2.5))
            w.kill()
            at = await counts(fresh_db)
            problems = uncovered(ledger, await snapshot(fresh_db), env)
            assert not problems, (
                f"kill {i}: positions committed past unstored records: {problems[:10]}"
            )
            kills.append(f"kill {i} at {time.monotonic() - began:.0f}s: {at}")
    except BaseException:
        producing.cancel()
        raise
    await producing
    print("\n".join(kills))

    final = workers.start(env, "final")
    await workers.healthy(final)
    # traffic for the run that is never killed, so its counters have something to balance
    tail = load.mix(
        load.json_alerts(200, dup_ratio=0.1, start=10 * sizes.alerts),
        load.telemetry(4_000, start=datetime.now(UTC) - timedelta(minutes=5)),
    )
    await produce(broker.bootstrap, tail, ledger)
    await eventually(
        lambda: all_stored(fresh_db, env, ledger),
        timeout=timeout_for(180),
        what="the backlog drained",
    )
    print(f"kill phase and drain took {time.monotonic() - began:.0f}s")
    repeats = await assert_exactly_once(fresh_db, redis_url, env, ledger)
    print(f"{repeats} alerts repeated on the stream")

    # the run that was never killed has complete counters
    acc = await workers.balanced(final)
    assert not unbalanced(acc)
    assert acc["alerts.json"]["consumed"] > 0
    assert acc["telemetry.raw"]["consumed"] > 0
