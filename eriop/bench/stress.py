"""The stress scenarios of ``eriop bench``: alert latency beside a telemetry
flood, and the worker's memory when every input is offered far more than it
can take (Kafka holds the backlog; the worker must apply backpressure, not
buffer)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from eriop.bench import load
from eriop.bench.flood import Flood
from eriop.bench.measure import CpuMeter, alert_latency, cores_between
from eriop.bench.scenarios import MB, Env, Plan, Result, new_group
from eriop.bench.stack import broker
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


async def _first_commit(dsn: str, group: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _group_committed(dsn, group):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing committed by {group} in {timeout:.0f}s")


def flood_lag(env: Env) -> int:
    """The backlog the flood keeps in front of the worker: two full batches for
    each bulk process, so none of them ever waits for input."""
    s = env.settings
    return 2 * s.batch.telemetry_max_records * s.bulk.process_count(s.kafka.partitions)


async def alerts_flow(env: Env, plan: Plan, flood_rate: float) -> Result:
    """Alert latency alone, then beside a telemetry flood that keeps the worker's
    telemetry path saturated. ``flood_rate`` (the worker's solo rate) bounds how
    many messages the flood prepares."""
    dsn = await env.dbs.clone()
    with broker(env.log_dir) as b:
        await env.stack(b)
        group = new_group()
        w = env.worker(b, dsn, group, f"{group}-alerts")
        flood: Flood | None = None

        try:
            await w.ready()
            tag = uuid.uuid4().hex[:8]
            warm = await alert_latency(
                b.bootstrap, env.redis_url, f"w{tag}", rate=20, count=20, settle_s=60
            )
            if warm.received < warm.sent:
                raise RuntimeError("alerts did not reach Redis during the warm-up")
            assert w.rss is not None
            w.rss.window()
            env.say(f"alerts: {plan.alert_count} at {plan.alert_rate:g}/s, alone")
            alone = await alert_latency(
                b.bootstrap, env.redis_url, f"a{tag}", rate=plan.alert_rate, count=plan.alert_count
            )
            rss_alone = w.rss.window()
            seconds = plan.alert_count / plan.alert_rate
            lead = 2.0
            count = int(flood_rate * (seconds + 2 * lead)) + flood_lag(env)
            flood = Flood(
                b.bootstrap, count=count, points=plan.points, partitions=env.partitions,
                prefix=f"F{tag}",
            )  # fmt: skip
            await flood.follow(dsn, f"{group}-bulk", flood_lag(env))
            await asyncio.sleep(lead)
            env.say(
                f"alerts: again, beside a telemetry flood keeping {flood_lag(env)} messages queued"
            )
            cpu = CpuMeter([w.pid], b.process.pid if b.process else None)
            before, t0 = await _group_committed(dsn, f"{group}-bulk"), time.monotonic()
            cpu_before = cpu.read()
            flooded = await alert_latency(
                b.bootstrap, env.redis_url, f"f{tag}", rate=plan.alert_rate, count=plan.alert_count
            )
            cpu_after = cpu.read()
            after, t1 = await _group_committed(dsn, f"{group}-bulk"), time.monotonic()
            rss_flood = w.rss.window()
            offered = await flood.finish()
        finally:
            if flood is not None:
                await flood.kill()
            w.stop()
    return {
        "alone": alone.as_dict(),
        "flood": {
            **flooded.as_dict(),
            "telemetry_offered_msgs_per_s": round(offered["sent"] / offered["seconds"]),
            "telemetry_committed_msgs_per_s": round((after - before) / (t1 - t0)),
            "telemetry_points_per_message": plan.points,
            "cpu_cores": cores_between(cpu_before, cpu_after),
        },
        "worker_peak_rss_mb_alone": round(rss_alone / MB, 1),
        "worker_peak_rss_mb_flood": round(rss_flood / MB, 1),
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
            await _first_commit(dsn, bulk, plan.timeout_s)
            before, t0 = await _group_committed(dsn, bulk), time.monotonic()
            await asyncio.sleep(w_s)
            after, t1 = await _group_committed(dsn, bulk), time.monotonic()
            alerts_in = w.metric("eriop_records_consumed_total", topic=load.ALERTS)
            assert w.rss is not None
            peak = w.rss.peak
        finally:
            code, _ = w.stop()
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
