"""Jurisdiction enrichment, Axis device agency, geofence enter/leave events, and
polygons that change without a restart, through a running worker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from eriop.dev.stack import Broker
from eriop.traffic import Message
from eriop.workerproc import WorkerProcess, worker_env
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration

NORTH = uuid.UUID("11111111-1111-4111-8111-111111111111")
SOUTH = uuid.UUID("22222222-2222-4222-8222-222222222222")
DEVICE_AGENCY = uuid.UUID("33333333-3333-4333-8333-333333333333")
VEHICLE = uuid.UUID("44444444-4444-4444-8444-444444444444")


async def setup_geo(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for aid, code in ((NORTH, "NORTH"), (SOUTH, "SOUTH"), (DEVICE_AGENCY, "DEV")):
            await conn.execute(
                "INSERT INTO agencies (id, name, code, type) VALUES ($1, $2, $2, 'fire')", aid, code
            )
        await add_fence(conn, "North district", "jurisdiction", NORTH, (24.0, 61.0, 25.0, 62.0))
        await add_fence(conn, "Depot", "geofence", None, (24.50, 60.50, 24.51, 60.51))
        await conn.execute(
            "INSERT INTO resources (id, type, name, identifier, agency_id) "
            "VALUES ($1, 'vehicle', 'Engine 1', 'ENG-1', $2)",
            VEHICLE,
            NORTH,
        )
        await conn.execute(
            "INSERT INTO resources (type, name, identifier, agency_id, current_location) "
            "VALUES ('equipment', 'Hall mic', 'ACCC8E000001', $1, "
            "'SRID=4326;POINT(24.6 61.5)'::geography)",
            DEVICE_AGENCY,
        )
    finally:
        await conn.close()


async def add_fence(
    conn: asyncpg.Connection,
    name: str,
    kind: str,
    agency: uuid.UUID | None,
    box: tuple[float, float, float, float],
) -> None:
    await conn.execute(
        "INSERT INTO geofences (name, kind, agency_id, area) VALUES "
        "($1, $2, $3, ST_Multi(ST_MakeEnvelope($4, $5, $6, $7, 4326))::geography)",
        name,
        kind,
        agency,
        *box,
    )


def json_alert(ext: str, lon: float, lat: float) -> Message:
    body = {"source": "feed", "external_id": ext, "type": "fire", "title": ext,
            "location": {"lon": lon, "lat": lat}}  # fmt: skip
    return ("alerts.json", b"feed", json.dumps(body).encode(), [])


def fix(t: datetime, lon: float, lat: float) -> Message:
    body = {"resource_id": str(VEHICLE), "lon": lon, "lat": lat, "time": t.isoformat(),
            "accuracy": 3}  # fmt: skip
    return ("gps.raw", b"ENG-1", json.dumps(body).encode(), [])


@pytest.fixture
def worker(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    env = worker_env(broker.bootstrap, fresh_db, redis_url, ERIOP_GEO_REFRESH_S="0.5")
    w = WorkerProcess(env, tmp_path)
    yield w
    w.stop()


async def agency_of(dsn: str, ext: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        meta = await conn.fetchval("SELECT metadata FROM alerts WHERE external_id = $1", ext)
    finally:
        await conn.close()
    return None if meta is None else json.loads(meta).get("agency", "absent")


async def test_agency_enrichment_and_live_polygon_changes(
    worker: WorkerProcess, broker: Broker, fresh_db: str
) -> None:
    await setup_geo(fresh_db)
    worker.start().wait_healthy()
    axis = {
        "topic": "axis:AudioClassification/Screaming",
        "timestamp": int(datetime.now(UTC).timestamp() * 1000),
        "message": {"source": {}, "data": {"Detected": "1"}},
    }
    await produce(
        broker.bootstrap,
        [
            json_alert("inside-north", 24.5, 61.5),
            json_alert("outside", 10.0, 50.0),
            ("alerts.axis", b"axis/ACCC8E000001/event/x", json.dumps(axis).encode(), []),
        ],
    )

    async def stored() -> bool:
        return await agency_of(fresh_db, "outside") is not None

    await wait_until(stored, what="alerts stored")
    north = await agency_of(fresh_db, "inside-north")
    assert north["id"] == str(NORTH)
    assert north["code"] == "NORTH"
    assert north["source"] == "jurisdiction"
    assert await agency_of(fresh_db, "outside") == "absent"
    conn = await asyncpg.connect(fresh_db)
    try:
        meta = json.loads(
            await conn.fetchval("SELECT metadata FROM alerts WHERE source = 'axis_mic'")
        )
        # a new jurisdiction, while the worker runs
        await add_fence(conn, "South district", "jurisdiction", SOUTH, (9.0, 49.0, 11.0, 51.0))
    finally:
        await conn.close()
    assert meta["agency"] == {"id": str(DEVICE_AGENCY), "source": "resource"}

    async def south_applies() -> bool:
        ext = f"south-{uuid.uuid4().hex[:6]}"
        await produce(broker.bootstrap, [json_alert(ext, 10.0, 50.0)])
        await wait_until(lambda: _stored(fresh_db, ext), what=ext)
        agency = await agency_of(fresh_db, ext)
        return isinstance(agency, dict) and agency["id"] == str(SOUTH)

    await wait_until(south_applies, timeout=30, what="the new jurisdiction to apply")


async def _stored(dsn: str, ext: str) -> bool:
    return await agency_of(dsn, ext) is not None


async def test_geofence_enter_and_leave_events(
    worker: WorkerProcess, broker: Broker, fresh_db: str, redis_url: str
) -> None:
    await setup_geo(fresh_db)
    red = aioredis.from_url(redis_url)
    sub = red.pubsub()
    await sub.subscribe("eriop.geofence")
    worker.start().wait_healthy()
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    # outside, inside the depot, outside again: ~100 m steps, 20 s apart
    path = [(24.4990, 60.5050), (24.5005, 60.5050), (24.5020, 60.5050), (24.5115, 60.5050)]
    await produce(
        broker.bootstrap, [fix(t0 + timedelta(seconds=20 * i), *p) for i, p in enumerate(path)]
    )
    events: list[dict[str, Any]] = []

    async def two_events() -> bool:
        while (m := await sub.get_message(timeout=0.2)) is not None:
            if m["type"] == "message":
                events.append(json.loads(m["data"]))
        return len(events) >= 2

    await wait_until(two_events, what="enter and leave events")
    assert [e["transition"] for e in events] == ["enter", "leave"]
    assert {e["name"] for e in events if e["transition"] == "enter"} == {"Depot"}
    assert all(e["resource_id"] == str(VEHICLE) for e in events)
    conn = await asyncpg.connect(fresh_db)
    try:
        marks = [
            json.loads(r["metadata"]).get("geofences")
            for r in await conn.fetch(
                "SELECT metadata FROM location_history WHERE resource_id = $1 ORDER BY time",
                VEHICLE,
            )
        ]
    finally:
        await conn.close()
    assert marks[0] is None
    assert marks[1]["entered"]
    assert not marks[1]["left"]
    assert marks[2] is None
    assert marks[3]["left"]
    assert not marks[3]["entered"]
    await sub.aclose()
    await red.aclose()
