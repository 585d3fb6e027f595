"""Redis unreachable for ``outage_s`` seconds while alerts, telemetry and GPS arrive.

PostgreSQL is the record and Redis a view of it: during the outage every record
is still stored, and when Redis returns the live state (positions, device
last-seen) is re-synchronised from what the worker held, and the alerts stored
meanwhile reach the alert stream.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from eriop.dev.stack import Broker
from eriop.simulate import seed_demo
from eriop.traffic import Fleet
from pipeline.decoders.envelope import parse_timestamp
from tests.faults.conftest import (
    Ledger,
    Sizes,
    Workers,
    Workload,
    counts,
    drained,
    eventually,
    produce,
    snapshot,
    stream_alerts,
    timeout_for,
    uncovered,
)
from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(timeout_for(240))]


async def test_redis_outage_keeps_storing_and_resyncs_live_state(
    broker: Broker,
    fresh_db: str,
    redis_url: str,
    env: dict[str, str],
    workers: Workers,
    redis_proxy: TcpProxy,
    redis_client: aioredis.Redis,
    sizes: Sizes,
    tag: str,
) -> None:
    fleet = Fleet.demo(vehicles=10, cameras=0)
    await seed_demo(fresh_db, fleet)
    env = {**env, "ERIOP_REDIS_URL": redis_proxy.url(redis_url)}
    load = Workload(tag, sizes.seed)
    ledger = Ledger()
    now = datetime.now(UTC)
    w = workers.start(env, "worker")
    await workers.healthy(w)

    steady = load.mix(
        load.json_alerts(1_000, 0.1),
        load.telemetry(20_000, start=now - timedelta(minutes=30)),
        load.gps(fleet, 400, start=now - timedelta(minutes=10)),
    )
    await produce(broker.bootstrap, steady, ledger)
    await eventually(
        lambda: _stored(fresh_db, env, ledger), timeout=90, what="steady traffic stored"
    )
    await eventually(lambda: _populated(fresh_db, redis_client), timeout=30, what="live state")
    await asyncio.sleep(1.0)  # nothing is pending any more: what Redis holds now stays
    before_outage = await _live_state_problems(fresh_db, redis_client)

    redis_proxy.cut()
    cut_at = time.monotonic()
    during = load.mix(
        load.json_alerts(2_000, 0.1, start=100_000),
        load.telemetry(40_000, start=now - timedelta(minutes=20)),
        load.gps(fleet, 400, start=now - timedelta(minutes=5)),
    )
    await produce(broker.bootstrap, during, ledger, over_s=sizes.outage_s * 0.3)
    # the database path does not wait for Redis
    await eventually(
        lambda: _stored(fresh_db, env, ledger),
        timeout=max(sizes.outage_s - (time.monotonic() - cut_at) - 1, 1),
        what="records stored while Redis is down",
    )
    stored_in_outage = time.monotonic() - cut_at
    assert not await _in_sync(fresh_db, redis_client), "Redis was not cut off"
    assert w.proc is not None
    assert w.proc.poll() is None
    await asyncio.sleep(max(sizes.outage_s - (time.monotonic() - cut_at), 0))
    backlog = (await counts(fresh_db))["outbox"]
    on_stream_before = await redis_client.xlen("eriop:stream:alerts")
    redis_proxy.restore()
    restored_at = time.monotonic()

    # the outbox relay's waits are capped at about a second (pipeline.retry.ALERT_PATH)
    async def relay_resumed() -> bool:
        return await redis_client.xlen("eriop:stream:alerts") > on_stream_before

    await eventually(relay_resumed, timeout=5.0, what="the first alert of the backlog on Redis")
    print(f"outbox relay resumed {time.monotonic() - restored_at:.1f}s after Redis returned")
    print(f"all stored {stored_in_outage:.0f}s into the outage; {backlog} alerts in the outbox")
    assert backlog > 0

    await _eventually_in_sync(fresh_db, redis_client, "live state re-synchronised", 60)

    async def on_stream() -> bool:
        return not ledger.idents("alert") - set(await stream_alerts(redis_url))

    await eventually(on_stream, timeout=30, what="alerts stored meanwhile on the stream")
    print(f"re-synchronised {time.monotonic() - restored_at:.0f}s after Redis returned")
    assert (await counts(fresh_db))["outbox"] == 0
    assert not uncovered(ledger, await snapshot(fresh_db), env)
    await workers.balanced(w)
    # without any fault, Redis must mirror the database too (see test_live_state_order)
    assert not before_outage, (
        f"live state behind the database before the outage ({len(before_outage)} keys): "
        f"{before_outage[:5]}"
    )


async def _stored(dsn: str, env: dict[str, str], ledger: Ledger) -> bool:
    snap = await snapshot(dsn)
    return (
        snap.alerts >= ledger.idents("alert")
        and snap.point_times >= ledger.idents("points")
        and snap.fixes >= ledger.idents("fix")
        and not await drained(dsn, env, ledger)
    )


async def _populated(dsn: str, red: aioredis.Redis) -> bool:
    """Every resource with a position and every device with a reading has its hash."""
    conn = await asyncpg.connect(dsn)
    try:
        resources = await conn.fetch("SELECT DISTINCT resource_id::text FROM location_history")
        devices = await conn.fetch("SELECT device_id::text FROM device_last_seen")
    finally:
        await conn.close()
    keys = [f"eriop:resource:{r[0]}" for r in resources] + [f"eriop:device:{d[0]}" for d in devices]
    return bool(resources) and bool(devices) and await red.exists(*keys) == len(keys)


async def _in_sync(dsn: str, red: aioredis.Redis) -> bool:
    return not await _live_state_problems(dsn, red)


async def _eventually_in_sync(dsn: str, red: aioredis.Redis, what: str, timeout: float) -> None:
    problems: list[str] = []

    async def probe() -> bool:
        problems[:] = await _live_state_problems(dsn, red)
        return not problems

    try:
        await eventually(probe, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: {len(problems)} differences: {problems[:8]}") from None


async def _live_state_problems(dsn: str, red: aioredis.Redis) -> list[str]:
    """Differences between the database and Redis: each resource's position and
    each device's last-seen time. Empty when Redis mirrors the database."""
    conn = await asyncpg.connect(dsn)
    try:
        resources = await conn.fetch(
            "SELECT r.id::text AS id, ST_X(r.current_location::geometry) AS lon, "
            "ST_Y(r.current_location::geometry) AS lat, max(h.time) AS time "
            "FROM resources r JOIN location_history h ON h.resource_id = r.id "
            "WHERE NOT COALESCE(h.metadata->'flags' ?| "
            "ARRAY['out_of_order', 'teleport', 'low_accuracy'], FALSE) "
            "GROUP BY r.id"
        )
        devices = await conn.fetch("SELECT device_id::text, last_seen FROM device_last_seen")
    finally:
        await conn.close()
    problems: list[str] = []
    if not resources or not devices:
        return ["nothing stored yet"]
    for r in resources:
        h = await red.hgetall(f"eriop:resource:{r['id']}")
        if not h or parse_timestamp(h["time"], "time") != r["time"]:
            problems.append(f"resource {r['id']}: {h.get('time')} != {r['time'].isoformat()}")
        elif abs(float(h["lon"]) - r["lon"]) > 1e-6 or abs(float(h["lat"]) - r["lat"]) > 1e-6:
            problems.append(f"resource {r['id']}: position differs")
    for d in devices:
        seen = await red.hget(f"eriop:device:{d[0]}", "last_seen")
        if seen is None or parse_timestamp(seen, "last_seen") != d[1]:
            problems.append(f"device {d[0]}: {seen} != {d[1].isoformat()}")
    return problems


