"""A real Prometheus server scrapes a running ``eriop worker``: the records counter
rises in Prometheus as traffic flows, and the shipped alert rules load."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eriop.dev.stack import Broker, free_port
from eriop.traffic import Message, Traffic
from eriop.workerproc import WorkerProcess, worker_env
from pipeline.clients.kafka import INBOUND_TOPICS
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """The Debian ``prometheus`` package's server, installed when missing."""
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(found):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "prometheus"], check=True, env=env
        )
    assert os.path.exists(found), "prometheus is not installed"
    return found


class Prometheus:
    def __init__(self, binary: str, target_port: int, workdir: Path) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}/*.yml\n"
            "scrape_configs:\n  - job_name: eriop-worker\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.log_path = workdir / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )  # fmt: skip

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read()) if path.startswith("/api/") else r.read()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()}")
            try:
                self.get("/-/ready")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise AssertionError(f"prometheus not ready:\n{self.log()}")

    def query(self, expr: str) -> float | None:
        """The single value of an instant query, None when it has no result."""
        body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def worker(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    tag = uuid.uuid4().hex[:8]
    env = worker_env(
        broker.bootstrap, fresh_db, redis_url,
        ERIOP_KAFKA__ALERTS_GROUP=f"alerts-{tag}", ERIOP_KAFKA__BULK_GROUP=f"bulk-{tag}",
    )  # fmt: skip
    w = WorkerProcess(env, tmp_path).start()
    w.wait_healthy()
    yield w
    w.stop()


@pytest.fixture
def prometheus(prometheus_bin: str, worker: WorkerProcess, tmp_path: Path) -> Iterator[Prometheus]:
    p = Prometheus(prometheus_bin, worker.port, tmp_path)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def wave(t: Traffic, n: int) -> list[Message]:
    now = datetime.now(UTC)
    out: list[Message] = []
    for i in range(n):
        out.append(t.json_alert(now) if i % 4 == 0 else t.telemetry(now))
    return out


async def test_prometheus_sees_records_rise_as_traffic_flows(
    broker: Broker, worker: WorkerProcess, prometheus: Prometheus
) -> None:
    async def query(expr: str) -> float | None:
        return await asyncio.to_thread(prometheus.query, expr)

    async def scraped() -> bool:
        return await query('up{job="eriop-worker"}') == 1.0

    await wait_until(scraped, timeout=30, what="the first scrape of the worker")
    assert await query('eriop_worker_up{job="eriop-worker"}') == 1.0
    start = await query("sum(eriop_records_total)") or 0.0

    t = Traffic(seed=5, devices=10)
    counts: list[float] = [start]
    for n in (40, 60):
        sent = await produce(broker.bootstrap, wave(t, n))
        target = counts[-1] + sent

        async def reached(target: float = target) -> float | None:
            value = await query("sum(eriop_records_total)")
            return value if value is not None and value >= target else None

        value = await wait_until(reached, timeout=90, what=f"Prometheus to see {target} records")
        assert isinstance(value, float)
        counts.append(value)
    assert counts[0] < counts[1] < counts[2], counts
    # per-topic series with bounded labels, and a rate Prometheus can compute
    topics = await asyncio.to_thread(
        prometheus.get,
        "/api/v1/query?"
        + urllib.parse.urlencode({"query": "sum by (topic) (eriop_records_total)"}),
    )
    # every inbound topic's series exists from start; only those with traffic rose
    values = {r["metric"]["topic"]: float(r["value"][1]) for r in topics["data"]["result"]}
    assert set(values) == set(INBOUND_TOPICS)
    assert {topic for topic, v in values.items() if v > 0} == {"alerts.json", "telemetry.raw"}
    rate = await query("sum(increase(eriop_records_total[1m]))")
    assert rate is not None
    assert rate > 0

    # the shipped alert rules load and evaluate without error
    rules = await asyncio.to_thread(prometheus.get, "/api/v1/rules")
    groups = rules["data"]["groups"]
    assert groups, prometheus.log()
    assert all(r.get("health") != "err" for g in groups for r in g["rules"]), rules
