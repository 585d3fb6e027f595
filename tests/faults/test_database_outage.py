"""PostgreSQL unreachable for ``outage_s`` seconds while traffic keeps arriving.

A proxy between the worker and PostgreSQL resets every connection and refuses
new ones. During the outage no position may be committed for a record that is
not stored, the worker must stay up with bounded memory while the backlog
grows on the broker, and once PostgreSQL is back the backlog drains with
nothing lost and nothing stored twice.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from eriop.dev.stack import Broker
from tests.faults.conftest import (
    Ledger,
    Sizes,
    Workers,
    Workload,
    counts,
    drained,
    duplicate_keys,
    eventually,
    group_of,
    produce,
    produced_ends,
    snapshot,
    stream_alerts,
    timeout_for,
    uncovered,
)
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(timeout_for(240))]

#: the worker with its bulk processes
RSS_LIMIT = 500 * 2**20
#: growth allowed per process between the start and the end of the outage
#: (allocator noise, retry bookkeeping); holding the backlog would be far more
RSS_GROWTH_PER_PROCESS = 15 * 2**20
#: the alert path resumes within this long of PostgreSQL returning (its retry
#: waits are capped at about a second; the volume path may wait up to ten)
ALERT_RESUME_S = 5.0


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """Resident memory of the worker and its bulk processes, and how many there are."""
    procs = [proc, *proc.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs), len(procs)


async def test_database_outage_commits_nothing_stays_bounded_and_drains_after(
    broker: Broker,
    fresh_db: str,
    redis_url: str,
    env: dict[str, str],
    workers: Workers,
    pg_proxy: TcpProxy,
    sizes: Sizes,
    tag: str,
) -> None:
    env = {**env, "ERIOP_DATABASE_URL": pg_proxy.url(fresh_db)}
    load = Workload(tag, sizes.seed)
    ledger = Ledger()
    start = datetime.now(UTC) - timedelta(minutes=30)
    w = workers.start(env, "worker")
    await workers.healthy(w)
    assert w.proc is not None
    proc = psutil.Process(w.proc.pid)

    # before: steady traffic, all of it stored
    steady = load.mix(load.json_alerts(1_000, 0.1), load.telemetry(20_000, start=start))
    await produce(broker.bootstrap, steady, ledger)
    await eventually(
        lambda: _settled(broker.bootstrap, fresh_db, env, ledger),
        timeout=90,
        what="steady traffic stored",
    )

    # the outage: the backlog builds up on the broker
    pg_proxy.cut()
    await asyncio.sleep(1.0)  # the server notices the reset and rolls back what was in flight
    frozen = await snapshot(fresh_db)
    assert not uncovered(ledger, frozen, env)
    backlog = load.mix(
        load.json_alerts(sizes.alerts // 4, 0.1, start=100_000),
        load.telemetry(sizes.points // 2, start=start + timedelta(minutes=5)),
    )
    producing = asyncio.create_task(
        produce(broker.bootstrap, backlog, ledger, over_s=sizes.outage_s * 0.6)
    )
    rss: list[int] = []
    processes = 1
    behind: list[int] = []  # records on the broker past the committed positions
    cut_at = time.monotonic()
    while time.monotonic() - cut_at < sizes.outage_s - 1.0:
        await asyncio.sleep(1.0)
        assert w.proc.poll() is None, f"the worker exited during the outage:\n{w.log()}"
        total, processes = _tree_rss(proc)
        rss.append(total)
        behind.append(_behind(ledger, frozen.offsets, env))
        now = await snapshot(fresh_db)
        assert now.offsets == frozen.offsets, "a position moved while the database was down"
        assert (now.alerts, now.point_times) == (frozen.alerts, frozen.point_times)
    await producing
    behind.append(_behind(ledger, frozen.offsets, env))
    paused = {
        s: await workers.metric(w, "eriop_consumer_paused", stream=s) for s in ("alerts", "bulk")
    }
    health, _ = await asyncio.to_thread(w.get, "/health")
    live, _ = await asyncio.to_thread(w.get, "/livez")
    pg_proxy.restore()
    restored_at = time.monotonic()

    # the alert path's waits are capped at about a second (pipeline.retry.ALERT_PATH):
    # it resumes right after the database returns, not after a long backoff
    async def alerts_resumed() -> bool:
        return await workers.metric(w, "eriop_consumer_paused", stream="alerts") == 0

    await eventually(alerts_resumed, timeout=ALERT_RESUME_S, what="the alert path resumed")
    print(f"alert path resumed {time.monotonic() - restored_at:.1f}s after restore")

    mib = [round(r / 2**20) for r in rss]
    print(f"RSS during the outage (MiB, 1/s): {mib}")
    print(f"backlog on the broker (records, 1/s): {behind}")
    assert behind[-1] == len(backlog)
    assert paused == {"alerts": 1, "bulk": 1}, "both consumers pause while PostgreSQL is down"
    assert health == 503  # not ready: PostgreSQL is down
    assert live == 200  # but alive: an orchestrator must not restart a pausing worker
    assert max(rss) < RSS_LIMIT
    early, late = statistics.median(rss[2:7]), statistics.median(rss[-5:])
    assert late - early < RSS_GROWTH_PER_PROCESS * processes, f"memory grew: {mib}"

    # after: the backlog drains, nothing lost, nothing twice
    await eventually(
        lambda: _settled(broker.bootstrap, fresh_db, env, ledger),
        timeout=timeout_for(120),
        what="the backlog drained",
    )
    print(f"backlog of {len(backlog)} drained {time.monotonic() - restored_at:.0f}s after restore")
    snap = await snapshot(fresh_db)
    assert not uncovered(ledger, snap, env)
    assert snap.alerts == ledger.idents("alert")
    assert snap.point_times == ledger.idents("points")
    assert (await counts(fresh_db))["points"] == sum(s.expect.rows for s in ledger.of("points"))
    assert await duplicate_keys(fresh_db) == {"alerts": 0, "telemetry": 0, "location_history": 0}
    assert not ledger.idents("alert") - set(await stream_alerts(redis_url))
    await workers.balanced(w)
    assert w.proc.poll() is None


async def _settled(bootstrap: str, dsn: str, env: dict[str, str], ledger: Ledger) -> bool:
    c = await counts(dsn)
    return (
        c["alerts"] >= len(ledger.idents("alert"))
        and c["points"] >= sum(s.expect.rows for s in ledger.of("points"))
        and c["outbox"] == 0
        and not await drained(dsn, env, ledger)
    )


def _behind(ledger: Ledger, offsets: dict[tuple[str, str, int], int], env: dict[str, str]) -> int:
    return sum(
        end - offsets.get((group_of(t, env), t, p), 0)
        for (t, p), end in produced_ends(ledger).items()
    )
