"""Worker restarts on one embedded broker: the volume group syncs every time.

The embedded broker's coordinator could be left naming a member that has gone
as the leader of the telemetry/GPS group when its two members left together;
the next members then rejoined forever and nothing was consumed. The bulk
processes join with static membership (a name of their own that survives a
restart), which keeps the group whole; and a group with nothing assigned
shows on /readyz and on ``eriop_consumer_partitions_assigned``.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from eriop.dev.stack import Broker
from eriop.workerproc import WorkerProcess, worker_env
from pipeline.runtime.metrics_merge import metric_sum
from tests.integration.util import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RESTARTS = 3
#: both volume topics, four partitions each
PARTITIONS = 8


async def test_the_volume_group_syncs_after_every_restart(
    broker: Broker, fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    group = f"bulk-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        broker.bootstrap,
        fresh_db,
        redis_url,
        ERIOP_KAFKA__BULK_GROUP=group,
        ERIOP_KAFKA__ALERTS_GROUP=f"alerts-{group}",
        ERIOP_BULK__PROCESSES="2",
    )
    for n in range(RESTARTS):
        w = WorkerProcess(env, tmp_path, f"restart-{n}").start()
        try:
            await asyncio.to_thread(w.wait_healthy)

            def assigned(w: WorkerProcess = w) -> float:
                page = w.get("/metrics")[1].decode()
                return metric_sum(page, "eriop_consumer_partitions_assigned", group=group)

            await wait_until(
                lambda: asyncio.to_thread(lambda: assigned() == PARTITIONS),
                timeout=30,
                what=f"the volume group to sync after start {n + 1}",
            )
            assert w.get("/readyz")[0] == 200
        finally:
            code, _ = await asyncio.to_thread(w.stop)
        assert code == 0, w.log()
