"""Alerts never wait behind telemetry: a backlog of points on the bulk topics
does not delay an alert produced after it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from eriop.dev.stack import Broker
from eriop.workerproc import WorkerProcess, worker_env
from tests.integration.test_bulk_flow import telemetry_messages
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration


async def test_alert_overtakes_a_telemetry_backlog(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    w = WorkerProcess(worker_env(broker.bootstrap, fresh_db, redis_url), tmp_path).start()
    try:
        w.wait_healthy()
        red = aioredis.from_url(redis_url)
        sub = red.pubsub()
        await sub.subscribe("eriop.alerts")
        backlog = telemetry_messages(40_000, 5, start=datetime.now(UTC) - timedelta(minutes=5))
        await produce(broker.bootstrap, backlog)
        ext = f"behind-the-flood-{uuid.uuid4().hex[:6]}"
        body = {"source": "feed", "external_id": ext, "type": "panic", "title": "SOS"}
        sent = time.monotonic()
        await produce(broker.bootstrap, [("alerts.json", b"k", json.dumps(body).encode(), [])])

        async def published() -> bool:
            m = await sub.get_message(timeout=0.1)
            return bool(
                m and m["type"] == "message" and json.loads(m["data"])["external_id"] == ext
            )

        await wait_until(published, timeout=60, what="the alert on eriop.alerts")
        latency = time.monotonic() - sent
        conn = await asyncpg.connect(fresh_db)
        try:
            points_then = await conn.fetchval("SELECT count(*) FROM telemetry")
        finally:
            await conn.close()
        # the alert was published while the telemetry backlog was still draining
        assert points_then < 200_000, (points_then, latency)
        await sub.aclose()
        await red.aclose()
    finally:
        w.stop()
