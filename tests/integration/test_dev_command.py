"""``eriop dev`` as a newcomer runs it: it starts the broker, worker and
simulator, shows live status, stops everything it started on Ctrl-C, and can
be run again right away."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from eriop.dev.stack import free_port, port_open
from tests.conftest import dsn_for

pytestmark = pytest.mark.integration


DEV = [sys.executable, "-m", "eriop.cli", "dev"]


def run_dev(tmp: Path, env: dict[str, str], broker_port: int) -> tuple[str, set[int]]:
    """Start ``eriop dev``, wait for a status screen with stored rows, Ctrl-C it."""
    out = tmp / f"dev-{uuid.uuid4().hex[:4]}.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            [*DEV, "--port", str(broker_port), "--rate", "300"],
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        children: set[int] = set()
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                text = out.read_text(errors="replace")
                children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
                # alarm frames reach the worker through the DC-09 receiver
                acked = re.search(r"DC-09 receiver: frames \d+ · ACK [1-9]", text)
                # Axis events through Mosquitto and the bridge, CAP through the local feed
                acked = acked and re.search(r"mqtt-bridge: forwarded [1-9]", text)
                acked = acked and re.search(r"cap-poller: forwarded [1-9]", text)
                if all(w in text for w in ("telemetry.raw", "alerts stored", "gps.raw")) and acked:
                    break
                assert proc.poll() is None, text
                time.sleep(0.5)
            else:
                raise AssertionError(out.read_text(errors="replace"))
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(90)
    assert code == 0, out.read_text(errors="replace")
    return out.read_text(errors="replace"), children


def test_dev_runs_shows_status_and_stops_everything_twice(tmp_path: Path, redis_url: str) -> None:
    db = f"eriop_dev_{uuid.uuid4().hex[:8]}"
    broker_port = free_port()
    env = {
        **os.environ,
        "ERIOP_DATABASE_URL": dsn_for(db),
        "ERIOP_METRICS_PORT": str(free_port()),
        "ERIOP_REDIS_URL": redis_url,
        "ERIOP_RECEIVER__PORT": str(free_port()),
        "ERIOP_RECEIVER__METRICS_PORT": str(free_port()),
        "ERIOP_MQTT__METRICS_PORT": str(free_port()),
        "ERIOP_CAP_FEEDS__METRICS_PORT": str(free_port()),
    }
    env.pop("ERIOP_KAFKA_BOOTSTRAP", None)
    try:
        for _ in range(2):
            text, children = run_dev(tmp_path, env, broker_port)
            assert "rec/s" in text
            assert "stopped" in text
            assert len(children) >= 4  # broker, worker, DC-09 receiver, simulator
            for pid in children:
                assert (
                    not psutil.pid_exists(pid)
                    or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                )
            assert not port_open("127.0.0.1", broker_port)
    finally:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-d", "postgres", "-c",
             f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
            capture_output=True, check=False,
        )  # fmt: skip
