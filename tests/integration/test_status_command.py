"""``eriop status`` against a real running worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eriop.dev.stack import Broker
from eriop.traffic import Fleet, Traffic
from eriop.workerproc import WorkerProcess, worker_env
from pipeline.errors import EXIT_OK
from tests.integration.util import produce, wait_until

pytestmark = pytest.mark.integration


async def test_status_of_a_running_worker(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    groups = {
        "ERIOP_KAFKA__ALERTS_GROUP": f"alerts-{tag}",
        "ERIOP_KAFKA__BULK_GROUP": f"bulk-{tag}",
    }
    worker = WorkerProcess(worker_env(broker.bootstrap, fresh_db, redis_url, **groups), tmp_path)
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_healthy)
        await wait_until(lambda: asyncio.to_thread(lambda: worker.get("/readyz")[0] == 200),
                         what="the worker ready")  # fmt: skip
        traffic = Traffic(Fleet.demo(), devices=2)
        now = datetime.now(UTC)
        await produce(broker.bootstrap, [traffic.json_alert(now) for _ in range(3)])
        await wait_until(
            lambda: asyncio.to_thread(
                worker.metric, "eriop_records_consumed_total", topic="alerts.json"
            ),
            what="the alerts consumed",
        )

        def status(*extra: str) -> subprocess.CompletedProcess[str]:
            url = f"http://127.0.0.1:{worker.port}"
            return subprocess.run(
                [sys.executable, "-m", "eriop.cli", "status", "--url", url, "--interval", "0.5",
                 *extra],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        done = await asyncio.to_thread(status, "--json")
        assert done.returncode == EXIT_OK, done.stderr
        state = json.loads(done.stdout)
        assert state["health"]["ok"] is True
        assert state["health"]["ready"] is True
        deps = state["health"]["dependencies"]
        assert all(deps[d]["ok"] for d in ("postgres", "redis", "kafka"))
        assert state["topics"]["alerts.json"]["consumed_total"] == 3
        assert state["topics"]["alerts.json"]["lag_records"] is not None
        assert {f"alerts-{tag}", f"bulk-{tag}"} <= set(state["groups"])
        assert state["groups"][f"alerts-{tag}"]["partitions"] > 0
        assert state["groups"][f"alerts-{tag}"]["since_rebalance_s"] is not None
        assert state["paused_streams"] == []
        assert state["outbox_pending"] == 0

        done = await asyncio.to_thread(status)
        assert done.returncode == EXIT_OK, done.stderr
        assert done.stdout.startswith(f"worker at http://127.0.0.1:{worker.port}: ok (ready)\n")
        assert "dependencies: postgres up, redis up, kafka up, bulk processes" in done.stdout
        assert "paused streams: none" in done.stdout
        assert f"  alerts-{tag} " in done.stdout
    finally:
        worker.stop()
