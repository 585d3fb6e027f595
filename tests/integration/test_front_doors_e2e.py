"""Both front doors end to end with the real worker: Axis events published to
Mosquitto and CAP feeds served over HTTP become alerts in PostgreSQL and on the
Redis stream exactly once, across a SIGKILL of the bridge and of the poller."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from pytest_httpserver import HTTPServer

from eriop.dev import stack as devstack
from eriop.workerproc import WorkerProcess, worker_env
from tests.integration.cap_helpers import Entry, FeedSite, atom, cap_doc
from tests.integration.mqtt_helpers import Publisher, axis_event, mosquitto, read_topic
from tests.integration.util import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
__all__ = ["mosquitto"]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(
    broker: devstack.Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    tag = uuid.uuid4().hex[:8]
    groups = {
        "ERIOP_KAFKA__ALERTS_GROUP": f"alerts-{tag}",
        "ERIOP_KAFKA__BULK_GROUP": f"bulk-{tag}",
    }
    env = worker_env(broker.bootstrap, fresh_db, redis_url, **groups)
    w = WorkerProcess(env, tmp_path).start()
    w.wait_healthy()
    yield w
    w.stop()


class Door:
    """An ``eriop mqtt-bridge`` or ``eriop cap-poller`` child process."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.port = devstack.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Door:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eriop.cli", self.command, "--metrics-port", str(self.port)],
                cwd=REPO, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    async def ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log.read_text()
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                return r.status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def door_env(bootstrap: str, dsn: str) -> dict[str, str]:
    return {"ERIOP_KAFKA_BOOTSTRAP": bootstrap, "ERIOP_DATABASE_URL": dsn,
            "ERIOP_EMBEDDED_BROKER": "true", "ERIOP_KAFKA__IDEMPOTENCE": "false"}  # fmt: skip


async def count_alerts(dsn: str, source: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM alerts WHERE source = $1", source))
    finally:
        await conn.close()


async def test_axis_and_cap_reach_postgres_and_redis_once_across_kills(
    broker: devstack.Broker,
    fresh_db: str,
    redis_url: str,
    worker: WorkerProcess,
    mosquitto: devstack.Mosquitto,
    httpserver: HTTPServer,
    tmp_path: Path,
) -> None:
    # --- Axis: 60 rising edges (one per input port), the bridge killed mid-stream
    total = 60
    now_ms = int(time.time() * 1000)
    events = [
        axis_event("onvif:Device/axis:IO/Port", {"port": str(i)}, {"state": "1"}, now_ms + i)
        for i in range(total)
    ]
    bridge_env = {**door_env(broker.bootstrap, fresh_db), "ERIOP_MQTT__HOST": "127.0.0.1",
                  "ERIOP_MQTT__PORT": str(mosquitto.port), "ERIOP_MQTT__CLIENT_ID": "e2e-bridge",
                  "ERIOP_MQTT__MAX_IN_FLIGHT": "10"}  # fmt: skip
    bridge = Door("mqtt-bridge", bridge_env, tmp_path / "bridge.log").start()
    device = Publisher(mosquitto.port)
    try:
        await wait_until(bridge.ready, timeout=30, what="the bridge")
        for topic, payload in events[: total // 2]:
            device.publish(topic, payload)

        async def some() -> bool:
            return len(await read_topic(broker.bootstrap)) >= 5

        await wait_until(some, timeout=30, what="the first Axis records")
        bridge.kill()
        for topic, payload in events[total // 2 :]:
            device.publish(topic, payload)  # queued in the bridge's session
        bridge.start()

        async def axis_stored() -> bool:
            return await count_alerts(fresh_db, "axis_device") >= total

        await wait_until(axis_stored, timeout=120, what="every Axis alert stored")
    finally:
        device.close()
        bridge.stop()

    # --- CAP: three entries, the poller killed, two more appear, a new poller
    site = FeedSite().serve(httpserver)
    entries = []
    for i in range(5):
        site.put(f"/cap/{i}.xml", cap_doc(f"E2E-{i}"))
        entries.append(Entry(f"urn:e2e:{i}", f"2025-03-14T10:0{i}:00+02:00", path=f"/cap/{i}.xml"))
    site.put("/feed.atom", atom(entries[:3]))
    sources = [{"name": "e2e", "url": httpserver.url_for("/feed.atom"), "interval_s": 1}]
    poller_env = {**door_env(broker.bootstrap, fresh_db),
                  "ERIOP_CAP_FEEDS__SOURCES": json.dumps(sources)}  # fmt: skip
    poller = Door("cap-poller", poller_env, tmp_path / "poller.log").start()
    try:

        async def three() -> bool:
            return await count_alerts(fresh_db, "cap") >= 3

        await wait_until(three, timeout=60, what="the first CAP alerts")
        poller.kill()
        site.put("/feed.atom", atom(entries))
        poller.start()

        async def five() -> bool:
            return await count_alerts(fresh_db, "cap") >= 5

        await wait_until(five, timeout=60, what="the CAP entries that appeared meanwhile")
        await wait_until(poller.ready, timeout=30, what="the poller")
        # several more polls: the index is unchanged (304), nothing is sent again
        polls = sum(1 for path, _ in site.requests if path == "/feed.atom")
        await wait_until(lambda: _more_polls(site, polls + 2), timeout=30, what="two more polls")
    finally:
        poller.stop()

    assert await count_alerts(fresh_db, "axis_device") == total
    assert await count_alerts(fresh_db, "cap") == 5
    assert len(await read_topic(broker.bootstrap, "alerts.cap")) == 5  # none sent twice
    axis_records = len(await read_topic(broker.bootstrap))
    assert total <= axis_records <= total + 10  # at most the in-flight window repeated

    client = aioredis.from_url(redis_url)
    try:

        async def published() -> bool:
            return int(await client.xlen("eriop:stream:alerts")) >= total + 5

        await wait_until(published, timeout=30, what="the alerts on the Redis stream")
        assert int(await client.xlen("eriop:stream:alerts")) == total + 5
    finally:
        await client.aclose()


async def _more_polls(site: FeedSite, n: int) -> bool:
    return sum(1 for path, _ in site.requests if path == "/feed.atom") >= n
