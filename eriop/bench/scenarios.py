"""The throughput scenarios of ``eriop bench``, and what every scenario shares.
Each starts from an empty broker, a fresh database cloned from the migrated
template and a flushed Redis database.

Throughput is measured on a load produced in full before the worker starts,
so it is the pipeline's consume-and-store rate, not the producer's rate.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eriop.bench import load
from eriop.bench.measure import (
    CpuMeter,
    Progress,
    count_rows,
    fetch_rows,
    raw_copy,
    watch_commits,
)
from eriop.bench.profile import Sampler, bulk_children, summarize
from eriop.bench.stack import Databases, Worker, broker, flush_redis, worker_env
from eriop.dev.stack import Broker
from eriop.simulate import seed_demo
from eriop.traffic import Fleet
from pipeline.clients.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.sinks.postgres.timeseries import LOCATION_COLUMNS, TELEMETRY_COLUMNS

MB = 1_000_000
Result = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    telemetry_messages: int
    points: int
    gps_fixes: int
    vehicles: int
    alert_rate: float
    alert_count: int
    overload_factor: float
    overload_window_s: float
    timeout_s: float
    #: end-to-end and raw COPY pairs per throughput scenario
    trials: int = 1
    #: consecutive flood runs of the alert latency scenario, each reported
    flood_runs: int = 1


@dataclass
class Env:
    settings: Settings
    dbs: Databases
    redis_url: str
    log_dir: Path
    say: Callable[[str], None]
    #: with ``eriop bench --profile``: where py-spy's stacks of the drains go
    profile_dir: Path | None = None
    #: with ``--native``: py-spy samples native frames too
    native: bool = False

    async def stack(self, b: Broker) -> None:
        flush_redis(self.redis_url)
        await ensure_topics(self.settings.model_copy(update={"kafka_bootstrap": b.bootstrap}))

    def worker(self, b: Broker, dsn: str, group: str, name: str) -> Worker:
        env = worker_env(b.bootstrap, dsn, self.redis_url, group)
        return Worker(env, self.log_dir, name).start()

    @property
    def partitions(self) -> int:
        return self.settings.kafka.partitions


def new_group() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


async def _drain(
    env: Env,
    b: Broker,
    dsn: str,
    ends: dict[tuple[str, int], int],
    workers: int,
    timeout: float,
    profile: str | None = None,
) -> tuple[Progress, list[Worker], list[float]]:
    """Start ``workers`` workers in one group and wait until the load is committed
    (sampled by py-spy from the first commit on, under ``profile``'s name)."""
    await env.dbs.checkpoint()
    group = new_group()
    ws = [env.worker(b, dsn, group, f"{group}-{i}") for i in range(workers)]
    sampler = (
        Sampler(env.profile_dir, profile, native=env.native)
        if env.profile_dir and profile
        else None
    )

    def first_commit() -> None:
        if sampler is not None:
            sampler.attach([pid for w in ws for pid in bulk_children(w.pid)])

    try:
        cpu = CpuMeter([w.pid for w in ws], b.process.pid if b.process else None)
        progress = await watch_commits(
            dsn, f"{group}-bulk", ends, timeout=timeout, cpu=cpu, on_first=first_commit
        )
        shares = [w.metric("eriop_records_consumed_total", topic=load.TELEMETRY) for w in ws]
    except BaseException:
        for w in ws:
            w.stop()
        raise
    finally:
        if sampler is not None:
            sampler.finish()
            assert env.profile_dir is not None
            text = summarize(sampler.files)
            (env.profile_dir / f"{profile}.txt").write_text(text, encoding="utf-8")
    return progress, ws, shares


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The raw COPY of the rows the worker stored: how many, how long, and
    PostgreSQL's CPU seconds meanwhile."""

    rows: int
    seconds: float
    postgres_s: float


async def _ceiling(
    env: Env, src: str, dst: str, table: str, columns: Sequence[str], expected: int
) -> Ceiling:
    rows = await fetch_rows(src, table, columns)
    if len(rows) != expected:
        raise RuntimeError(f"{table}: the worker stored {len(rows)} rows, expected {expected}")
    await env.dbs.checkpoint()
    seconds, postgres_s = await raw_copy(dst, table, columns, rows)
    if await count_rows(dst, table) != expected:
        raise RuntimeError(f"{table}: the raw COPY did not store every row")
    return Ceiling(len(rows), seconds, postgres_s)


def _throughput(progress: Progress, per_record: int, ceiling_run: Ceiling) -> Result:
    e2e = progress.rate * per_record
    rows, copy_s = ceiling_run.rows, ceiling_run.seconds
    ceiling = rows / copy_s
    return {
        "mode": "pre-produced backlog; consume-and-store rate between first and last commit",
        "records": progress.records,
        "rows": rows,
        "e2e_rows_per_s": round(e2e),
        "e2e_window_s": round(progress.steady_s, 3),
        "e2e_first_to_last_commit_incl_startup_s": round(progress.total_s, 3),
        "copy_rows_per_s": round(ceiling),
        "copy_s": round(copy_s, 3),
        "ratio": round(e2e / ceiling, 3),
        **cpu_cost(progress, e2e),
        # PostgreSQL's own cost of the bare rows: the rest of its CPU per row
        # above is the pipeline's other statements
        "copy_postgres_us_per_row": round(ceiling_run.postgres_s / rows * 1e6, 1),
    }


def cpu_cost(progress: Progress, rows_per_s: float) -> Result:
    """Cores each part of the stack kept busy, and its CPU microseconds per row."""
    if not progress.cpu or rows_per_s <= 0:
        return {}
    per_row = {k: round(v / rows_per_s * 1e6, 1) for k, v in progress.cpu.items() if k != "all"}
    pg = per_row.get("postgres", 0.0)
    return {
        "cpu_cores": progress.cpu,
        "cpu_us_per_row": per_row,
        # one worker core keeps up with one database core when this is at most 1
        "worker_over_postgres": round(per_row.get("worker", 0.0) / pg, 2) if pg > 0 else None,
    }


async def _telemetry_backlog(env: Env, b: Broker, plan: Plan) -> dict[tuple[str, int], int]:
    """The plan's telemetry, produced in full; the end offset of every partition."""
    start = datetime.now(UTC) - timedelta(milliseconds=plan.telemetry_messages + 600_000)
    msgs = load.telemetry(
        plan.telemetry_messages, plan.points, start=start, partitions=env.partitions
    )
    return await load.produce(b.bootstrap, msgs)


async def trials(flow: Callable[[Env, Plan], Awaitable[Result]], env: Env, plan: Plan) -> Result:
    """``flow`` run ``plan.trials`` times, each an end-to-end run and its raw COPY
    back to back; the trial with the median ratio, with every trial's numbers."""
    runs = []
    for i in range(plan.trials):
        if plan.trials > 1:
            env.say(f"trial {i + 1} of {plan.trials}")
        runs.append(await flow(env, plan))
    median = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]
    if len(runs) == 1:
        return median
    keys = (
        "e2e_rows_per_s", "copy_rows_per_s", "ratio", "cpu_us_per_row", "worker_over_postgres",
        "copy_postgres_us_per_row",
    )  # fmt: skip
    return {
        **median,
        "ratio_of": f"median of {len(runs)} trials",
        "ratio_range": [min(r["ratio"] for r in runs), max(r["ratio"] for r in runs)],
        "trials": [{k: r.get(k) for k in keys} for r in runs],
    }


