"""The stress scenarios of ``eriop bench``: alert latency beside a telemetry
flood, and the worker's memory when every input is offered far more than it
can take (Kafka holds the backlog; the worker must apply backpressure, not
buffer)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg

from eriop.bench import load
from eriop.bench.flood import Flood
from eriop.bench.measure import CpuMeter, alert_latency, cores_between
from eriop.bench.scenarios import MB, Env, Plan, Result, new_group
from eriop.bench.stack import Worker, broker
from eriop.dev.stack import Broker
from eriop.simulate import seed_demo
from eriop.traffic import Fleet


async def _group_committed(dsn: str, group: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval(
            "SELECT COALESCE(sum(next_offset), 0) FROM ingest_offsets WHERE group_id = $1", group
        )
        return int(n)
    finally:
        await conn.close()


async def _committed_at_least(dsn: str, group: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _group_committed(dsn, group) >= n:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{group} did not commit {n} records in {timeout:.0f}s")


def flood_lag(env: Env) -> int:
    """The backlog the flood keeps in front of the worker: two full batches for
    each bulk process, so none of them ever waits for input."""
    s = env.settings
    return 2 * s.batch.telemetry_max_records * s.bulk.process_count(s.kafka.partitions)


@asynccontextmanager
async def _warm_worker(env: Env) -> AsyncIterator[tuple[Broker, str, str, Worker]]:
    """A fresh broker, database and worker, with alerts already flowing to Redis."""
    dsn = await env.dbs.clone()
    with broker(env.log_dir) as b:
        await env.stack(b)
        group = new_group()
        w = env.worker(b, dsn, group, f"{group}-alerts")
        try:
            await w.ready()
            warm = await alert_latency(
                b.bootstrap, env.redis_url, f"w{uuid.uuid4().hex[:8]}", rate=20, count=20,
                settle_s=60,
            )  # fmt: skip
            if warm.received < warm.sent:
                raise RuntimeError("alerts did not reach Redis during the warm-up")
            assert w.rss is not None
            w.rss.window()
            yield b, dsn, group, w
        finally:
            w.stop()
    await env.dbs.drop(dsn)


async def alerts_flow(env: Env, plan: Plan, flood_rate: float) -> Result:
    """Alert latency alone, then in ``plan.flood_runs`` runs beside a telemetry
    flood that keeps the worker's telemetry path saturated. ``flood_rate`` (the
    worker's solo rate) bounds how many messages each flood prepares.

    Every run gets a fresh broker, database and worker: the embedded broker
    keeps everything in memory and slows down as it fills, so runs on one
    broker would measure its age rather than the worker."""
    async with _warm_worker(env) as (b, _, _, w):
        env.say(f"alerts: {plan.alert_count} at {plan.alert_rate:g}/s, alone")
        alone = await alert_latency(
            b.bootstrap, env.redis_url, f"a{uuid.uuid4().hex[:8]}", rate=plan.alert_rate,
            count=plan.alert_count,
        )  # fmt: skip
        assert w.rss is not None
        rss_alone = w.rss.window()
    runs = []
    rss_flood = 0
    for i in range(plan.flood_runs):
        async with _warm_worker(env) as (b, dsn, group, w):
            env.say(
                f"alerts: flood run {i + 1} of {plan.flood_runs}, beside a telemetry flood "
                f"keeping {flood_lag(env)} messages queued"
            )
            runs.append(await _flooded(env, plan, b, dsn, group, w, flood_rate))
            assert w.rss is not None
            rss_flood = max(rss_flood, w.rss.window())
    worst = max(runs, key=lambda r: r["p99_ms"])
    return {
        "alone": alone.as_dict(),
        # the run with the highest p99 stands for the scenario; every run is in flood_runs
        "flood": worst,
        "flood_runs": runs,
        "worker_peak_rss_mb_alone": round(rss_alone / MB, 1),
        "worker_peak_rss_mb_flood": round(rss_flood / MB, 1),
    }


async def _flooded(
    env: Env, plan: Plan, b: Broker, dsn: str, group: str, w: Worker, flood_rate: float
) -> Result:
    """One flood run: a fresh flood process saturating the worker's telemetry path,
    and the plan's alerts timed beside it."""
    seconds = plan.alert_count / plan.alert_rate
    lag = flood_lag(env)
    # enough for the window, the steady start below and the backlog kept queued
    count = int(flood_rate * (seconds + 4)) + 4 * lag
    tag = uuid.uuid4().hex[:8]
    bootstrap = b.bootstrap
    flood = Flood(
        bootstrap, count=count, points=plan.points, partitions=env.partitions, prefix=f"F{tag}"
    )
    try:
        await flood.follow(dsn, f"{group}-bulk", lag)
        # the window opens once the worker has taken two full rounds of the flood:
        # its telemetry group has settled (a fresh group may rebalance once more
        # right after its first assignment) and its queue is full
        await _committed_at_least(dsn, f"{group}-bulk", 2 * lag, plan.timeout_s)
        cpu = CpuMeter([w.pid], b.process.pid if b.process else None)
        before, t0 = await _group_committed(dsn, f"{group}-bulk"), time.monotonic()
        cpu_before = cpu.read()
        yielded = w.metric("eriop_bulk_yield_seconds_total")
        flooded = await alert_latency(
            bootstrap, env.redis_url, f"f{tag}", rate=plan.alert_rate, count=plan.alert_count
        )
        cpu_after = cpu.read()
        after, t1 = await _group_committed(dsn, f"{group}-bulk"), time.monotonic()
        yielded = w.metric("eriop_bulk_yield_seconds_total") - yielded
        offered = await flood.finish()
    finally:
        await flood.kill()
    return {
        **flooded.as_dict(),
        "telemetry_offered_msgs_per_s": round(offered["sent"] / offered["seconds"]),
        "telemetry_committed_msgs_per_s": round((after - before) / (t1 - t0)),
        "telemetry_points_per_message": plan.points,
        # seconds per second the telemetry processes (together) held back for alerts
        "bulk_yield_share": round(yielded / (t1 - t0), 3),
        "cpu_cores": cores_between(cpu_before, cpu_after),
    }


