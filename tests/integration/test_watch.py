"""``eriop watch`` against real Redis: catch-up from the stream, then live alerts
from the channel, each shown exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from eriop.watch.command import Watcher
from eriop.watch.view import View
from pipeline.sinks.redis.live import CH_ALERTS, STREAM_ALERTS

pytestmark = pytest.mark.integration


def alert(title: str, severity: int, **extra: Any) -> dict[str, Any]:
    return {
        "event": "alert.created",
        "id": str(uuid.uuid4()),
        "source": "test_feed",
        "external_id": title,
        "type": "fire" if severity == 1 else "intrusion",
        "severity": severity,
        "title": title,
        "location": {"lon": 24.9387, "lat": 60.1699},
        "received_at": "2025-03-14T09:15:03.000Z",
        **extra,
    }


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.from_url(redis_url)
    yield c
    await c.aclose()


async def add(client: aioredis.Redis, payload: dict[str, Any], *, publish: bool = True) -> None:
    """What the outbox relay does for a new alert: a stream entry, then a publish."""
    body = json.dumps(payload).encode()
    await client.xadd(STREAM_ALERTS, {"alert": body})
    if publish:
        await client.publish(CH_ALERTS, body)


def watch_env(redis_url: str) -> dict[str, str]:
    return {**os.environ, "ERIOP_REDIS_URL": redis_url, "NO_COLOR": ""}


async def run_once(redis_url: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eriop.cli", "watch", "--once", *args,
        env=watch_env(redis_url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_once_prints_the_catch_up_grouped_by_severity(
    client: aioredis.Redis, redis_url: str
) -> None:
    older = alert("too old to show", 2)
    b, c, d = alert("smoke in stairwell B", 3), alert("fire C", 1), alert("door D", 3)
    e = alert("fire E", 1, occurred_at="2025-03-14T09:14:59+02:00", address={"street": "Aleksi 1"})
    for payload in (older, b, c, d, e, e):  # the relay may repeat a publish after a crash
        await add(client, payload)

    out = await run_once(redis_url, "--catch-up", "5")
    lines = out.splitlines()
    assert lines[0] == f"── last 4 alerts from {STREAM_ALERTS} ──"
    assert lines[1] == "[SEV1 LIFE ] SEV1 LIFE: 2"
    assert "fire C" in lines[2]
    assert "fire E" in lines[3]
    assert lines[4] == "[SEV3 SOON ] SEV3 SOON: 2"
    assert "smoke in stairwell B" in lines[5]
    assert "door D" in lines[6]
    assert len(lines) == 7
    assert "too old to show" not in out
    assert lines[2] == (
        "  [SEV1 LIFE ] 2025-03-14 09:15:03Z  fire           fire C  (test_feed)  60.16990,24.93870"
    )
    # the event time is shown when known, in UTC, with the address
    assert lines[3] == (
        "  [SEV1 LIFE ] 2025-03-14 07:14:59Z  fire           fire E  (test_feed)  "
        "60.16990,24.93870 Aleksi 1"
    )

    coloured = await run_once(redis_url, "--catch-up", "5", "--color", "always")
    assert "\x1b[1;97;41m[SEV1 LIFE ]\x1b[0m" in coloured
    assert "\x1b[1;33m[SEV3 SOON ]\x1b[0m" in coloured
    assert "\x1b[1mfire C\x1b[0m" in coloured


async def test_a_title_cannot_send_escape_sequences_to_the_terminal(
    client: aioredis.Redis, redis_url: str
) -> None:
    await add(client, alert("evil\x1b[2J\x1b]0;pwned\x07 title", 2, location=None))
    out = await run_once(redis_url, "--catch-up", "1")
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "evil [2J ]0;pwned  title" in out
    assert "no location" in out


async def _line(stream: asyncio.StreamReader, timeout: float = 30) -> str:
    raw = await asyncio.wait_for(stream.readline(), timeout)
    assert raw, "watch ended early"
    return raw.decode().rstrip("\n")


async def test_live_alerts_appear_exactly_once(client: aioredis.Redis, redis_url: str) -> None:
    await add(client, alert("before start", 3))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eriop.cli", "watch", "--catch-up", "3",
        env=watch_env(redis_url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        while not (line := await _line(proc.stdout)).startswith("── live:"):
            seen.append(line)
        assert any("before start" in s for s in seen)

        live = alert("live one", 2)
        await add(client, live)
        await client.publish(CH_ALERTS, json.dumps(live).encode())  # a repeated publish
        await add(client, alert("missed on the channel", 4), publish=False)
        await add(client, alert("sentinel", 5))
        await add(client, alert("same id as the live one", 3, id=live["id"]))

        shown: list[str] = []
        while not (any("sentinel" in s for s in shown) and any("missed" in s for s in shown)):
            shown.append(await _line(proc.stdout))
        # longer than a stream sweep: nothing more may appear
        with contextlib.suppress(TimeoutError):
            while True:
                shown.append(await _line(proc.stdout, timeout=7))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert sum("live one" in s for s in shown) == 1, shown
    assert sum("missed on the channel" in s for s in shown) == 1, shown
    assert sum("sentinel" in s for s in shown) == 1, shown
    assert not any("before start" in s or "same id" in s for s in shown), shown
    # the one missed on the channel comes from the stream, a little later
    assert sorted(re.findall(r"^\[(SEV\d)", s)[0] for s in shown) == ["SEV2", "SEV4", "SEV5"]


async def test_an_alert_between_subscribe_and_catch_up_is_shown_once(
    client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    watcher = Watcher(client, View(color=False))
    pubsub = await watcher.subscribe()
    racing = alert("published while catching up", 1)
    await add(client, racing)
    await watcher.catch_up(10)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.live(pubsub, stop))
    await add(client, alert("after", 2))
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(task, 10)
    out = capsys.readouterr().out
    assert out.count("published while catching up") == 1
    assert out.count("after") == 1
