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
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.devstack import Broker
from tests.faults.conftest import (
    Ledger,
    Sizes,
    Workers,
    Workload,
    counts,
    drained,
    duplicate_keys,
    eventually,
    produce,
    snapshot,
    stream_alerts,
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
    alerts = ledger.idents("alert")
    point_messages = ledger.of("points")
    expected_points = sum(s.expect.rows for s in point_messages)

    async def complete() -> bool:
        c = await counts(fresh_db)
        return (
            c["alerts"] >= len(alerts)
            and c["points"] >= expected_points
            and c["outbox"] == 0
            and not await drained(fresh_db, env, ledger)
        )

    await eventually(complete, timeout=timeout_for(180), what="the backlog drained")
    print(f"kill phase and drain took {time.monotonic() - began:.0f}s")

    snap = await snapshot(fresh_db)
    assert not uncovered(ledger, snap, env)
    assert snap.alerts == alerts, (
        f"missing {len(alerts - snap.alerts)}, unexpected {len(snap.alerts - alerts)}"
    )
    assert len(snap.point_times) == len(point_messages)
    c = await counts(fresh_db)
    assert c["points"] == expected_points
    assert await duplicate_keys(fresh_db) == {"alerts": 0, "telemetry": 0, "location_history": 0}

    on_stream = await stream_alerts(redis_url)
    assert not alerts - set(on_stream), (
        f"{len(alerts - set(on_stream))} stored alerts not on the stream"
    )
    repeats = sum(n - 1 for n in Counter(on_stream).values() if n > 1)
    print(f"stream entries {len(on_stream)} for {len(alerts)} alerts ({repeats} repeated)")

    # the run that was never killed has complete counters
    acc = await workers.balanced(final)
    assert not unbalanced(acc)