async def telemetry_flow(env: Env, plan: Plan) -> Result:
    dsn, ceiling = await env.dbs.clone(), await env.dbs.clone()
    with broker(env.log_dir) as b:
        await env.stack(b)
        ends = await _telemetry_backlog(env, b, plan)
        env.say(f"telemetry: {plan.telemetry_messages} messages produced; draining")
        progress, ws, _ = await _drain(env, b, dsn, ends, 1, plan.timeout_s, "telemetry")
        rss = ws[0].rss.peak if ws[0].rss else 0
        ws[0].stop()
    copied = await _ceiling(
        env, dsn, ceiling, "telemetry", TELEMETRY_COLUMNS, plan.telemetry_messages * plan.points
    )
    await env.dbs.drop(dsn, ceiling)
    out = _throughput(progress, plan.points, copied)
    out["points_per_message"] = plan.points
    out["worker_peak_rss_mb"] = round(rss / MB, 1)
    return out


async def gps_flow(env: Env, plan: Plan) -> Result:
    fleet = Fleet.demo(vehicles=plan.vehicles, cameras=0)
    dsn, ceiling = await env.dbs.clone(), await env.dbs.clone()
    for d in (dsn, ceiling):
        await seed_demo(d, fleet)
    with broker(env.log_dir) as b:
        await env.stack(b)
        fixes = load.gps(
            fleet, plan.gps_fixes, end=datetime.now(UTC) - timedelta(seconds=5),
            partitions=env.partitions,
        )  # fmt: skip
        ends = await load.produce(b.bootstrap, fixes)
        del fixes
        env.say(f"gps: {plan.gps_fixes} fixes of {plan.vehicles} vehicles produced; draining")
        progress, ws, _ = await _drain(env, b, dsn, ends, 1, plan.timeout_s, "gps")
        flagged = ws[0].metric("eriop_location_flags_total")
        rss = ws[0].rss.peak if ws[0].rss else 0
        ws[0].stop()
    copied = await _ceiling(env, dsn, ceiling, "location_history", LOCATION_COLUMNS, plan.gps_fixes)
    await env.dbs.drop(dsn, ceiling)
    out = _throughput(progress, 1, copied)
    out["vehicles"] = plan.vehicles
    out["flagged_fixes"] = int(flagged)
    out["worker_peak_rss_mb"] = round(rss / MB, 1)
    return out


async def scaling_flow(env: Env, plan: Plan) -> Result:
    """Telemetry consume-and-store rate with two workers in one consumer group."""
    dsn = await env.dbs.clone()
    with broker(env.log_dir) as b:
        await env.stack(b)
        ends = await _telemetry_backlog(env, b, plan)
        env.say("scaling: the same telemetry load, two workers in one group")
        progress, ws, shares = await _drain(env, b, dsn, ends, 2, plan.timeout_s)
        rss = [w.rss.peak if w.rss else 0 for w in ws]
        for w in ws:
            w.stop()
    await env.dbs.drop(dsn)
    return {
        "workers": 2,
        **cpu_cost(progress, progress.rate * plan.points),
        "e2e_rows_per_s": round(progress.rate * plan.points),
        "e2e_window_s": round(progress.steady_s, 3),
        "records_per_worker": [int(s) for s in shares],
        "worker_peak_rss_mb": [round(r / MB, 1) for r in rss],
    }
