"""The MQTT and CAP front doors in ``eriop dev``.

- Mosquitto (when installed) on a free loopback port, and ``eriop mqtt-bridge``
  reading it; the simulator publishes its Axis events there, as devices do.
- A local CAP feed: an Atom index on a loopback port that gains a simulated
  warning every ``cap_every_s`` seconds, and ``eriop cap-poller`` following it.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from eriop.dev import stack as devstack
from eriop.traffic import Traffic
from pipeline.settings import Settings


class DevCapFeed:
    """An Atom index of simulated CAP warnings, each linked as its own document."""

    def __init__(self, every_s: float = 20.0, keep: int = 20) -> None:
        self.every_s = every_s
        self.keep = keep
        self._docs: list[tuple[str, str, bytes]] = []  # (id, updated, document)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._traffic = Traffic(seed=7)
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = feed.page(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/xml")
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/feed.atom"

    def add(self) -> None:
        now = datetime.now(UTC)
        _, _, value, _ = self._traffic.cap(now)
        ident = value.split(b"<identifier>", 1)[1].split(b"<", 1)[0].decode()
        with self._lock:
            self._docs.append((ident, now.replace(microsecond=0).isoformat(), value))
            del self._docs[: -self.keep]

    def page(self, path: str) -> bytes | None:
        with self._lock:
            docs = list(self._docs)
        if path == "/feed.atom":
            entries = "".join(
                f"<entry><id>urn:eriop-dev:{i}</id><title>Storm warning</title>"
                f"<updated>{escape(t)}</updated><link rel='alternate' "
                f"type='application/cap+xml' href='/cap/{i}.xml'/></entry>"
                for i, t, _ in reversed(docs)
            )
            return (
                "<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
                "<id>urn:eriop-dev:feed</id><title>eriop dev CAP feed</title>"
                f"<updated>{datetime.now(UTC).isoformat()}</updated>{entries}</feed>"
            ).encode()
        for i, _, doc in docs:
            if path == f"/cap/{i}.xml":
                return doc
        return None

    def start(self) -> DevCapFeed:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._publish, daemon=True).start()
        return self

    def _publish(self) -> None:
        while not self._stop.is_set():
            self.add()
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()


class FrontDoors:
    """What ``eriop dev`` started for the front doors; ``stop`` ends it."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.mosquitto: devstack.Mosquitto | None = None
        self.feed: DevCapFeed | None = None
        self.mqtt_target: str | None = None
        self.status_ports: dict[str, int] = {}

    def stop(self) -> None:
        # the child processes are stopped by the caller with the others
        if self.feed is not None:
            self.feed.stop()
        if self.mosquitto is not None:
            self.mosquitto.stop()


def start_front_doors(
    cli: list[str],
    env: dict[str, str],
    settings: Settings,
    state_dir: Path,
    tell: Callable[[str], None],
) -> FrontDoors:
    """Start Mosquitto + bridge (when Mosquitto is installed) and the CAP feed + poller."""
    doors = FrontDoors()
    if devstack.mosquitto_binary() is None:
        tell("mosquitto is not installed (scripts/setup.sh): Axis events go straight to Kafka")
    else:
        port = devstack.free_port()
        doors.mosquitto = devstack.Mosquitto(port, str(state_dir / "mosquitto")).start()
        doors.mqtt_target = f"127.0.0.1:{port}"
        bridge_env = {**env, "ERIOP_MQTT__HOST": "127.0.0.1", "ERIOP_MQTT__PORT": str(port),
                      "ERIOP_MQTT__CLIENT_ID": "eriop-dev-bridge"}  # fmt: skip
        doors.procs.append(
            _child(cli, "mqtt-bridge", settings.mqtt.metrics_port, bridge_env, state_dir)
        )
        doors.status_ports["mqtt-bridge"] = settings.mqtt.metrics_port
        tell(f"Mosquitto on {doors.mqtt_target}; mqtt-bridge forwards axis/+/event/# to Kafka")
    doors.feed = DevCapFeed().start()
    sources = [{"name": "dev-feed", "url": doors.feed.url, "interval_s": 5}]
    poller_env = {**env, "ERIOP_CAP_FEEDS__SOURCES": json.dumps(sources)}
    doors.procs.append(
        _child(cli, "cap-poller", settings.cap_feeds.metrics_port, poller_env, state_dir)
    )
    doors.status_ports["cap-poller"] = settings.cap_feeds.metrics_port
    tell(f"CAP feed at {doors.feed.url}, followed by cap-poller")
    return doors


def _child(
    cli: list[str], command: str, port: int, env: dict[str, str], state_dir: Path
) -> subprocess.Popen[bytes]:
    log = open(state_dir / f"{command}.log", "ab")  # noqa: SIM115 (the child keeps it)
    return subprocess.Popen(
        [*cli, command, "--metrics-port", str(port)], env={**os.environ, **env},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def front_door_line(scraped: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> str:
    """Forwarded messages per front door, from a scrape of its metrics."""
    total = sum(scraped.get("eriop_front_door_forwarded_total", {}).values())
    errors = sum(scraped.get("eriop_front_door_errors_total", {}).values())
    return f"forwarded {total:.0f} · errors {errors:.0f}"


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False