async def test_redis_that_comes_back_empty_is_refilled_from_the_database(
    broker: Broker,
    fresh_db: str,
    redis_url: str,
    env: dict[str, str],
    workers: Workers,
    redis_client: aioredis.Redis,
    sizes: Sizes,
    tag: str,
) -> None:
    fleet = Fleet.demo(vehicles=10, cameras=0)
    await seed_demo(fresh_db, fleet)
    load = Workload(tag, sizes.seed)
    ledger = Ledger()
    now = datetime.now(UTC)
    w = workers.start(env, "worker")
    await workers.healthy(w)
    await produce(
        broker.bootstrap,
        load.mix(
            load.json_alerts(200, 0.1),
            load.telemetry(2_000, start=now - timedelta(minutes=30)),
            load.gps(fleet, 200, start=now - timedelta(minutes=10)),
        ),
        ledger,
    )
    await eventually(lambda: _stored(fresh_db, env, ledger), timeout=90, what="traffic stored")
    await _eventually_in_sync(fresh_db, redis_client, "live state", 30)

    # a restart without persistence, a failover to an empty replica, a flush: no
    # traffic follows, so only a refill from PostgreSQL brings the units back
    await redis_client.flushdb()
    await _eventually_in_sync(fresh_db, redis_client, "live state refilled", 30)
    assert await redis_client.zcard("eriop:geo:resources") == await _units_placed(fresh_db)

    async def history_back() -> bool:
        return not ledger.idents("alert") - set(await stream_alerts(redis_url))

    await eventually(history_back, timeout=30, what="the alert stream's history refilled")
    assert w.proc is not None
    assert w.proc.poll() is None


async def _units_placed(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM resources r WHERE current_location IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM location_history h WHERE h.resource_id = r.id)"
        )
    finally:
        await conn.close()
    return n
