"""Telemetry and GPS through a running worker: every point stored once, also
when a topic is replayed from offset 0."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from eriop.dev.stack import Broker
from eriop.simulate import seed_demo
from eriop.traffic import Fleet, Message, Traffic
from eriop.workerproc import WorkerProcess, worker_env
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration


def telemetry_messages(n_messages: int, points: int, *, start: datetime) -> list[Message]:
    """Unique (device, metric, time) for every point, alternating both formats."""
    out: list[Message] = []
    for i in range(n_messages):
        device = f"VOL-{i % 2000:05d}"
        t = start + timedelta(milliseconds=i)
        if i % 2:
            pack = [{"bn": f"{device}:", "bt": t.timestamp(), "n": "m0", "u": "Cel", "v": i}]
            pack += [{"n": f"m{j}", "v": j * 1.5} for j in range(1, points)]
            body = json.dumps(pack)
        else:
            body = json.dumps(
                [{"device_id": device, "device_type": "probe", "time": t.isoformat(),
                  "metric": f"m{j}", "value": j} for j in range(points)]
            )  # fmt: skip
        out.append(("telemetry.raw", device.encode(), body.encode(), []))
    return out


async def scalar(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


def env_for(broker: Broker, dsn: str, redis_url: str, tag: str) -> dict[str, str]:
    return worker_env(
        broker.bootstrap, dsn, redis_url,
        ERIOP_KAFKA__ALERTS_GROUP=f"alerts-{tag}", ERIOP_KAFKA__BULK_GROUP=f"bulk-{tag}",
    )  # fmt: skip


async def test_high_volume_every_point_once_and_replay_adds_nothing(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    messages = telemetry_messages(50_000, 4, start=datetime.now(UTC) - timedelta(minutes=5))
    fleet = Fleet.demo()
    await seed_demo(fresh_db, fleet)
    traffic = Traffic(fleet, seed=11)
    now = datetime.now(UTC)
    fixes = [traffic.gps(now + timedelta(milliseconds=i)) for i in range(2000)]
    w = WorkerProcess(env_for(broker, fresh_db, redis_url, "a"), tmp_path, "volume").start()
    try:
        w.wait_healthy()
        await produce(broker.bootstrap, messages + fixes)

        async def all_points() -> bool:
            return await scalar(fresh_db, "SELECT count(*) FROM telemetry") >= 200_000

        await wait_until(all_points, timeout=240, what="200k points")
        await wait_until(
            lambda: _ge(w.metric("eriop_records_total", topic="gps.raw"), 2000), what="gps consumed"
        )
        assert await scalar(fresh_db, "SELECT count(*) FROM telemetry") == 200_000
        assert (
            await scalar(
                fresh_db,
                "SELECT count(*) FROM (SELECT 1 FROM telemetry "
                "GROUP BY device_id, metric_name, time HAVING count(*) > 1) d",
            )
            == 0
        )
        stored_fixes = await scalar(fresh_db, "SELECT count(*) FROM location_history")
        assert stored_fixes == 2000 - int(
            w.metric("eriop_records_total", topic="gps.raw", outcome="duplicate")
        )
        assert w.metric("eriop_dead_letters_total") == 0
        assert w.stop()[0] == 0
    finally:
        w.stop()

    # replay both topics from offset 0 under a new group, with no stored positions
    conn = await asyncpg.connect(fresh_db)
    await conn.execute("DELETE FROM ingest_offsets")
    await conn.close()
    before = await scalar(fresh_db, "SELECT count(*) FROM location_history")
    r = WorkerProcess(env_for(broker, fresh_db, redis_url, "replay"), tmp_path, "replay").start()
    try:
        r.wait_healthy()

        async def replayed() -> bool:
            return r.metric("eriop_records_total", topic="telemetry.raw") >= 50_000

        await wait_until(replayed, timeout=240, what="replay of 50k messages")
        await wait_until(
            lambda: _ge(r.metric("eriop_records_total", topic="gps.raw"), 2000), what="gps replay"
        )
        assert r.metric("eriop_records_total", topic="telemetry.raw", outcome="duplicate") == 50_000
        assert await scalar(fresh_db, "SELECT count(*) FROM telemetry") == 200_000
        assert await scalar(fresh_db, "SELECT count(*) FROM location_history") == before
    finally:
        r.stop()


async def _ge(value: float, target: float) -> bool:
    return value >= target


async def test_positions_and_last_seen_reach_redis(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    import redis.asyncio as aioredis

    fleet = Fleet.demo(vehicles=3)
    await seed_demo(fresh_db, fleet)
    traffic = Traffic(fleet, seed=5, devices=3)
    now = datetime.now(UTC)
    msgs = [traffic.gps(now + timedelta(seconds=i)) for i in range(30)]
    msgs += [traffic.telemetry(now + timedelta(seconds=i)) for i in range(10)]
    red = aioredis.from_url(redis_url, decode_responses=True)
    sub = red.pubsub()
    await sub.subscribe("eriop.locations")
    w = WorkerProcess(env_for(broker, fresh_db, redis_url, uuid.uuid4().hex[:6]), tmp_path).start()
    try:
        w.wait_healthy()
        await produce(broker.bootstrap, msgs)

        async def positions() -> bool:
            return len(await red.zrange("eriop:geo:resources", 0, -1)) == 3

        await wait_until(positions, what="3 resources in the geo set")
        for v in fleet.vehicles:
            h = await red.hgetall(f"eriop:resource:{v.id}")
            assert {"lat", "lon", "time"} <= set(h)
        conn = await asyncpg.connect(fresh_db)
        try:
            moved = await conn.fetchval(
                "SELECT count(*) FROM resources "
                "WHERE current_location IS NOT NULL AND type = 'vehicle'"
            )
            seen = await conn.fetchval("SELECT count(*) FROM device_last_seen")
        finally:
            await conn.close()
        assert moved == 3
        assert seen == 3
        got = []
        while (m := await sub.get_message(timeout=1.0)) is not None:
            if m["type"] == "message":
                got.append(json.loads(m["data"])["resource_id"])
        # coalesced: at most one message per resource per interval, never one per fix
        assert 3 <= len(got) < 30
    finally:
        w.stop()
        await sub.aclose()
        await red.aclose()


async def test_late_fix_never_moves_a_resource_back(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    fleet = Fleet.demo(vehicles=1)
    await seed_demo(fresh_db, fleet)
    v = fleet.vehicles[0]
    now = datetime.now(UTC)

    def fix(t: datetime, lon: float) -> Message:
        body = {"resource_id": str(v.id), "lat": 60.17, "lon": lon, "time": t.isoformat()}
        return ("gps.raw", v.identifier.encode(), json.dumps(body).encode(), [])

    w = WorkerProcess(env_for(broker, fresh_db, redis_url, uuid.uuid4().hex[:6]), tmp_path).start()
    try:
        w.wait_healthy()
        await produce(broker.bootstrap, [fix(now - timedelta(seconds=10), 24.9000)])
        await produce(broker.bootstrap, [fix(now - timedelta(seconds=60), 24.8990)])  # late

        async def both() -> bool:
            return await scalar(fresh_db, "SELECT count(*) FROM location_history") == 2

        await wait_until(both, what="both fixes stored")
        conn = await asyncpg.connect(fresh_db)
        try:
            lon = await conn.fetchval(
                "SELECT ST_X(current_location::geometry) FROM resources WHERE id = $1", v.id
            )
            flags = await conn.fetchval(
                "SELECT metadata->'flags' FROM location_history WHERE resource_id = $1 "
                "ORDER BY time LIMIT 1",
                v.id,
            )
        finally:
            await conn.close()
        assert lon == pytest.approx(24.9000)
        assert "out_of_order" in json.loads(flags)
    finally:
        w.stop()
