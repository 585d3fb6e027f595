"""Every sample message of docs/formats.md, produced to the real broker and run
through the pipeline into real PostgreSQL and Redis, gives what it must."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from eriop.dev.stack import Broker
from pipeline.clients.postgres import _init_connection
from pipeline.decoders.envelope import parse_timestamp
from tests.integration.harness import (
    FrozenClock,
    SampleFeeder,
    dead_letters,
    in_process_runtime,
    load_resources,
    settings_for,
)
from tests.samples import load_samples, mismatches

pytestmark = pytest.mark.integration

ALERT_COLS = (
    "SELECT id, source, external_id, type, severity, status, title, description, location, "
    "address, raw_payload, metadata, received_at, processed_at FROM alerts"
)


async def fetch_alerts(conn: asyncpg.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["source"], r["external_id"]): dict(r) for r in await conn.fetch(ALERT_COLS)}


def check_alert(expect: dict[str, Any], alerts: dict[tuple[str, str], dict[str, Any]]) -> None:
    exp = expect["alert"]
    row = alerts.get((exp["source"], exp["external_id"]))
    assert row is not None, f"alert {exp['external_id']} not stored"
    assert mismatches(exp, row) == []


async def check_line(
    line: dict[str, Any],
    record: Any,
    conn: asyncpg.Connection,
    red: aioredis.Redis,
    dlq: dict[Any, Any],
) -> None:
    expect = line["expect"]
    outcome = expect["outcome"]
    origin = (record.topic, record.partition, record.offset)
    if outcome == "dlq":
        letter = dlq.get(origin)
        assert letter is not None, f"no dead letter for {line.get('note') or expect}"
        assert (letter["stage"], letter["error_code"]) == (expect["stage"], expect["error_code"])
        assert letter["value_size"] == len(record.value or b"")
        return
    assert origin not in dlq, f"unexpected dead letter {dlq.get(origin)}"
    alerts = await fetch_alerts(conn)
    if outcome == "alert":
        check_alert(expect, alerts)
    elif outcome == "duplicate":
        assert (expect["source"], expect["external_id"]) in alerts
    elif outcome in ("restore", "cancel"):
        for t in expect.get("cancels") or [expect["restores"]]:
            row = alerts[(t["source"], t["external_id"])]
            assert mismatches(expect["metadata_patch"], row["metadata"]) == []
            if expect.get("status_if_new"):
                assert row["status"] == expect["status_if_new"]
    elif outcome == "activity":
        await check_telemetry(conn, expect["telemetry"])
        for key, value in (expect.get("redis") or {}).items():
            assert mismatches(value, await red.get(key)) == [], key
    elif outcome == "telemetry":
        await check_telemetry(conn, expect["rows"])
    elif outcome == "location":
        await check_location(conn, expect)
    elif outcome != "discard":  # discards store nothing: the exact counts below check it
        pytest.fail(f"unknown outcome {outcome}")


@pytest.mark.parametrize(
    "topic",
    ["alerts.alarm", "alerts.axis", "alerts.cap", "alerts.json", "telemetry.raw", "gps.raw"],
)
async def test_samples(topic: str, broker: Broker, fresh_db: str, redis_url: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    await _init_connection(conn)
    await load_resources(conn)
    red = aioredis.from_url(redis_url, decode_responses=True)
    sub = red.pubsub()
    await sub.subscribe("eriop.alerts")
    clock = FrozenClock()
    lines = load_samples(topic)
    records = []
    try:
        async with (
            in_process_runtime(settings_for(broker.bootstrap, fresh_db, redis_url), clock) as rt,
            SampleFeeder(rt, clock, broker.bootstrap) as feeder,
        ):
            for line in lines:
                record = await feeder.feed(line)
                records.append(record)
                dlq = (
                    await dead_letters(broker.bootstrap)
                    if line["expect"]["outcome"] == "dlq"
                    else {}
                )
                await check_line(line, record, conn, red, dlq)
        published = []
        while (msg := await sub.get_message(timeout=0.5)) is not None:
            if msg["type"] == "message":
                published.append(json.loads(msg["data"]))
        alerts = await fetch_alerts(conn)
        expected_alerts = sum(1 for line in lines if line["expect"]["outcome"] == "alert")
        # exactly the expected alerts, each published once on the channel and the stream
        assert len(alerts) == expected_alerts
        assert sorted(p["external_id"] for p in published) == sorted(k[1] for k in alerts)
        assert len(await red.xrange("eriop:stream:alerts")) == expected_alerts
        # exactly the expected dead letters, and none for valid lines
        dlq = await dead_letters(broker.bootstrap)
        mine = {(r.topic, r.partition, r.offset) for r in records}
        assert sum(1 for k in dlq if k in mine) == sum(
            1 for line in lines if line["expect"]["outcome"] == "dlq"
        )
        await check_row_counts(conn, lines)
    finally:
        await sub.aclose()
        await red.aclose()
        await conn.close()


async def check_telemetry(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    for exp in rows:
        got = await conn.fetch(
            "SELECT * FROM telemetry WHERE device_id = $1::uuid AND metric_name = $2",
            exp["device_id"], exp["metric_name"],
        )  # fmt: skip
        assert any(not mismatches(exp, dict(g)) for g in got), (exp, [dict(g) for g in got])


async def check_location(conn: asyncpg.Connection, expect: dict[str, Any]) -> None:
    exp = expect["row"]
    row = await conn.fetchrow(
        "SELECT * FROM location_history WHERE resource_id = $1::uuid AND time = $2::timestamptz",
        exp["resource_id"], parse_timestamp(exp["time"], "time"),
    )  # fmt: skip
    assert row is not None, exp
    assert mismatches(exp, dict(row)) == []


async def check_row_counts(conn: asyncpg.Connection, lines: list[dict[str, Any]]) -> None:
    tele = sum(len(ln["expect"].get("rows") or ln["expect"].get("telemetry") or []) for ln in lines)
    assert await conn.fetchval("SELECT count(*) FROM telemetry") == tele
    locs = sum(1 for ln in lines if ln["expect"]["outcome"] == "location")
    assert await conn.fetchval("SELECT count(*) FROM location_history") == locs
    moved = {
        ln["expect"]["row"]["resource_id"]: ln["expect"]["row"]["location"]
        for ln in lines
        if ln["expect"]["outcome"] == "location" and ln["expect"]["moves_resource"]
    }
    for rid, loc in moved.items():
        cur = await conn.fetchval("SELECT current_location FROM resources WHERE id = $1::uuid", rid)
        assert mismatches(loc, cur) == [], rid
    await asyncio.sleep(0)