async def overload_flow(env: Env, plan: Plan, tele_rate: float, gps_rate: float) -> Result:
    """Peak RSS while every input is offered ``overload_factor`` times what the
    worker can take: backlogs that would take that many windows to drain."""
    w_s, k = plan.overload_window_s, plan.overload_factor
    n_tele, n_gps = int(k * tele_rate * w_s), int(k * gps_rate * w_s)
    n_alerts = int(k * plan.alert_rate * w_s)
    fleet = Fleet.demo(vehicles=plan.vehicles, cameras=0)
    dsn = await env.dbs.clone()
    await seed_demo(dsn, fleet)
    with broker(env.log_dir) as b:
        await env.stack(b)
        now = datetime.now(UTC)
        start = now - timedelta(milliseconds=n_tele + 600_000)
        tele = load.telemetry(n_tele, plan.points, start=start, partitions=env.partitions)
        ends = await load.produce(b.bootstrap, tele)
        del tele
        fixes = load.gps(fleet, n_gps, end=now, partitions=env.partitions)
        ends |= await load.produce(b.bootstrap, fixes)
        del fixes
        tag = uuid.uuid4().hex[:8]
        alerts = (
            load.Out(
                load.ALERTS, b"eriop_bench", load.alert(tag, i, time.time_ns()), i % env.partitions
            )
            for i in range(n_alerts)
        )
        await load.produce(b.bootstrap, alerts)
        env.say(
            f"overload: backlog of {n_tele} telemetry messages, {n_gps} fixes, "
            f"{n_alerts} alerts ({k:g}x a {w_s:g}s window); worker runs {w_s:g}s"
        )
        group = new_group()
        w = env.worker(b, dsn, group, f"{group}-overload")
        try:
            await w.ready()
            bulk = f"{group}-bulk"
            await _committed_at_least(dsn, bulk, 1, plan.timeout_s)
            before, t0 = await _group_committed(dsn, bulk), time.monotonic()
            await asyncio.sleep(w_s)
            after, t1 = await _group_committed(dsn, bulk), time.monotonic()
            alerts_in = w.metric("eriop_records_consumed_total", topic=load.ALERTS)
            assert w.rss is not None
            peak = w.rss.peak
        finally:
            code, _ = w.stop()
    await env.dbs.drop(dsn)
    taken = (after - before) / (t1 - t0)
    return {
        "backlog_telemetry_messages": n_tele,
        "backlog_gps_fixes": n_gps,
        "backlog_alerts": n_alerts,
        "window_s": round(t1 - t0, 2),
        "bulk_committed_per_s": round(taken),
        "offered_over_taken": round((n_tele + n_gps) / (taken * (t1 - t0)), 1) if taken else None,
        "alerts_consumed": int(alerts_in),
        "worker_peak_rss_mb": round(peak / MB, 1),
        "worker_exit_code": code,
    }


async def broker_flow(env: Env, rate: float, windows: int = 6, window_s: float = 10.0) -> Result:
    """The embedded broker on its own: alerts timed at a bare consumer, first
    alone, then in consecutive windows while telemetry is produced at ``rate``
    messages/s with no worker consuming it. What the broker gives before any
    pipeline work, and how that changes as it fills."""
    alert_rate = 200.0
    count = int(alert_rate * window_s)
    with broker(env.log_dir) as b:
        await env.stack(b)
        tag = uuid.uuid4().hex[:8]

        async def timed(prefix: str, n: int) -> Result:
            lat = await alert_latency(
                b.bootstrap, env.redis_url, prefix, rate=alert_rate, count=n,
                settle_s=window_s, bare_partitions=env.partitions,
            )  # fmt: skip
            return lat.as_dict()

        env.say(f"broker: {count // 2} alerts alone")
        alone = await timed(f"x{tag}", count // 2)
        n_flood = int(rate * (windows * (window_s * 2.5) + 30))
        flood = Flood(b.bootstrap, count=n_flood, points=4, partitions=env.partitions, prefix=tag)
        out: list[Result] = []
        try:
            await flood.paced(rate)
            for i in range(windows):
                env.say(f"broker: window {i + 1}/{windows}, telemetry at {rate:g} msgs/s")
                out.append(await timed(f"w{i}{tag}", count))
            produced = await flood.finish()
        finally:
            await flood.kill()
    return {
        "alert_rate_per_s": alert_rate,
        "flood_msgs_per_s": rate,
        "flood_produced_msgs_per_s": round(produced["sent"] / produced["seconds"]),
        "window_s": window_s,
        "alone": alone,
        "windows": out,
    }
