"""The real ``eriop worker`` process: start, health, metrics, bounded shutdown,
and a clear message when a dependency is unreachable."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from eriop.dev.stack import Broker, free_port
from eriop.traffic import Traffic
from eriop.workerproc import WorkerProcess, worker_env
from pipeline.errors import EXIT_CONFIG, EXIT_UNAVAILABLE
from pipeline.runtime.metrics_merge import metric_sum
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def group_env() -> dict[str, str]:
    """Consumer groups of their own, so tests never share committed positions."""
    tag = uuid.uuid4().hex[:8]
    return {"ERIOP_KAFKA__ALERTS_GROUP": f"alerts-{tag}", "ERIOP_KAFKA__BULK_GROUP": f"bulk-{tag}"}


@pytest.fixture
def worker(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path, group_env: dict[str, str]
) -> Iterator[WorkerProcess]:
    w = WorkerProcess(worker_env(broker.bootstrap, fresh_db, redis_url, **group_env), tmp_path)
    w.start()
    yield w
    w.stop()


def test_worker_serves_health_and_metrics_and_stops_on_sigterm(worker: WorkerProcess) -> None:
    health = worker.wait_healthy()
    assert health["status"] == "ok"
    assert set(health["dependencies"]) == {"postgres", "redis", "kafka", "bulk_processes"}
    assert all(d["ok"] for d in health["dependencies"].values())
    bulk = _bulk_processes(worker)
    # one per CPU by default, at most one per partition (4)
    assert len(bulk) == min(os.cpu_count() or 1, 4)
    reported = health["dependencies"]["bulk_processes"]["processes"]
    assert sorted(p["pid"] for p in reported) == sorted(p.pid for p in bulk)
    assert worker.proc is not None
    assert all(p.nice() > psutil.Process(worker.proc.pid).nice() for p in bulk)  # alerts first
    status, body = worker.get("/metrics")
    text = body.decode()
    assert status == 200
    assert "eriop_worker_up 1.0" in text
    assert 'eriop_build_info{version="' in text
    # one page for both processes: each family declared once, the bulk path's series in it
    assert text.count("# TYPE eriop_consumer_paused gauge") == 1
    assert 'eriop_consumer_paused{stream="bulk"}' in text
    assert 'eriop_consumer_paused{stream="alerts"}' in text
    code, took = worker.stop()
    assert code == 0, worker.log()
    assert took < 25, f"shutdown took {took:.1f}s"
    assert all(_gone(p, 5) for p in bulk)


def _bulk_processes(worker: WorkerProcess) -> list[psutil.Process]:
    assert worker.proc is not None
    children = psutil.Process(worker.proc.pid).children()
    bulk = [c for c in children if "pipeline.runtime.bulk" in c.cmdline()]
    assert bulk, [c.cmdline() for c in children]
    return bulk


def _gone(p: psutil.Process, timeout: float) -> bool:
    try:
        p.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


def test_bulk_process_is_restarted_and_dies_with_the_worker(worker: WorkerProcess) -> None:
    worker.wait_healthy()
    before = _bulk_processes(worker)
    first = before[0]
    first.kill()
    assert _gone(first, 10)

    def restarted() -> bool:
        status, body = worker.get("/health")
        if status != 200:
            return False
        pids = {
            p.get("pid") for p in json.loads(body)["dependencies"]["bulk_processes"]["processes"]
        }
        return first.pid not in pids and len(pids) == len(before)

    deadline = time.monotonic() + 60
    while not restarted():
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.3)
    assert worker.metric("eriop_bulk_process_restarts_total") == 1
    after = _bulk_processes(worker)
    assert worker.proc is not None
    worker.proc.kill()  # SIGKILL: no chance to stop its children
    worker.proc.wait()
    assert all(_gone(p, 10) for p in after), "a bulk process outlived a killed worker"


def test_unreachable_dependency_gives_a_clear_message(
    broker: Broker, redis_url: str, tmp_path: Path, group_env: dict[str, str]
) -> None:
    dead_pg = f"postgresql://127.0.0.1:{free_port()}/eriop"
    w = WorkerProcess(worker_env(broker.bootstrap, dead_pg, redis_url, **group_env), tmp_path)
    w.start("--wait", "3")
    assert w.proc is not None
    code = w.proc.wait(60)
    log = w.log()
    assert code == EXIT_UNAVAILABLE
    assert "waiting for PostgreSQL" in log
    assert "retrying" in log
    assert "cannot start" in log
    assert "Traceback" not in log


def test_idempotent_producer_refused_by_the_broker_is_explained(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path, group_env: dict[str, str]
) -> None:
    env = {**worker_env(broker.bootstrap, fresh_db, redis_url, **group_env)}
    env["ERIOP_KAFKA__IDEMPOTENCE"] = "true"
    w = WorkerProcess(env, tmp_path, "idempotent").start("--wait", "30")
    assert w.proc is not None
    assert w.proc.wait(60) == EXIT_CONFIG
    log = w.log()
    assert "ERIOP_KAFKA__IDEMPOTENCE=false" in log
    assert "Traceback" not in log


async def test_a_fresh_worker_exposes_its_core_series_before_any_traffic(
    worker: WorkerProcess, group_env: dict[str, str]
) -> None:
    worker.wait_healthy()
    status, body = worker.get("/livez")
    assert status == 200
    assert json.loads(body) == {"status": "alive"}

    def ready() -> dict[str, object] | None:
        code, page = worker.get("/readyz")
        return json.loads(page) if code == 200 else None

    report = await wait_until(
        lambda: asyncio.to_thread(ready), timeout=60, what="the worker to be ready"
    )
    assert isinstance(report, dict)
    groups = report["groups"]
    assert isinstance(groups, dict)
    # four alert topics and two volume topics of four partitions each
    assert groups[group_env["ERIOP_KAFKA__ALERTS_GROUP"]]["partitions"] == 16
    text = worker.get("/metrics")[1].decode()
    for topic in ("alerts.alarm", "alerts.cap", "telemetry.raw", "gps.raw"):
        for outcome in ("stored", "duplicate", "dead_lettered", "skipped"):
            assert f'eriop_records_total{{outcome="{outcome}",topic="{topic}"}} 0.0' in text
        assert f'eriop_records_consumed_total{{topic="{topic}"}} 0.0' in text
        assert f'eriop_consumer_lag_records{{partition="0",topic="{topic}"}}' in text
    assert 'eriop_dead_letters_total{error_code="not_json",stage="decode",topic="gps.raw"} 0.0' in (
        text
    )
    for stream in ("alerts", "telemetry", "gps"):
        assert f'eriop_batch_size_records_count{{stream="{stream}"}} 0.0' in text
        assert (
            f'eriop_end_to_end_latency_seconds_count{{clock="receive",stream="{stream}"}}' in text
        )
    # the bulk processes' shares of their group add up on the merged page
    bulk_group = group_env["ERIOP_KAFKA__BULK_GROUP"]
    assert f'eriop_consumer_partitions_assigned{{group="{bulk_group}"}} 8.0' in text
    assert f'eriop_consumer_rebalancing{{group="{bulk_group}"}} 0.0' in text
    assert "eriop_consumer_rebalance_age_seconds{" in text
    assert "process_resident_memory_bytes " in text
    assert "process_cpu_seconds_total " in text


async def test_merged_counters_never_go_down_when_a_bulk_process_restarts(
    broker: Broker, worker: WorkerProcess
) -> None:
    worker.wait_healthy()
    t = Traffic(seed=11, devices=5)
    now = datetime.now(UTC)
    sent = await produce(broker.bootstrap, [t.telemetry(now) for _ in range(200)])

    def consumed() -> float:
        page = worker.get("/metrics")[1].decode()
        return metric_sum(page, "eriop_records_consumed_total", topic="telemetry.raw")

    await wait_until(
        lambda: asyncio.to_thread(lambda: consumed() >= sent), timeout=60, what="telemetry"
    )
    before = consumed()
    victim = _bulk_processes(worker)[0]
    victim.kill()
    seen = [before]

    def restarted() -> bool:
        seen.append(consumed())
        pids = {p.pid for p in _bulk_processes(worker)}
        return victim.pid not in pids and len(pids) == min(os.cpu_count() or 1, 4)

    await wait_until(lambda: asyncio.to_thread(restarted), timeout=60, what="a new bulk process")
    worker.wait_healthy()
    seen.append(consumed())
    assert all(b >= a for a, b in itertools.pairwise(seen)), seen
    assert seen[-1] >= before


async def test_the_alert_groups_kafka_commits_reach_the_end_once_alerts_go_quiet(
    broker: Broker, worker: WorkerProcess, group_env: dict[str, str]
) -> None:
    """Kafka commits are throttled on the alert path (lag monitoring only); what was
    held back must still go out, or outside lag monitors would show a stuck group."""
    worker.wait_healthy()
    t = Traffic(seed=5, devices=3)
    now = datetime.now(UTC)
    sent = await produce(broker.bootstrap, [t.json_alert(now) for _ in range(30)])
    group = group_env["ERIOP_KAFKA__ALERTS_GROUP"]
    # a client of the group that never joins it: it only asks for the committed offsets
    reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    await reader.start()
    try:

        async def committed() -> int | None:
            offsets = [await reader.committed(TopicPartition("alerts.json", p)) for p in range(4)]
            total = sum(o or 0 for o in offsets)
            return total if total >= sent else None

        total = await wait_until(committed, timeout=60, what="the alert group's Kafka commits")
    finally:
        await reader.stop()
    assert total == sent
