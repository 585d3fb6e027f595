"""``eriop bench``: throughput, latency and memory of the real worker, measured
in one run on the embedded stack so that ratios hold on a noisy machine.

It starts what it needs (a broker per scenario, PostgreSQL and Redis if they
are down), runs the scenarios of :mod:`eriop.bench.scenarios`, prints a
table, and writes JSON (and the same results as Markdown beside it). The
``--smoke`` mode runs small loads and checks that the numbers are sane, never
that they beat a target.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from eriop.bench import report
from eriop.bench.scenarios import (
    Env,
    Plan,
    Result,
    gps_flow,
    scaling_flow,
    telemetry_flow,
    trials,
)
from eriop.bench.stack import Databases, with_path
from eriop.bench.stress import alerts_flow, broker_flow, overload_flow
from eriop.dev.stack import ensure_postgres, ensure_redis
from pipeline.errors import EXIT_FAILURE, EriopError
from pipeline.settings import Settings

DEFAULT_OUTPUT = "bench-results/latest.json"


def plan_for(args: argparse.Namespace) -> Plan:
    rate = float(getattr(args, "alert_rate", 200.0))
    if args.smoke:
        return Plan(
            # enough for several batches per bulk process: the rates and CPU
            # shares are taken between the first and the last commit
            telemetry_messages=20_000, points=4, gps_fixes=20_000, vehicles=60, trials=1,
            alert_rate=rate, alert_count=max(int(rate * 2), 20),
            overload_factor=10.0, overload_window_s=1.0, timeout_s=120.0, flood_runs=1,
        )  # fmt: skip
    return Plan(
        # three trials of each throughput pair: the machine's speed drifts by
        # tens of percent from one minute to the next, the median ratio is stable
        telemetry_messages=100_000, points=4, gps_fixes=120_000, vehicles=300, trials=3,
        # 10 s of alerts per phase: under a longer flood the embedded broker
        # itself stops keeping up (eriop bench --broker shows when)
        alert_rate=rate, alert_count=max(int(rate * 10), 100),
        overload_factor=10.0, overload_window_s=5.0, timeout_s=300.0,
        # the flood's p99 moves with the machine: every one of five runs must hold
        flood_runs=5,
    )  # fmt: skip


def _command(args: argparse.Namespace) -> str:
    parts = ["eriop", "bench"]
    if args.smoke:
        parts.append("--smoke")
    if getattr(args, "profile", False):
        parts.append("--profile")
    if getattr(args, "native", False):
        parts.append("--native")
    if getattr(args, "broker", False):
        parts.append(f"--broker --broker-rate {args.broker_rate:g}")
    rate = float(getattr(args, "alert_rate", 200.0))
    if rate != 200.0:
        parts.append(f"--alert-rate {rate:g}")
    if args.output != DEFAULT_OUTPUT:
        parts.append(f"--output {args.output}")
    return " ".join(parts)


def _say(msg: str) -> None:
    print(f"eriop bench: {msg}", file=sys.stderr, flush=True)


async def _postgres_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _profile(env: Env, plan: Plan) -> Result:
    _say("profile 1/2: telemetry end to end under py-spy, and its raw COPY")
    out: Result = {"telemetry": await telemetry_flow(env, plan)}
    _say("profile 2/2: GPS end to end under py-spy, and its raw COPY")
    out["gps"] = await gps_flow(env, plan)
    return out


def _report_profile(results: Result, output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"`{results['command']}`, {results['date']}", ""]
    build = results.get("machine", {}).get("build", "?")
    lines += [f"volume path: {build}", ""]
    if results.get("native"):
        lines += [
            "(native frames sampled: the compiled modules' functions show by name;",
            "py-spy paused the processes for each sample, so the rates are lower)",
            "",
        ]
    elif build.startswith("compiled"):
        lines += [
            "(py-spy sees no frames inside compiled modules: their time shows under the",
            "nearest Python caller, mostly `collection_paused.<locals>.paused`;",
            "`eriop bench --profile --native` names them; `ERIOP_PURE_PYTHON=1 eriop bench",
            "--profile` profiles the same code as Python)",
            "",
        ]
    for name in ("telemetry", "gps"):
        r = results[name]
        per_row = r.get("cpu_us_per_row", {})
        lines.append(
            f"{name}: e2e/COPY {r['ratio']:.2f} ({r['e2e_rows_per_s']:,} against "
            f"{r['copy_rows_per_s']:,} rows/s); CPU us per row "
            + ", ".join(f"{k} {v}" for k, v in per_row.items())
        )
    text = "\n".join(lines) + "\n"
    output.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    _say(f"profiles in {output.parent}/{{telemetry,gps}}.txt (raw stacks beside them)")
    return 0


async def _run(env: Env, plan: Plan) -> Result:
    out: Result = {}
    _say("scenario 1/5: telemetry end to end and its raw COPY")
    out["telemetry"] = await trials(telemetry_flow, env, plan)
    _say("scenario 2/5: GPS end to end and its raw COPY")
    out["gps"] = await trials(gps_flow, env, plan)
    tele_msgs = out["telemetry"]["e2e_rows_per_s"] / plan.points
    _say("scenario 3/5: alert latency, alone and beside a telemetry flood")
    out["alerts"] = await alerts_flow(env, plan, flood_rate=tele_msgs)
    _say(f"scenario 4/5: worker memory under {plan.overload_factor:g}x overload")
    out["overload"] = await overload_flow(env, plan, tele_msgs, out["gps"]["e2e_rows_per_s"])
    _say("scenario 5/5: two workers in one consumer group")
    out["scaling"] = await scaling_flow(env, plan)
    out["scaling"]["one_worker_rows_per_s"] = out["telemetry"]["e2e_rows_per_s"]
    out["scaling"]["two_over_one"] = round(
        out["scaling"]["e2e_rows_per_s"] / out["telemetry"]["e2e_rows_per_s"], 3
    )
    return out


def _report_broker(results: Result, output: Path) -> int:
    if output == Path(DEFAULT_OUTPUT):
        output = output.with_name("broker.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = report.broker_table(results)
    output.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    _say(f"results in {output} and {output.with_suffix('.md')}")
    return 0


def _run_receiver(args: argparse.Namespace) -> int:
    from eriop.bench.receiver import receiver_flow, table

    log_dir = Path(tempfile.mkdtemp(prefix="eriop-bench-"))
    results: Result = {
        "command": (
            f"eriop bench --receiver --panels {args.panels} --receiver-rate "
            f"{args.receiver_rate:g} --receiver-seconds {args.receiver_seconds:g}"
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        results["receiver"] = asyncio.run(
            receiver_flow(
                log_dir,
                _say,
                panels=args.panels,
                rate=args.receiver_rate,
                seconds=args.receiver_seconds,
            )
        )
    except (EriopError, RuntimeError, OSError) as exc:
        _say(f"failed: {exc}; receiver and broker logs are in {log_dir}")
        return 1
    output = Path(args.output)
    if output == Path(DEFAULT_OUTPUT):
        output = output.with_name("receiver.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = table(results["receiver"])
    output.with_suffix(".md").write_text(f"`{results['command']}`\n\n{text}\n", encoding="utf-8")
    print(text)
    _say(f"results in {output} and {output.with_suffix('.md')}; logs in {log_dir}")
    return 0 if results["receiver"]["frames_acked"] > 0 else 1


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    # the bench's own Kafka clients would otherwise log every assignment
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    if getattr(args, "receiver", False):
        return _run_receiver(args)
    plan = plan_for(args)
    profiling = bool(getattr(args, "profile", False))
    native = bool(getattr(args, "native", False))
    if native and not profiling:
        _say("--native goes with --profile")
        return 2
    output = Path(args.output)
    if profiling:
        plan = dataclasses.replace(plan, trials=1)
        output = output.parent / "profile" / "profile.json"
    database_url = settings.database_url.get_secret_value()
    redis_url = with_path(settings.redis_url.get_secret_value(), f"/{args.redis_db}")
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="eriop-bench-"))
    try:
        ensure_postgres(database_url)
        ensure_redis(redis_url)
    except EriopError as exc:
        _say(f"cannot start: {exc.reason}")
        return exc.exit_code
    dbs = Databases(database_url, uuid.uuid4().hex[:8])
    env = Env(settings, dbs, redis_url, log_dir, _say, output.parent if profiling else None, native)
    results: Result = {
        "command": _command(args),
        "mode": "smoke" if args.smoke else "full",
        "native": native,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "plan": plan.__dict__,
        "partitions": settings.kafka.partitions,
        # other work on the machine skews a run; the load average shows it
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }

    async def go() -> Result:
        results["postgres"] = await _postgres_version(dbs.admin)
        if args.broker:
            return {"broker": await broker_flow(env, args.broker_rate)}
        await dbs.prepare()
        try:
            return await (_profile if profiling else _run)(env, plan)
        finally:
            await dbs.drop_all()

    try:
        results |= asyncio.run(go())
    except (EriopError, RuntimeError) as exc:
        _say(f"failed: {exc}; worker and broker logs are in {log_dir}")
        return exc.exit_code if isinstance(exc, EriopError) else EXIT_FAILURE
    results["duration_s"] = round(time.monotonic() - started, 1)
    if args.broker:
        return _report_broker(results, output)
    if profiling:
        return _report_profile(results, output)
    results["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    results["targets"] = report.targets(results)
    problems = report.sanity(results)
    results["sanity_problems"] = problems

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(report.markdown(results), encoding="utf-8")
    print(report.table(results))
    _say(f"results in {output} and {output.with_suffix('.md')}; logs in {log_dir}")
    for p in problems:
        _say(f"insane result: {p}")
    return 1 if problems else 0
